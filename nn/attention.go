package nn

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
)

// DType is the compute dtype of every model.
var DType = dtypes.Float32

// attentionChunkBytes bounds the [B,H,q,Tk] score matrix of one attention
// on the pure-Go backend: above it the queries are processed in chunks (a
// variable so that tests can force chunking on small inputs).
var attentionChunkBytes = 256 << 20

// Attention computes multi-head scaled dot-product attention. q is [B,Tq,C],
// k and v are [B,Tk,C]; C is split into heads. With causal set, query i sees
// keys 0..i (CLIP's text transformer). The result is [B,Tq,C].
//
// On the pure-Go backend, when the scores would exceed attentionChunkBytes
// (SD1.5 at 512²: 4096 queries × 4096 keys × 8 heads × 2 = 1 GiB, plus the
// softmax; nothing below 512²), the queries are split into chunks of equal
// size, each attended on its own and the outputs concatenated, as diffusers'
// attention slicing does: every output row is the same softmax over the
// same keys. The
// sequential executor frees a chunk's scores before the next, so the peak
// holds one chunk's; on machines where touching fresh memory is slow this is
// also faster.
func Attention(q, k, v *Node, heads int, causal bool) *Node {
	qd := q.Shape().Dimensions
	b, tq, c := qd[0], qd[1], qd[2]
	tk := k.Shape().Dim(1)
	d := c / heads
	q = Reshape(MulScalar(q, 1/math.Sqrt(float64(d))), b, tq, heads, d)
	k = Reshape(k, b, tk, heads, d)
	v = Reshape(v, b, tk, heads, d)
	rowBytes := b * heads * tk * q.DType().Size()
	if causal || tq < 2 || rowBytes*tq <= attentionChunkBytes || !IsGo(q.Graph().Backend()) {
		return Reshape(attend(q, k, v, causal), b, tq, c)
	}
	rows := max(1, attentionChunkBytes/rowBytes)
	n := (tq + rows - 1) / rows
	rows = (tq + n - 1) / n // balanced chunks: equal shapes reuse buffers
	parts := make([]*Node, 0, n)
	for q0 := 0; q0 < tq; q0 += rows {
		parts = append(parts, attend(Slice(q, AxisRange(), AxisRange(q0, min(q0+rows, tq)), AxisRange(), AxisRange()), k, v, false))
	}
	return Reshape(Concatenate(parts, 1), b, tq, c)
}

// attend is softmax(q·kᵀ)·v on [B,T,H,D] operands, q already scaled.
func attend(q, k, v *Node, causal bool) *Node {
	scores := Einsum("bqhd,bkhd->bhqk", q, k)
	if causal {
		// Adding 0 or -1e30 gives exactly the scores or -1e30 (masked-out
		// weights are exactly 0 after Softmax) in one broadcast pass, without
		// materialising a [b,h,tq,tk] mask.
		g := q.Graph()
		tq, tk := q.Shape().Dim(1), k.Shape().Dim(1)
		zero, neg := Scalar(g, scores.DType(), 0), Scalar(g, scores.DType(), -1e30)
		bias := Where(LowerTriangular(g, tq), BroadcastToDims(zero, tq, tk), BroadcastToDims(neg, tq, tk)) // 0 where key <= query
		scores = Add(scores, Reshape(bias, 1, 1, tq, tk))
	}
	return Einsum("bhqk,bkhd->bqhd", Softmax(scores, -1), v)
}
