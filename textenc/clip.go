package textenc

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// CLIPTextModel is transformers' CLIPTextModel: token and position
// embeddings, a stack of pre-LN transformer layers with causal
// self-attention, and a final layer norm. Its variables live in Ctx under
// scopes that mirror the Hugging Face keys (text_model/encoder/layers/0/…).
type CLIPTextModel struct {
	Config CLIPConfig
	Ctx    *context.Context

	mu    sync.Mutex
	execs map[execKey]*context.Exec
}

type execKey struct {
	backend  backends.Backend
	clipSkip int  // -1: EncodeAll
	vectors  bool // EncodeWithVectors
}

// NewCLIPTextModel returns a model with an empty context; call LoadWeights
// before running it.
func NewCLIPTextModel(cfg CLIPConfig) (*CLIPTextModel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &CLIPTextModel{Config: cfg, Ctx: context.New(), execs: map[execKey]*context.Exec{}}, nil
}

// CLIPTextNodes are the graph outputs of Forward.
type CLIPTextNodes struct {
	// LastHiddenState is the last layer's output after final_layer_norm, [B,T,D].
	LastHiddenState *Node
	// PoolerOutput is LastHiddenState at each sequence's first EOS, [B,D].
	PoolerOutput *Node
	// HiddenStates are the embeddings followed by every layer's output,
	// before the final layer norm: NumHiddenLayers+1 nodes of [B,T,D].
	HiddenStates []*Node
	// PromptEmbeds is final_layer_norm(HiddenStates[L-clipSkip]), what
	// diffusers' encode_prompt(clip_skip) returns; LastHiddenState when
	// clipSkip is 0.
	PromptEmbeds *Node
}

// Forward builds the model on ids, an integer [B,T] node with
// T ≤ MaxPositionEmbeddings. ctx is the model's root context (Ctx, or
// Ctx.Reuse() for loaded weights).
//
// Like every GoMLX graph function it panics on bad shapes or missing
// variables; Encode and EncodeAll check their input and return errors.
//
// clipSkip follows diffusers: PromptEmbeds = final_layer_norm(
// hidden_states[-(clipSkip+1)]), so clipSkip 1 is the penultimate layer. This
// is AUTOMATIC1111's "Clip skip 2"; convert with ClipSkipFromA1111.
func (m *CLIPTextModel) Forward(ctx *context.Context, ids *Node, clipSkip int) CLIPTextNodes {
	return m.ForwardWithVectors(ctx, ids, nil, nil, clipSkip)
}

// ForwardWithVectors is Forward with some input token embeddings replaced
// (textual inversion): where use ([B,T], bool, or non-zero) is set, the token embedding
// is the row of vectors ([B,T,D], float) instead of token_embedding[id];
// position embeddings are added as usual. nil vectors is Forward.
func (m *CLIPTextModel) ForwardWithVectors(ctx *context.Context, ids, vectors, use *Node, clipSkip int) CLIPTextNodes {
	cfg := m.Config
	if ids.Rank() != 2 || !ids.DType().IsInt() {
		panic(fmt.Errorf("clip text model: ids must be an integer [batch, tokens] tensor, got %s", ids.Shape()))
	}
	if t := ids.Shape().Dim(1); t < 1 || t > cfg.MaxPositionEmbeddings {
		panic(fmt.Errorf("clip text model: %d tokens, the model takes 1 to %d", t, cfg.MaxPositionEmbeddings))
	}
	if clipSkip < 0 || clipSkip > cfg.NumHiddenLayers {
		panic(fmt.Errorf("clip text model: clip skip %d outside 0..%d", clipSkip, cfg.NumHiddenLayers))
	}
	ctx = ctx.In("text_model")
	h := clipEmbeddings(ctx.In("embeddings"), ids, vectors, use, cfg)
	out := CLIPTextNodes{HiddenStates: []*Node{h}}
	enc := ctx.In("encoder").In("layers")
	for i := range cfg.NumHiddenLayers {
		h = clipEncoderLayer(enc.In(fmt.Sprint(i)), h, cfg)
		out.HiddenStates = append(out.HiddenStates, h)
	}
	lnCtx := ctx.In("final_layer_norm")
	out.LastHiddenState = nn.LayerNorm(lnCtx, h, cfg.LayerNormEps)
	out.PromptEmbeds = out.LastHiddenState
	if clipSkip > 0 {
		// The same final_layer_norm weights again: unchecked, so that this
		// second use also works on a context that is creating its variables.
		out.PromptEmbeds = nn.LayerNorm(lnCtx.Checked(false), out.HiddenStates[cfg.NumHiddenLayers-clipSkip], cfg.LayerNormEps)
	}
	out.PoolerOutput = clipPool(out.LastHiddenState, ids, cfg.EOSTokenID)
	return out
}

