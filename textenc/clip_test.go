package textenc

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/testutil"
	"github.com/ldm-project/ldm/nn"
)

func TestParseCLIPConfig(t *testing.T) {
	sd15 := SD15CLIPConfig()
	def := DefaultCLIPConfig()
	tiny := CLIPConfig{VocabSize: 100, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: 2, NumAttentionHeads: 2,
		MaxPositionEmbeddings: 12, HiddenAct: "gelu", LayerNormEps: 1e-6, BOSTokenID: 49406, EOSTokenID: 49407, PadTokenID: 1, ProjectionDim: 512}
	tinyJSON := `"vocab_size": 100, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
		"num_attention_heads": 2, "max_position_embeddings": 12, "hidden_act": "gelu", "layer_norm_eps": 1e-06`
	withProj := tiny
	withProj.ProjectionDim = 64
	for _, tc := range []struct {
		name, json string
		want       CLIPConfig
		err        string
	}{
		{"empty object takes CLIPTextConfig defaults", `{}`, def, ""},
		{"text config", `{` + tinyJSON + `}`, tiny, ""},
		{"full CLIPConfig", `{"model_type": "clip", "projection_dim": 64, "text_config": {` + tinyJSON + `}, "vision_config": {"hidden_size": 1024}}`, withProj, ""},
		{"full CLIPConfig, old text_config_dict", `{"text_config": null, "text_config_dict": {` + tinyJSON + `}}`, tiny, ""},
		{"SD 1.5 text_encoder", `{"architectures": ["CLIPTextModel"], "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "quick_gelu",
			"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
			"projection_dim": 768, "torch_dtype": "float32", "vocab_size": 49408, "dropout": 0.0, "initializer_factor": 1.0}`, sd15, ""},
		{"Python NaN literal elsewhere", `{"initializer_range": NaN}`, def, ""},
		{"unknown activation", `{"hidden_act": "mish"}`, CLIPConfig{}, "hidden_act"},
		{"heads do not divide hidden", `{"hidden_size": 30, "num_attention_heads": 4}`, CLIPConfig{}, "divisible"},
		{"zero layers", `{"num_hidden_layers": 0}`, CLIPConfig{}, "positive"},
		{"not JSON", `{"vocab_size": }`, CLIPConfig{}, "clip config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCLIPConfig([]byte(tc.json))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestClipSkipFromA1111(t *testing.T) {
	for _, tc := range []struct{ a1111, diffusers int }{{0, 0}, {1, 0}, {2, 1}, {3, 2}, {12, 11}} {
		if got := ClipSkipFromA1111(tc.a1111); got != tc.diffusers {
			t.Errorf("A1111 clip skip %d → %d, want diffusers clip_skip %d", tc.a1111, got, tc.diffusers)
		}
	}
}

// randomSource serves deterministic random weights for every key a model
// expects, generated on demand so that big configs never hold two copies.
type randomSource struct {
	shapes map[string][]int
	seed   uint64
}

func (s randomSource) Keys() []string {
	keys := make([]string, 0, len(s.shapes))
	for k := range s.shapes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (s randomSource) Float32(key string) ([]float32, []int, error) {
	h := fnv.New64a()
	h.Write([]byte(key))
	r := rand.New(rand.NewPCG(s.seed, h.Sum64()))
	shape := s.shapes[key]
	n := 1
	for _, d := range shape {
		n *= d
	}
	// LayerNorm gains near 1, projections scaled by 1/√fan-in, the rest 0.1.
	scale, offset := 0.1, 0.0
	switch {
	case strings.Contains(key, "norm") && strings.HasSuffix(key, ".weight"):
		offset = 1
	case len(shape) == 2 && !strings.Contains(key, "embedding"):
		scale = 1 / math.Sqrt(float64(shape[1]))
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(offset + scale*r.NormFloat64())
	}
	return x, shape, nil
}

func tinyCLIPConfig() CLIPConfig {
	c := DefaultCLIPConfig()
	c.VocabSize, c.HiddenSize, c.IntermediateSize = 100, 16, 24
	c.NumHiddenLayers, c.NumAttentionHeads, c.MaxPositionEmbeddings = 2, 2, 12
	c.EOSTokenID = 99
	return c
}

func newRandomCLIP(t testing.TB, cfg CLIPConfig) *CLIPTextModel {
	t.Helper()
	m, err := NewCLIPTextModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	expected, err := m.ExpectedKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadWeights(randomSource{expected, 7}); err != nil {
		t.Fatal(err)
	}
	return m
}

var goBackend = testutil.GoBackend

func randomIDs(r *rand.Rand, n, vocab int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.IntN(vocab))
	}
	return ids
}

// maxDiffRows returns the largest |a-b| over rows [from,to) of the
// [batch, seqLen, d] arrays a and b.
func maxDiffRows(a, b []float32, batch, seqLen, d, from, to int) float64 {
	worst := 0.0
	for n := range batch {
		for p := from; p < to; p++ {
			for c := range d {
				i := (n*seqLen+p)*d + c
				worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
			}
		}
	}
	return worst
}

func TestCLIPTextCausalMaskHidesLaterTokens(t *testing.T) {
	cfg := tinyCLIPConfig()
	m := newRandomCLIP(t, cfg)
	b := goBackend(t)
	r := rand.New(rand.NewPCG(1, 2))
	const batch, seqLen = 2, 10
	d := cfg.HiddenSize
	ids := randomIDs(r, batch*seqLen, cfg.VocabSize-1) // no EOS: pooling stays at 0
	base, err := m.EncodeAll(b, ids, batch, seqLen)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []int{1, 4, seqLen - 1} {
		changed := slices.Clone(ids)
		for n := range batch {
			changed[n*seqLen+j] = (changed[n*seqLen+j] + 1) % int32(cfg.VocabSize-1)
		}
		got, err := m.EncodeAll(b, changed, batch, seqLen)
		if err != nil {
			t.Fatal(err)
		}
		for l, h := range got.HiddenStates {
			if diff := maxDiffRows(h, base.HiddenStates[l], batch, seqLen, d, 0, j); diff != 0 {
				t.Errorf("token %d changed: hidden state %d moved by %g at earlier positions", j, l, diff)
			}
		}
		if diff := maxDiffRows(got.LastHiddenState, base.LastHiddenState, batch, seqLen, d, 0, j); diff != 0 {
			t.Errorf("token %d changed: last_hidden_state moved by %g at earlier positions", j, diff)
		}
		// The test must be able to fail: position j itself does change.
		if diff := maxDiffRows(got.LastHiddenState, base.LastHiddenState, batch, seqLen, d, j, j+1); diff < 1e-3 {
			t.Errorf("token %d changed but its own output moved only %g", j, diff)
		}
	}

	// A shorter sequence is a prefix of a longer one.
	short := make([]int32, 0, batch*5)
	for n := range batch {
		short = append(short, ids[n*seqLen:n*seqLen+5]...)
	}
	got, err := m.EncodeAll(b, short, batch, 5)
	if err != nil {
		t.Fatal(err)
	}
	for n := range batch {
		a := got.LastHiddenState[n*5*d : (n+1)*5*d]
		w := base.LastHiddenState[n*seqLen*d : (n*seqLen+5)*d]
		if diff := maxDiffRows(a, w, 1, 5, d, 0, 5); diff > 1e-6 {
			t.Errorf("5-token prefix differs from the 10-token run by %g", diff)
		}
	}
}

func TestCLIPTextPoolingRule(t *testing.T) {
	const seqLen = 10
	for _, tc := range []struct {
		name string
		eos  int
		ids  []int32
		want int // pooled position
	}{
		// Legacy (eos_token_id 2): argmax of the ids, first occurrence; id 2 itself is not special.
		{"legacy: first of the largest id", 2, []int32{5, 2, 7, 90, 1, 3, 90, 4, 4, 4}, 3},
		{"legacy: largest id at the end", 2, []int32{2, 2, 7, 9, 1, 3, 9, 4, 4, 98}, 9},
		// Current rule: first position equal to eos_token_id.
		{"eos: first EOS", 7, []int32{5, 2, 90, 7, 1, 3, 7, 4, 4, 4}, 3},
		{"eos: EOS padding", 7, []int32{6, 7, 7, 7, 7, 7, 7, 7, 7, 7}, 1},
		{"eos: no EOS pools position 0", 7, []int32{5, 2, 90, 8, 1, 3, 9, 4, 4, 4}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyCLIPConfig()
			cfg.EOSTokenID = tc.eos
			m := newRandomCLIP(t, cfg)
			// Batch of two: the case and a row with its EOS at position 2, so
			// that each row must use its own position.
			other := []int32{11, 12, int32(tc.eos), 13, 14, 15, 16, 17, 18, 19}
			if tc.eos == 2 {
				other[2] = 99
			}
			ids := append(slices.Clone(tc.ids), other...)
			out, err := m.EncodeAll(goBackend(t), ids, 2, seqLen)
			if err != nil {
				t.Fatal(err)
			}
			d := cfg.HiddenSize
			for n, pos := range []int{tc.want, 2} {
				want := out.LastHiddenState[(n*seqLen+pos)*d : (n*seqLen+pos+1)*d]
				got := out.PoolerOutput[n*d : (n+1)*d]
				if !slices.Equal(got, want) {
					t.Errorf("row %d: pooler_output is not last_hidden_state at position %d", n, pos)
				}
			}
		})
	}
}

