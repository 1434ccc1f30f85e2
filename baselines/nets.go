package baselines

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// Config is the shape of the small convolutional encoder/decoder every
// baseline autoencoder shares.
type Config struct {
	Size     int   `json:"size"`     // image side in pixels
	Channels []int `json:"channels"` // channels of each stride-2 level
	Latent   int   `json:"latent"`   // latent vector size (AE, VAE) or code size (VQ-VAE)
}

// Validate checks that the levels divide the image.
func (c Config) Validate() error {
	if len(c.Channels) == 0 || c.Latent <= 0 || c.Size <= 0 {
		return fmt.Errorf("baselines: config %+v needs a size, channels and a latent size", c)
	}
	if c.Size%(1<<len(c.Channels)) != 0 {
		return fmt.Errorf("baselines: image size %d is not divisible by 2^%d", c.Size, len(c.Channels))
	}
	return nil
}

// Grid is the side of the encoder's last feature map.
func (c Config) Grid() int { return c.Size >> len(c.Channels) }

// ToNHWC turns an NCHW image batch into the NHWC layout nn works in.
func ToNHWC(x *Node) *Node { return Transpose(Transpose(x, 1, 2), 2, 3) }

// ToNCHW is the inverse of ToNHWC.
func ToNCHW(x *Node) *Node { return Transpose(Transpose(x, 2, 3), 1, 2) }

// downConvs runs the stride-2 3×3 convolutions with SiLU on NHWC x.
func downConvs(ctx *context.Context, c Config, x *Node) *Node {
	for i, ch := range c.Channels {
		x = nn.SiLU(nn.Conv2D(ctx.In(fmt.Sprintf("down%d", i)), x, nn.Conv2DOpts{Out: ch, Kernel: 3, Stride: 2, Pad: 1}))
	}
	return x
}

// upConvs mirrors downConvs with nearest upsampling and 3×3 convolutions
// (a transposed convolution's native op has no gradient on the pure-Go
// backend; upsample + conv also avoids its checkerboard artefacts), ending in
// a 3×3 convolution to RGB. x is NHWC at the grid size; the result is NCHW.
// Level i's output, at twice the resolution of the encoder's level i, has
// half its channels, so that decoder and encoder cost about the same.
func upConvs(ctx *context.Context, c Config, x *Node) *Node {
	for i := len(c.Channels) - 1; i >= 0; i-- {
		x = nn.SiLU(UpConv(ctx.In(fmt.Sprintf("up%d", i)), x, max(c.Channels[i]/2, 4)))
	}
	return ToNCHW(nn.Conv2D(ctx.In("out"), x, nn.Conv2DOpts{Out: 3, Kernel: 3, Pad: 1}))
}

// UpConv doubles the resolution of NHWC x: nearest upsampling then a 3×3
// convolution to out channels.
func UpConv(ctx *context.Context, x *Node, out int) *Node {
	return nn.Conv2D(ctx, nn.Upsample2x(x), nn.Conv2DOpts{Out: out, Kernel: 3, Pad: 1})
}

// VectorEncoder maps NCHW images to a [B,out] vector: the convolutions,
// flattened, then a linear layer.
func VectorEncoder(ctx *context.Context, c Config, x *Node, out int) *Node {
	h := downConvs(ctx, c, ToNHWC(x))
	h = Reshape(h, h.Shape().Dim(0), -1)
	return nn.Linear(ctx.In("fc"), h, out, true)
}

// VectorDecoder maps [B,Latent] vectors to NCHW images.
func VectorDecoder(ctx *context.Context, c Config, z *Node) *Node {
	g, top := c.Grid(), c.Channels[len(c.Channels)-1]
	h := nn.SiLU(nn.Linear(ctx.In("fc"), z, g*g*top, true))
	return upConvs(ctx, c, Reshape(h, z.Shape().Dim(0), g, g, top))
}

// GridEncoder maps NCHW images to an NHWC [B,g,g,Latent] grid of vectors.
func GridEncoder(ctx *context.Context, c Config, x *Node) *Node {
	h := downConvs(ctx, c, ToNHWC(x))
	return nn.Conv2D(ctx.In("proj"), h, nn.Conv2DOpts{Out: c.Latent, Kernel: 1})
}

// GridDecoder maps an NHWC [B,g,g,Latent] grid to NCHW images.
func GridDecoder(ctx *context.Context, c Config, z *Node) *Node {
	h := nn.SiLU(nn.Conv2D(ctx.In("proj"), z, nn.Conv2DOpts{Out: c.Channels[len(c.Channels)-1], Kernel: 3, Pad: 1}))
	return upConvs(ctx, c, h)
}

// MSE is the mean squared error over every value.
func MSE(a, b *Node) *Node { return ReduceAllMean(Square(Sub(a, b))) }
