package baselines

import (
	stdctx "context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

// Prior is a small causal transformer over a VQ-VAE's code grid in raster
// order: p(c) = Π p(c_i | c_<i), the role PixelCNN plays in the VQ-VAE
// paper. Token K is the start token.
type Prior struct {
	K, T   int // codes, sequence length (grid cells)
	Width  int `json:"width"`
	Layers int `json:"layers"`
	Heads  int `json:"heads"`
	Scope  string
}

// Logits returns the next-code logits [B,T,K] of tokens int32 [B,T]:
// position i sees tokens 0..i−1 (the input is shifted right behind the
// start token).
func (p Prior) Logits(ctx *context.Context, tokens *Node) *Node {
	return p.logits(ctx.In(p.Scope), tokens)
}

func (p Prior) logits(c *context.Context, tokens *Node) *Node {
	g := tokens.Graph()
	b := tokens.Shape().Dim(0)
	start := Add(ZerosLike(Slice(tokens, AxisRange(), AxisRange(0, 1))), Const(g, int32(p.K)))
	in := Concatenate([]*Node{start, Slice(tokens, AxisRange(), AxisRange(0, p.T-1))}, 1)
	x := nn.Linear(c.In("embed"), OneHot(in, p.K+1, nn.DType), p.Width, false)
	x = Add(x, InsertAxes(nn.Param(c.In("pos"), g, "weight", p.T, p.Width), 0))
	for l := range p.Layers {
		lc := c.In("layers").In(fmt.Sprint(l))
		h := nn.LayerNorm(lc.In("ln1"), x, 1e-5)
		q := nn.Linear(lc.In("q"), h, p.Width, true)
		k := nn.Linear(lc.In("k"), h, p.Width, true)
		v := nn.Linear(lc.In("v"), h, p.Width, true)
		x = Add(x, nn.Linear(lc.In("o"), nn.Attention(q, k, v, p.Heads, true), p.Width, true))
		h = nn.LayerNorm(lc.In("ln2"), x, 1e-5)
		x = Add(x, nn.Linear(lc.In("fc2"), nn.GELU(nn.Linear(lc.In("fc1"), h, 4*p.Width, true)), p.Width, true))
	}
	x = nn.LayerNorm(c.In("ln_f"), x, 1e-5)
	return Reshape(nn.Linear(c.In("head"), x, p.K, true), b, p.T, p.K)
}

// CrossEntropy is the mean negative log-likelihood (nats) of labels int32
// [...] under logits [..., K].
func CrossEntropy(logits, labels *Node) *Node {
	k := logits.Shape().Dim(-1)
	lp := LogSoftmax(logits, -1)
	return Neg(ReduceAllMean(ReduceSum(Mul(lp, OneHot(labels, k, lp.DType())), -1)))
}

// Init creates the prior's variables in ctx.
func (p Prior) Init(backend backends.Backend, ctx *context.Context, seed uint64) error {
	if p.Width%p.Heads != 0 {
		return fmt.Errorf("baselines: prior width %d is not divisible by %d heads", p.Width, p.Heads)
	}
	return InitScope(backend, ctx, p.Scope, seed, func(c *context.Context, g *Graph) {
		p.logits(c, Zeros(g, shapeI(1, p.T)))
	})
}

// Loss is the mean next-code cross-entropy (nats per code). Input: codes
// int32 [B,T].
func (p Prior) Loss() train.LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		return CrossEntropy(p.Logits(ctx, in[0]), in[0])
	}
}

// Sample draws n code sequences ancestrally (one forward pass per position,
// temperature 1); it stops with ctx's error when ctx is cancelled.
func (p Prior) Sample(ctx stdctx.Context, rt *Runtime, r *rand.Rand, n int) ([]int32, error) {
	codes := make([]int32, n*p.T)
	fn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{p.Logits(ctx, in[0])} }
	for i := range p.T {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, err := rt.Run("prior_logits", fn, tensors.FromFlatDataAndDimensions(codes, n, p.T))
		if err != nil {
			return nil, err
		}
		logits := Floats(out[0])
		for b := range n {
			row := logits[(b*p.T+i)*p.K : (b*p.T+i+1)*p.K]
			codes[b*p.T+i] = int32(sampleSoftmax(r, row))
		}
	}
	return codes, nil
}

func sampleSoftmax(r *rand.Rand, logits []float32) int {
	m := float32(math.Inf(-1))
	for _, v := range logits {
		m = max(m, v)
	}
	ps := make([]float64, len(logits))
	s := 0.0
	for i, v := range logits {
		ps[i] = math.Exp(float64(v - m))
		s += ps[i]
	}
	u := r.Float64() * s
	for i, p := range ps {
		u -= p
		if u <= 0 {
			return i
		}
	}
	return len(ps) - 1
}
