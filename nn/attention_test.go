package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// attentionRef is multi-head softmax(q·kᵀ/√d)·v on flat [B,T,C] arrays.
func attentionRef(q, k, v []float32, b, tq, tk, c, heads int, causal bool) []float32 {
	d := c / heads
	out := make([]float32, b*tq*c)
	for n := 0; n < b; n++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < tq; i++ {
				s := make([]float64, tk)
				m := math.Inf(-1)
				for j := 0; j < tk; j++ {
					if causal && j > i {
						s[j] = math.Inf(-1)
						continue
					}
					for e := 0; e < d; e++ {
						s[j] += float64(q[(n*tq+i)*c+h*d+e]) * float64(k[(n*tk+j)*c+h*d+e])
					}
					s[j] /= math.Sqrt(float64(d))
					m = max(m, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				for e := 0; e < d; e++ {
					var acc float64
					for j := 0; j < tk; j++ {
						acc += s[j] / z * float64(v[(n*tk+j)*c+h*d+e])
					}
					out[(n*tq+i)*c+h*d+e] = float32(acc)
				}
			}
		}
	}
	return out
}

func TestAttentionMatchesDefinition(t *testing.T) {
	bk := testBackend(t)
	r := rand.New(rand.NewPCG(31, 32))
	for _, tc := range []struct {
		name                string
		b, tq, tk, c, heads int
		causal              bool
	}{
		{"self", 2, 5, 5, 8, 2, false},
		{"cross", 2, 4, 7, 6, 3, false},
		{"causal", 2, 6, 6, 8, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, k, v := randn(r, tc.b*tc.tq*tc.c), randn(r, tc.b*tc.tk*tc.c), randn(r, tc.b*tc.tk*tc.c)
			var got []float32
			err := Try(func() {
				e := MustNewExec(bk, func(q, k, v *Node) *Node { return Attention(q, k, v, tc.heads, tc.causal) })
				got = Values(e.MustExec(tensors.FromFlatDataAndDimensions(q, tc.b, tc.tq, tc.c),
					tensors.FromFlatDataAndDimensions(k, tc.b, tc.tk, tc.c),
					tensors.FromFlatDataAndDimensions(v, tc.b, tc.tk, tc.c))[0])
			})
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, got, attentionRef(q, k, v, tc.b, tc.tq, tc.tk, tc.c, tc.heads, tc.causal), 1e-5)
		})
	}
}

// TestAttentionChunkedQueries forces query chunking (as at SD1.5 512² on the
// pure-Go backend) and checks the result against the definition and the
// unchunked graph, for chunk counts that do and do not divide the queries.
func TestAttentionChunkedQueries(t *testing.T) {
	bk := testBackend(t)
	if !IsGo(bk) {
		t.Skip("query chunking applies to the pure-Go backend only")
	}
	r := rand.New(rand.NewPCG(33, 34))
	b, tq, tk, c, heads := 2, 11, 9, 8, 2
	q, k, v := randn(r, b*tq*c), randn(r, b*tk*c), randn(r, b*tk*c)
	run := func(chunkBytes int) []float32 {
		old := attentionChunkBytes
		attentionChunkBytes = chunkBytes
		defer func() { attentionChunkBytes = old }()
		var got []float32
		err := Try(func() {
			e := MustNewExec(bk, func(q, k, v *Node) *Node { return Attention(q, k, v, heads, false) })
			got = Values(e.MustExec(tensors.FromFlatDataAndDimensions(q, b, tq, c),
				tensors.FromFlatDataAndDimensions(k, b, tk, c),
				tensors.FromFlatDataAndDimensions(v, b, tk, c))[0])
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	whole := run(1 << 30)
	row := b * heads * tk * 4
	for _, rows := range []int{1, 3, 4, 10} { // 11, 4, 3 and 2 chunks
		got := run(rows * row)
		assertClose(t, got, attentionRef(q, k, v, b, tq, tk, c, heads, false), 1e-5)
		assertClose(t, got, whole, 1e-6)
	}
}