// clipEmbeddings is CLIPTextEmbeddings: token_embedding[ids] +
// position_embedding[0..T-1] (the position_ids buffer is always arange),
// with the token embedding taken from vectors where use is true (when given).
func clipEmbeddings(ctx *context.Context, ids, vectors, use *Node, cfg CLIPConfig) *Node {
	g := ids.Graph()
	b, t := ids.Shape().Dim(0), ids.Shape().Dim(1)
	tok := nn.Param(ctx.In("token_embedding"), g, "weight", cfg.VocabSize, cfg.HiddenSize)
	pos := nn.Param(ctx.In("position_embedding"), g, "weight", cfg.MaxPositionEmbeddings, cfg.HiddenSize)
	x := Gather(tok, Reshape(ids, b, t, 1)) // [B,T,D]
	if vectors != nil {
		if use.DType() != dtypes.Bool {
			use = NotEqual(use, ZerosLike(use))
		}
		x = Where(BroadcastToDims(Reshape(use, b, t, 1), b, t, cfg.HiddenSize), vectors, x)
	}
	p := Slice(pos, AxisRange(0, t), AxisRange())
	return Add(x, ExpandLeftToRank(p, 3))
}

// clipEncoderLayer is CLIPEncoderLayer: pre-LN causal self-attention and MLP,
// each with a residual connection.
func clipEncoderLayer(ctx *context.Context, x *Node, cfg CLIPConfig) *Node {
	d := cfg.HiddenSize
	h := nn.LayerNorm(ctx.In("layer_norm1"), x, cfg.LayerNormEps)
	attn := ctx.In("self_attn")
	q := nn.Linear(attn.In("q_proj"), h, d, true)
	k := nn.Linear(attn.In("k_proj"), h, d, true)
	v := nn.Linear(attn.In("v_proj"), h, d, true)
	h = causalAttention(q, k, v, cfg.NumAttentionHeads)
	x = Add(x, nn.Linear(attn.In("out_proj"), h, d, true))

	h = nn.LayerNorm(ctx.In("layer_norm2"), x, cfg.LayerNormEps)
	mlp := ctx.In("mlp")
	h = nn.Linear(mlp.In("fc1"), h, cfg.IntermediateSize, true)
	h = activations[cfg.HiddenAct](h)
	return Add(x, nn.Linear(mlp.In("fc2"), h, d, true))
}

// causalAttention is multi-head scaled dot-product attention of [B,T,C]
// inputs where query i sees keys 0..i. It stands in for nn.Attention(…, true),
// whose causal mask fails to broadcast in GoMLX v0.26 (BroadcastToDims of a
// rank-2 mask to rank 4).
func causalAttention(q, k, v *Node, heads int) *Node {
	g := q.Graph()
	dims := q.Shape().Dimensions
	b, t, c := dims[0], dims[1], dims[2]
	d := c / heads
	q = Reshape(q, b, t, heads, d)
	k = Reshape(k, b, t, heads, d)
	v = Reshape(v, b, t, heads, d)
	scores := Einsum("bqhd,bkhd->bhqk", MulScalar(q, 1/math.Sqrt(float64(d))), k)
	// transformers adds finfo(float32).min above the diagonal; any value that
	// makes exp underflow to 0 gives the same softmax.
	mask := BroadcastToDims(Reshape(LowerTriangular(g, t), 1, 1, t, t), b, heads, t, t)
	scores = Where(mask, scores, BroadcastToDims(Scalar(g, scores.DType(), -1e30), b, heads, t, t))
	out := Einsum("bhqk,bkhd->bqhd", Softmax(scores, -1), v)
	return Reshape(out, b, t, c)
}

