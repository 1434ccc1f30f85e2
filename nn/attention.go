package nn

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
)

// DType is the compute dtype of every model.
var DType = dtypes.Float32

// Attention computes multi-head scaled dot-product attention. q is [B,Tq,C],
// k and v are [B,Tk,C]; C is split into heads. With causal set, query i sees
// keys 0..i (CLIP's text transformer). The result is [B,Tq,C].
func Attention(q, k, v *Node, heads int, causal bool) *Node {
	qd := q.Shape().Dimensions
	b, tq, c := qd[0], qd[1], qd[2]
	tk := k.Shape().Dim(1)
	d := c / heads
	q = Reshape(q, b, tq, heads, d)
	k = Reshape(k, b, tk, heads, d)
	v = Reshape(v, b, tk, heads, d)
	scores := Einsum("bqhd,bkhd->bhqk", MulScalar(q, 1/math.Sqrt(float64(d))), k)
	if causal {
		g := q.Graph()
		mask := Reshape(LowerTriangular(g, tq), 1, 1, tq, tk) // true where key <= query
		neg := Scalar(g, scores.DType(), -1e30)
		scores = Where(BroadcastToDims(mask, b, heads, tq, tk), scores, BroadcastToDims(neg, b, heads, tq, tk))
	}
	p := Softmax(scores, -1)
	out := Einsum("bhqk,bkhd->bqhd", p, v)
	return Reshape(out, b, tq, c)
}
