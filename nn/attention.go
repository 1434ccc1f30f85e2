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
		// Adding 0 or -1e30 gives exactly the scores or -1e30 (masked-out
		// weights are exactly 0 after Softmax) in one broadcast pass, without
		// materialising a [b,h,tq,tk] mask.
		g := q.Graph()
		zero, neg := Scalar(g, scores.DType(), 0), Scalar(g, scores.DType(), -1e30)
		bias := Where(LowerTriangular(g, tq), BroadcastToDims(zero, tq, tk), BroadcastToDims(neg, tq, tk)) // 0 where key <= query
		scores = Add(scores, Reshape(bias, 1, 1, tq, tk))
	}
	p := Softmax(scores, -1)
	out := Einsum("bhqk,bkhd->bqhd", p, v)
	return Reshape(out, b, tq, c)
}
