package baselines

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

// Quantise maps each row of z [N,D] to its nearest row of codebook [K,D]
// (squared Euclidean distance ‖z‖² − 2z·e + ‖e‖²) and returns the indices
// [N] and the chosen codes [N,D]. The codes are a one-hot product, so the
// codebook gets a gradient through them.
func Quantise(z, codebook *Node) (idx, zq *Node) {
	k := codebook.Shape().Dim(0)
	d := Add(InsertAxes(ReduceSum(Square(codebook), -1), 0), MulScalar(nn.Product(z, Transpose(codebook, 0, 1)), -2))
	d = Add(d, InsertAxes(ReduceSum(Square(z), -1), -1))
	idx = ArgMin(d, -1)
	return idx, nn.Product(OneHot(idx, k, z.DType()), codebook)
}

// StraightThrough returns zq in the forward pass and passes the gradient
// to z unchanged (van den Oord et al. 2017): z + sg(zq − z).
func StraightThrough(z, zq *Node) *Node { return Add(z, StopGradient(Sub(zq, z))) }

// VQLosses are the codebook loss ‖sg[z] − e‖² (moves codes to the encoder
// outputs) and the commitment loss ‖z − sg[e]‖² (keeps the encoder near its
// codes), both means over values; the caller weighs commitment by β.
func VQLosses(z, zq *Node) (codebook, commitment *Node) {
	return MSE(StopGradient(z), zq), MSE(z, StopGradient(zq))
}

// VQOpts are the quantiser's settings.
type VQOpts struct {
	K    int     `json:"codes"`
	Beta float64 `json:"beta"` // commitment weight; 0.25 in the paper
	// EMA, when in (0,1), updates the codebook as exponential moving averages
	// of the assigned encoder outputs (van den Oord et al. 2017, appendix;
	// decay 0.99) instead of by the codebook loss.
	EMA float64 `json:"ema"`
	// RestartBelow, when > 0, re-initialises a code whose usage (an EMA of
	// its share of assignments) falls below RestartBelow/K with an encoder
	// output of the current batch (dead-code restarts). It needs EMA: a
	// codebook trained by gradient is written by the optimiser.
	RestartBelow float64 `json:"restart_below"`
	// UsageDecay is the decay of each code's usage average (0: 0.99). A
	// dead code's usage falls below RestartBelow/K after about
	// ln(RestartBelow)/ln(UsageDecay) steps: short runs need a faster decay.
	UsageDecay float64 `json:"usage_decay,omitempty"`
}

// Validate checks the options.
func (o VQOpts) Validate() error {
	switch {
	case o.K < 2:
		return fmt.Errorf("baselines: a codebook needs at least 2 codes, got %d", o.K)
	case o.EMA < 0 || o.EMA >= 1:
		return fmt.Errorf("baselines: codebook EMA decay %g must be in [0,1)", o.EMA)
	case o.UsageDecay < 0 || o.UsageDecay >= 1:
		return fmt.Errorf("baselines: usage decay %g must be in [0,1)", o.UsageDecay)
	case o.RestartBelow > 0 && o.EMA == 0:
		return fmt.Errorf("baselines: dead-code restarts need EMA codebook updates")
	}
	return nil
}

// VQVAE is a vector-quantised autoencoder over a grid of codes.
type VQVAE struct {
	Config Config
	VQ     VQOpts
	Scope  string
}

func (o VQOpts) usageDecay() float64 {
	if o.UsageDecay == 0 {
		return 0.99
	}
	return o.UsageDecay
}

// Trainable lists the scopes the optimiser updates: not the codebook when
// it follows EMA updates.
func (m VQVAE) Trainable() []string {
	s := []string{"/" + m.Scope + "/encoder", "/" + m.Scope + "/decoder"}
	if m.VQ.EMA == 0 {
		s = append(s, "/"+m.Scope+"/quant")
	}
	return s
}

// Init creates the model's variables: encoder, decoder, codebook and the
// statistics (cluster sizes, code sums, usage).
func (m VQVAE) Init(backend backends.Backend, ctx *context.Context, seed uint64) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if err := m.VQ.Validate(); err != nil {
		return err
	}
	k, d := m.VQ.K, m.Config.Latent
	err := InitScope(backend, ctx, m.Scope, seed, func(c *context.Context, g *Graph) {
		s, gr := m.Config.Size, m.Config.Grid()
		GridEncoder(c.In("encoder"), m.Config, Zeros(g, shapeF(1, 3, s, s)))
		GridDecoder(c.In("decoder"), m.Config, Zeros(g, shapeF(1, gr, gr, d)))
		nn.Param(c.In("quant"), g, "codebook", k, d)
	})
	if err != nil {
		return err
	}
	return nn.Try(func() {
		st := ctx.InAbsPath("/" + m.Scope + "/stats").Checked(false)
		st.VariableWithValue("cluster_size", ones(k, 1))
		cb := ctx.GetVariableByScopeAndName("/"+m.Scope+"/quant", "codebook")
		st.VariableWithValue("embed_sum", tensors.FromFlatDataAndDimensions(nn.Values(cb.MustValue()), k, d))
		st.VariableWithValue("usage", ones(k, 1/float32(k)))
	})
}