func TestCLIPTextBadInputReturnsError(t *testing.T) {
	cfg := tinyCLIPConfig()
	m := newRandomCLIP(t, cfg)
	b := goBackend(t)
	ok := make([]int32, 2*4)
	for _, tc := range []struct {
		name           string
		ids            []int32
		batch, seqLen  int
		clipSkip       int
		want           string
		encodeAllToo   bool
		unloadedModel  bool
		nilBackendCall bool
	}{
		{name: "id equal to vocab size", ids: []int32{1, 2, 100, 3}, batch: 1, seqLen: 4, want: "vocabulary", encodeAllToo: true},
		{name: "negative id", ids: []int32{1, -1, 0, 3}, batch: 2, seqLen: 2, want: "vocabulary", encodeAllToo: true},
		{name: "more tokens than positions", ids: make([]int32, 13), batch: 1, seqLen: 13, want: "at most 12", encodeAllToo: true},
		{name: "ids do not fill the shape", ids: ok, batch: 3, seqLen: 4, want: "8 ids", encodeAllToo: true},
		{name: "empty batch", ids: nil, batch: 0, seqLen: 4, want: "at least 1", encodeAllToo: true},
		{name: "clip skip beyond the layers", ids: ok, batch: 2, seqLen: 4, clipSkip: 3, want: "clip skip"},
		{name: "negative clip skip", ids: ok, batch: 2, seqLen: 4, clipSkip: -1, want: "clip skip"},
		{name: "weights never loaded", ids: ok, batch: 2, seqLen: 4, want: "weights", unloadedModel: true},
		{name: "nil backend", ids: ok, batch: 2, seqLen: 4, want: "backend", nilBackendCall: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model, backend := m, b
			if tc.unloadedModel {
				model, _ = NewCLIPTextModel(cfg)
			}
			if tc.nilBackendCall {
				backend = nil
			}
			var err error
			if e := nn.Try(func() { _, _, err = model.Encode(backend, tc.ids, tc.batch, tc.seqLen, tc.clipSkip) }); e != nil {
				t.Fatalf("Encode panicked: %v", e)
			}
			t.Logf("Encode: %v", err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Encode error %v, want one mentioning %q", err, tc.want)
			}
			if tc.encodeAllToo {
				_, err = model.EncodeAll(backend, tc.ids, tc.batch, tc.seqLen)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("EncodeAll error %v, want one mentioning %q", err, tc.want)
				}
			}
		})
	}
}