// activations are transformers' ACT2FN entries a CLIP config may name.
var activations = map[string]func(*Node) *Node{
	"quick_gelu":        nn.QuickGELU,
	"gelu":              nn.GELU,
	"gelu_new":          geluTanh,
	"gelu_pytorch_tanh": geluTanh,
	"gelu_fast":         geluTanh,
	"relu":              func(x *Node) *Node { return Max(x, ZerosLike(x)) },
	"silu":              nn.SiLU,
	"swish":             nn.SiLU,
}

// geluTanh is the tanh approximation of GELU (Hendrycks & Gimpel 2016).
func geluTanh(x *Node) *Node {
	inner := MulScalar(Add(x, MulScalar(Mul(Square(x), x), 0.044715)), math.Sqrt(2/math.Pi))
	return Mul(MulScalar(x, 0.5), OnePlus(Tanh(inner)))
}

// clipPool picks each sequence's hidden state at its first EOS token, as
// transformers does: configs with eos_token_id 2 (written before
// transformers 4.31, e.g. SD 1.x's) take the position of the largest id
// instead, which for CLIP's vocabulary (EOS = 49407 is the largest id) is the
// first EOS too. With no EOS at all the position is 0 (argmax of all-false).
// It is written with Equal/Where/ReduceMin rather than ArgMax so that ties
// resolve to the first position on every backend.
func clipPool(hidden, ids *Node, eosTokenID int) *Node {
	g := ids.Graph()
	b, t := ids.Shape().Dim(0), ids.Shape().Dim(1)
	dt := ids.DType()
	var isEOS *Node
	if eosTokenID == 2 {
		isEOS = Equal(ids, ReduceAndKeep(ids, ReduceMax, 1))
	} else {
		isEOS = Equal(ids, Scalar(g, dt, eosTokenID))
	}
	positions := Iota(g, shapes.Make(dt, b, t), 1)
	none := Scalar(g, dt, t)
	first := ReduceMin(Where(isEOS, positions, BroadcastToDims(none, b, t)), 1) // [B]
	first = Where(Equal(first, none), ZerosLike(first), first)
	rows := Iota(g, shapes.Make(dt, b), 0)
	idx := Stack([]*Node{rows, first}, 1) // [B,2]: (batch, position)
	return Gather(hidden, idx)            // [B,D]
}

// ExpectedKeys returns the weight keys and shapes the config asks for
// (text_model.embeddings.token_embedding.weight, …).
func (m *CLIPTextModel) ExpectedKeys() (map[string][]int, error) {
	b, err := keysBackend()
	if err != nil {
		return nil, err
	}
	return nn.ExpectedKeys(b, func(ctx *context.Context, g *Graph) {
		m.Forward(ctx, Zeros(g, shapes.Make(dtypes.Int32, 1, 1)), 0)
	})
}

var (
	keysBackendOnce sync.Once
	keysBackendVal  backends.Backend
	keysBackendErr  error
)

// keysBackend is a pure-Go backend used only to trace graphs for their
// variable names; nothing runs on it.
func keysBackend() (backends.Backend, error) {
	keysBackendOnce.Do(func() {
		keysBackendErr = nn.Try(func() { keysBackendVal, keysBackendErr = backends.NewWithConfig("go") })
	})
	return keysBackendVal, keysBackendErr
}

// positionIDsKey is a buffer (always arange) that older transformers
// versions saved with the weights; it is not a parameter.
const positionIDsKey = "text_model.embeddings.position_ids"

// LoadWeights copies the model's weights from src (Hugging Face keys,
// text_model.*) into Ctx. Missing or unexpected keys and wrong shapes are
// reported by name; text_model.embeddings.position_ids is ignored.
func (m *CLIPTextModel) LoadWeights(src nn.Source) error {
	expected, err := m.ExpectedKeys()
	if err != nil {
		return fmt.Errorf("clip text model: %w", err)
	}
	var keys []string
	for _, k := range src.Keys() {
		if k != positionIDsKey {
			keys = append(keys, k)
		}
	}
	missing, unexpected := nn.CompareKeys(expected, keys)
	if len(missing) > 0 || len(unexpected) > 0 {
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, fmt.Sprintf("%d missing (%s)", len(missing), keyList(missing)))
		}
		if len(unexpected) > 0 {
			parts = append(parts, fmt.Sprintf("%d unexpected (%s)", len(unexpected), keyList(unexpected)))
		}
		return fmt.Errorf("clip text model: weights do not match the config (%d layers, hidden %d): %s",
			m.Config.NumHiddenLayers, m.Config.HiddenSize, strings.Join(parts, "; "))
	}
	if err := nn.Load(m.Ctx, checkedSource{src, keys, expected}); err != nil {
		return fmt.Errorf("clip text model: %w", err)
	}
	return nil
}

