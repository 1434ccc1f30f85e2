package baselines

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/ldm-project/ldm/nn"
)

func shapeF(dims ...int) shapes.Shape { return shapes.Make(nn.DType, dims...) }

func shapeI(dims ...int) shapes.Shape { return shapes.Make(dtypes.Int32, dims...) }