// editedSource is a Source with keys added, dropped or reshaped.
type editedSource struct {
	randomSource
	drop, add string
	reshape   map[string][]int
}

func (s editedSource) Keys() []string {
	var keys []string
	for _, k := range s.randomSource.Keys() {
		if k != s.drop {
			keys = append(keys, k)
		}
	}
	if s.add != "" {
		keys = append(keys, s.add)
	}
	return keys
}

func (s editedSource) Float32(key string) ([]float32, []int, error) {
	if key == s.add {
		return make([]float32, 3), []int{3}, nil
	}
	if shape, ok := s.reshape[key]; ok {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return make([]float32, n), shape, nil
	}
	return s.randomSource.Float32(key)
}

func TestCLIPTextLoadWeightsNamesBadKeys(t *testing.T) {
	cfg := tinyCLIPConfig()
	m, err := NewCLIPTextModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	expected, err := m.ExpectedKeys()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(expected); n != 2+16*cfg.NumHiddenLayers+2 {
		t.Errorf("%d expected keys, want %d (2 embeddings, 16 per layer, final norm)", n, 2+16*cfg.NumHiddenLayers+2)
	}
	rs := randomSource{expected, 1}
	fc1 := "text_model.encoder.layers.1.mlp.fc1.weight"
	for _, tc := range []struct {
		name string
		src  nn.Source
		want string // "" = loads
	}{
		{"all keys", rs, ""},
		{"position_ids buffer is ignored", editedSource{randomSource: rs, add: positionIDsKey}, ""},
		{"missing weight", editedSource{randomSource: rs, drop: fc1}, "1 missing (" + fc1 + ")"},
		{"unexpected weight", editedSource{randomSource: rs, add: "text_projection.weight"}, "1 unexpected (text_projection.weight)"},
		{"wrong shape", editedSource{randomSource: rs, reshape: map[string][]int{fc1: {24, 17}}}, fc1 + " has shape [24 17], the config expects [24 16]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := NewCLIPTextModel(cfg)
			err := m.LoadWeights(tc.src)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// BenchmarkCLIPTextSD15 encodes a batch of 2 × 77 tokens (a CFG pair) with
// Stable Diffusion 1.x's text encoder config and random weights.
func BenchmarkCLIPTextSD15(b *testing.B) {
	cfg := SD15CLIPConfig()
	m := newRandomCLIP(b, cfg)
	backend := goBackend(b)
	const batch, seqLen = 2, 77
	ids := randomIDs(rand.New(rand.NewPCG(3, 4)), batch*seqLen, cfg.VocabSize)
	if _, _, err := m.Encode(backend, ids, batch, seqLen, 0); err != nil { // compile outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, _, err := m.Encode(backend, ids, batch, seqLen, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCLIPTextForwardTakesInt64IDs(t *testing.T) {
	cfg := tinyCLIPConfig()
	m := newRandomCLIP(t, cfg)
	b := goBackend(t)
	ids32 := randomIDs(rand.New(rand.NewPCG(5, 6)), 2*7, cfg.VocabSize)
	ids32[3] = int32(cfg.EOSTokenID)
	want, err := m.EncodeAll(b, ids32, 2, 7)
	if err != nil {
		t.Fatal(err)
	}
	ids64 := make([]int64, len(ids32))
	for i, v := range ids32 {
		ids64[i] = int64(v)
	}
	var hidden, pooled []float32
	err = nn.Try(func() {
		e := context.MustNewExec(b, m.Ctx.Reuse(), func(ctx *context.Context, ids *Node) (*Node, *Node) {
			o := m.Forward(ctx, ids, 0)
			return o.LastHiddenState, o.PoolerOutput
		})
		out := e.MustExec(tensors.FromFlatDataAndDimensions(ids64, 2, 7))
		hidden, pooled = nn.Values(out[0]), nn.Values(out[1])
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hidden, want.LastHiddenState) || !slices.Equal(pooled, want.PoolerOutput) {
		t.Error("int64 ids give different outputs from int32 ids")
	}
}