func keyList(keys []string) string {
	const show = 8
	if len(keys) <= show {
		return strings.Join(keys, ", ")
	}
	return strings.Join(keys[:show], ", ") + fmt.Sprintf(", … %d more", len(keys)-show)
}

// checkedSource serves the chosen keys of a Source, checking each shape.
type checkedSource struct {
	src      nn.Source
	keys     []string
	expected map[string][]int
}

func (s checkedSource) Keys() []string { return s.keys }

func (s checkedSource) Float32(key string) ([]float32, []int, error) {
	data, shape, err := s.src.Float32(key)
	if err != nil {
		return nil, nil, err
	}
	want := s.expected[key]
	if !equalDims(shape, want) {
		return nil, nil, fmt.Errorf("weight %s has shape %v, the config expects %v", key, shape, want)
	}
	if n := shapes.Make(nn.DType, shape...).Size(); len(data) != n {
		return nil, nil, fmt.Errorf("weight %s: %d values for shape %v", key, len(data), shape)
	}
	return data, shape, nil
}

// Float32Shape passes nn.IntoSource through when the underlying source has
// it and the shape is the expected one (otherwise Float32 reports it).
func (s checkedSource) Float32Shape(key string) ([]int, bool) {
	into, ok := s.src.(nn.IntoSource)
	if !ok {
		return nil, false
	}
	shape, ok := into.Float32Shape(key)
	if !ok || !equalDims(shape, s.expected[key]) {
		return nil, false
	}
	return shape, true
}

// Float32Into converts straight into dst (after Float32Shape said yes).
func (s checkedSource) Float32Into(key string, dst []float32) error {
	into, ok := s.src.(nn.IntoSource)
	if !ok {
		return fmt.Errorf("weight %s: the source cannot convert in place", key)
	}
	return into.Float32Into(key, dst)
}

// StoredHalf and HalfInto pass nn.HalfSource through (16-bit weights), on
// the same shape check as Float32Shape.
func (s checkedSource) StoredHalf(key string) (string, []int, bool) {
	h, ok := s.src.(nn.HalfSource)
	if !ok {
		return "", nil, false
	}
	dt, shape, ok := h.StoredHalf(key)
	if !ok || !equalDims(shape, s.expected[key]) {
		return "", nil, false
	}
	return dt, shape, true
}

func (s checkedSource) HalfInto(key string, dst []byte) error {
	return s.src.(nn.HalfSource).HalfInto(key, dst) // only after StoredHalf said yes
}

func equalDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// CLIPTextOutput holds the values of a full forward pass (row-major).
type CLIPTextOutput struct {
	LastHiddenState []float32   // [B,T,D], after final_layer_norm
	PoolerOutput    []float32   // [B,D]
	HiddenStates    [][]float32 // L+1 × [B,T,D], before final_layer_norm
}

// Encode runs the model on ids ([batch, seqLen] row-major) and returns
// diffusers' prompt embeddings for clipSkip (0 = last layer; see Forward and
// ClipSkipFromA1111), [batch, seqLen, HiddenSize], and transformers'
// pooler_output, [batch, HiddenSize]. The compiled program is cached per
// backend, clip skip and shape.
func (m *CLIPTextModel) Encode(backend backends.Backend, ids []int32, batch, seqLen, clipSkip int) (hidden, pooled []float32, err error) {
	if err := m.checkInput(ids, batch, seqLen); err != nil {
		return nil, nil, err
	}
	if clipSkip < 0 || clipSkip > m.Config.NumHiddenLayers {
		return nil, nil, fmt.Errorf("clip text model: clip skip %d outside 0..%d", clipSkip, m.Config.NumHiddenLayers)
	}
	out, err := m.run(backend, clipSkip, ids, batch, seqLen)
	if err != nil {
		return nil, nil, err
	}
	return out[0], out[1], nil
}