func ones(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// Encode maps NCHW images to the encoder's NHWC grid [B,g,g,D].
func (m VQVAE) Encode(ctx *context.Context, x *Node) *Node {
	return GridEncoder(ctx.In(m.Scope).In("encoder"), m.Config, x)
}

// Decode maps an NHWC grid of code vectors to NCHW images.
func (m VQVAE) Decode(ctx *context.Context, zq *Node) *Node {
	return GridDecoder(ctx.In(m.Scope).In("decoder"), m.Config, zq)
}

func (m VQVAE) codebook(ctx *context.Context, g *Graph) *Node {
	return nn.Param(ctx.In(m.Scope).In("quant"), g, "codebook", m.VQ.K, m.Config.Latent)
}

// Codes returns the code index of every grid cell, int32 [B,g·g].
func (m VQVAE) Codes(ctx *context.Context, x *Node) *Node {
	z := m.Encode(ctx, x)
	b := z.Shape().Dim(0)
	idx, _ := Quantise(Reshape(z, -1, m.Config.Latent), m.codebook(ctx, x.Graph()))
	return Reshape(idx, b, -1)
}

// DecodeCodes maps code indices int32 [B,g·g] to NCHW images.
func (m VQVAE) DecodeCodes(ctx *context.Context, idx *Node) *Node {
	gr := m.Config.Grid()
	cb := m.codebook(ctx, idx.Graph())
	zq := nn.Product(OneHot(Reshape(idx, -1), m.VQ.K, cb.DType()), cb)
	return m.Decode(ctx, Reshape(zq, idx.Shape().Dim(0), gr, gr, m.Config.Latent))
}

// Loss is reconstruction MSE + codebook loss (unless EMA) + β·commitment,
// with the straight-through estimator between encoder and decoder. With EMA
// or restarts it also updates the codebook statistics. Input: NCHW images.
func (m VQVAE) Loss() train.LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		x := in[0]
		g := x.Graph()
		z := m.Encode(ctx, x)
		flat := Reshape(z, -1, m.Config.Latent)
		cb := m.codebook(ctx, g)
		idx, zq := Quantise(flat, cb)
		rec := m.Decode(ctx, Reshape(StraightThrough(flat, zq), z.Shape().Dimensions...))
		cbLoss, commit := VQLosses(flat, zq)
		loss := Add(MSE(rec, x), MulScalar(commit, m.VQ.Beta))
		if m.VQ.EMA == 0 {
			loss = Add(loss, cbLoss)
		}
		m.updateStats(ctx, g, StopGradient(flat), idx)
		return loss
	}
}

// updateStats advances the usage average, the EMA codebook (when enabled)
// and restarts dead codes (when enabled), all inside the training graph.
func (m VQVAE) updateStats(ctx *context.Context, g *Graph, flat, idx *Node) {
	k, n := m.VQ.K, flat.Shape().Dim(0)
	st := ctx.InAbsPath("/" + m.Scope + "/stats")
	usageV := st.GetVariableByScopeAndName("/"+m.Scope+"/stats", "usage")
	csV := st.GetVariableByScopeAndName("/"+m.Scope+"/stats", "cluster_size")
	esV := st.GetVariableByScopeAndName("/"+m.Scope+"/stats", "embed_sum")
	cbV := ctx.GetVariableByScopeAndName("/"+m.Scope+"/quant", "codebook")
	if usageV == nil || csV == nil || esV == nil || cbV == nil {
		panic("baselines: VQ-VAE statistics missing: build the model with Init")
	}
	onehot := OneHot(idx, k, flat.DType())
	counts := ReduceSum(onehot, 0)
	ud := m.VQ.usageDecay()
	usage := Add(MulScalar(usageV.ValueGraph(g), ud), MulScalar(counts, (1-ud)/float64(n)))
	cb := cbV.ValueGraph(g)
	if m.VQ.EMA > 0 {
		gm := m.VQ.EMA
		cs := Add(MulScalar(csV.ValueGraph(g), gm), MulScalar(counts, 1-gm))
		sums := DotGeneral(onehot, []int{0}, nil, flat, []int{0}, nil) // [K,D]
		es := Add(MulScalar(esV.ValueGraph(g), gm), MulScalar(sums, 1-gm))
		// Laplace smoothing keeps empty clusters from dividing by zero.
		total := ReduceAllSum(cs)
		smoothed := Mul(Div(AddScalar(cs, 1e-5), AddScalar(total, float64(k)*1e-5)), total)
		cb = Div(es, InsertAxes(smoothed, -1))
		csV.SetValueGraph(cs)
		esV.SetValueGraph(es)
	}
	if m.VQ.RestartBelow > 0 {
		dead := LessThan(usage, Scalar(g, usage.DType(), m.VQ.RestartBelow/float64(k)))
		// A fixed stride through the batch picks distinct replacement rows.
		pick := make([]int32, k)
		for i := range pick {
			pick[i] = int32((i*7919 + 13) % n)
		}
		repl := Gather(flat, InsertAxes(Const(g, pick), -1))
		dead2 := BroadcastToDims(InsertAxes(dead, -1), k, m.Config.Latent)
		cb = Where(dead2, repl, cb)
		usage = Where(dead, MulScalar(OnesLike(usage), 1/float64(k)), usage)
		if m.VQ.EMA > 0 {
			csV.SetValueGraph(Where(dead, OnesLike(usage), csV.ValueGraph(g)))
			esV.SetValueGraph(Where(dead2, repl, esV.ValueGraph(g)))
		}
	}
	usageV.SetValueGraph(usage)
	if m.VQ.EMA > 0 || m.VQ.RestartBelow > 0 {
		cbV.SetValueGraph(cb)
	}
}