// EncodeAll runs the model on ids ([batch, seqLen] row-major) and returns
// every output of transformers' CLIPTextModel (with output_hidden_states).
func (m *CLIPTextModel) EncodeAll(backend backends.Backend, ids []int32, batch, seqLen int) (*CLIPTextOutput, error) {
	if err := m.checkInput(ids, batch, seqLen); err != nil {
		return nil, err
	}
	out, err := m.run(backend, -1, ids, batch, seqLen)
	if err != nil {
		return nil, err
	}
	return &CLIPTextOutput{LastHiddenState: out[0], PoolerOutput: out[1], HiddenStates: out[2:]}, nil
}

// checkInput rejects what would otherwise fail (or read out of bounds)
// inside the compiled program.
func (m *CLIPTextModel) checkInput(ids []int32, batch, seqLen int) error {
	cfg := m.Config
	switch {
	case batch < 1 || seqLen < 1:
		return fmt.Errorf("clip text model: batch %d × %d tokens: both must be at least 1", batch, seqLen)
	case seqLen > cfg.MaxPositionEmbeddings:
		return fmt.Errorf("clip text model: %d tokens, the model takes at most %d (max_position_embeddings): truncate the prompt", seqLen, cfg.MaxPositionEmbeddings)
	case len(ids) != batch*seqLen:
		return fmt.Errorf("clip text model: %d ids for batch %d × %d tokens", len(ids), batch, seqLen)
	}
	for i, id := range ids {
		if id < 0 || int(id) >= cfg.VocabSize {
			return fmt.Errorf("clip text model: token id %d at [%d,%d] outside the vocabulary 0..%d", id, i/seqLen, i%seqLen, cfg.VocabSize-1)
		}
	}
	return nil
}

// run executes the graph for clipSkip (-1: all outputs) and copies the
// outputs out. extra are the vectors and use inputs of EncodeWithVectors.
func (m *CLIPTextModel) run(backend backends.Backend, clipSkip int, ids []int32, batch, seqLen int, extra ...*tensors.Tensor) (out [][]float32, err error) {
	if backend == nil {
		return nil, fmt.Errorf("clip text model: nil backend")
	}
	exec, err := m.exec(execKey{backend, clipSkip, len(extra) > 0})
	if err != nil {
		return nil, fmt.Errorf("clip text model: %w", err)
	}
	args := append([]any{tensors.FromFlatDataAndDimensions(ids, batch, seqLen)}, anys(extra)...)
	var res []*tensors.Tensor
	var execErr error
	err = nn.Try(func() { res, execErr = exec.Exec(args...) })
	if err = errors.Join(err, execErr); err != nil {
		return nil, fmt.Errorf("clip text model (were the weights loaded?): %w", err)
	}
	for _, r := range res {
		out = append(out, nn.Values(r))
		_ = r.FinalizeAll()
	}
	return out, nil
}

func anys(ts []*tensors.Tensor) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}

func (m *CLIPTextModel) exec(key execKey) (*context.Exec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.execs[key]; ok {
		return e, nil
	}
	clipSkip := key.clipSkip
	outputs := func(o CLIPTextNodes) []*Node {
		if clipSkip >= 0 {
			return []*Node{o.PromptEmbeds, o.PoolerOutput}
		}
		return append([]*Node{o.LastHiddenState, o.PoolerOutput}, o.HiddenStates...)
	}
	var fn any = func(ctx *context.Context, ids *Node) []*Node {
		return outputs(m.Forward(ctx, ids, max(clipSkip, 0)))
	}
	if key.vectors {
		fn = func(ctx *context.Context, ids, vectors, use *Node) []*Node {
			return outputs(m.ForwardWithVectors(ctx, ids, vectors, use, max(clipSkip, 0)))
		}
	}
	e, err := context.NewExecAny(key.backend, m.Ctx.Reuse(), fn)
	if err != nil {
		return nil, err
	}
	if m.execs == nil {
		m.execs = map[execKey]*context.Exec{}
	}
	m.execs[key] = e
	return e, nil
}
