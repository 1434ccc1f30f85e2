package weights

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
)

// archShapes lists the diffusers keys and shapes of a component built from
// its config, following diffusers' UNet2DConditionModel, AutoencoderKL and
// transformers' CLIPTextModel constructors. Tests use it to build synthetic
// models of any size.
func archShapes(component string, config []byte) (map[string][]int, error) {
	var c struct {
		In        int      `json:"in_channels"`
		OutCh     int      `json:"out_channels"`
		Blocks    []int    `json:"block_out_channels"`
		Layers    int      `json:"layers_per_block"`
		Down      []string `json:"down_block_types"`
		Up        []string `json:"up_block_types"`
		CrossDim  int      `json:"cross_attention_dim"`
		Linear    bool     `json:"use_linear_projection"`
		Latent    int      `json:"latent_channels"`
		Hidden    int      `json:"hidden_size"`
		Inter     int      `json:"intermediate_size"`
		NumLayers int      `json:"num_hidden_layers"`
		Vocab     int      `json:"vocab_size"`
		Positions int      `json:"max_position_embeddings"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, err
	}
	s := map[string][]int{}
	lin := func(p string, out, in int, bias bool) {
		s[p+".weight"] = []int{out, in}
		if bias {
			s[p+".bias"] = []int{out}
		}
	}
	conv := func(p string, out, in, k int) {
		s[p+".weight"] = []int{out, in, k, k}
		s[p+".bias"] = []int{out}
	}
	norm := func(p string, ch int) { s[p+".weight"], s[p+".bias"] = []int{ch}, []int{ch} }
	resnet := func(p string, in, out, temb int) {
		norm(p+".norm1", in)
		conv(p+".conv1", out, in, 3)
		if temb > 0 {
			lin(p+".time_emb_proj", out, temb, true)
		}
		norm(p+".norm2", out)
		conv(p+".conv2", out, out, 3)
		if in != out {
			conv(p+".conv_shortcut", out, in, 1)
		}
	}
	transformer := func(p string, ch int) {
		norm(p+".norm", ch)
		for _, io := range []string{".proj_in", ".proj_out"} {
			if c.Linear {
				lin(p+io, ch, ch, true)
			} else {
				conv(p+io, ch, ch, 1)
			}
		}
		b := p + ".transformer_blocks.0"
		for i, kv := range []int{ch, c.CrossDim} {
			a := fmt.Sprintf("%s.attn%d", b, i+1)
			lin(a+".to_q", ch, ch, false)
			lin(a+".to_k", ch, kv, false)
			lin(a+".to_v", ch, kv, false)
			lin(a+".to_out.0", ch, ch, true)
		}
		lin(b+".ff.net.0.proj", 8*ch, ch, true) // GEGLU: two halves of 4·ch
		lin(b+".ff.net.2", ch, 4*ch, true)
		for i := 1; i <= 3; i++ {
			norm(fmt.Sprintf("%s.norm%d", b, i), ch)
		}
	}
	switch component {
	case UNet:
		c0, n := c.Blocks[0], len(c.Blocks)
		temb := 4 * c0
		conv("conv_in", c0, c.In, 3)
		lin("time_embedding.linear_1", temb, c0, true)
		lin("time_embedding.linear_2", temb, temb, true)
		prev := c0
		for b, ch := range c.Blocks {
			for j := range c.Layers {
				resnet(fmt.Sprintf("down_blocks.%d.resnets.%d", b, j), map[bool]int{true: prev, false: ch}[j == 0], ch, temb)
				if c.Down[b] == "CrossAttnDownBlock2D" {
					transformer(fmt.Sprintf("down_blocks.%d.attentions.%d", b, j), ch)
				}
			}
			if b < n-1 {
				conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", b), ch, ch, 3)
			}
			prev = ch
		}
		last := c.Blocks[n-1]
		resnet("mid_block.resnets.0", last, last, temb)
		transformer("mid_block.attentions.0", last)
		resnet("mid_block.resnets.1", last, last, temb)
		rev := slices.Clone(c.Blocks)
		slices.Reverse(rev)
		out := rev[0]
		for b := range n {
			prevOut := out
			out = rev[b]
			in := rev[min(b+1, n-1)]
			for j := range c.Layers + 1 {
				skip := out
				if j == c.Layers {
					skip = in
				}
				rin := out
				if j == 0 {
					rin = prevOut
				}
				resnet(fmt.Sprintf("up_blocks.%d.resnets.%d", b, j), rin+skip, out, temb)
				if c.Up[b] == "CrossAttnUpBlock2D" {
					transformer(fmt.Sprintf("up_blocks.%d.attentions.%d", b, j), out)
				}
			}
			if b < n-1 {
				conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", b), out, out, 3)
			}
		}
		norm("conv_norm_out", c0)
		conv("conv_out", c.OutCh, c0, 3)
	case VAE:
		n, c0, last := len(c.Blocks), c.Blocks[0], c.Blocks[len(c.Blocks)-1]
		mid := func(p string) {
			resnet(p+".mid_block.resnets.0", last, last, 0)
			norm(p+".mid_block.attentions.0.group_norm", last)
			for _, q := range []string{"to_q", "to_k", "to_v", "to_out.0"} {
				lin(p+".mid_block.attentions.0."+q, last, last, true)
			}
			resnet(p+".mid_block.resnets.1", last, last, 0)
		}
		conv("encoder.conv_in", c0, c.In, 3)
		prev := c0
		for b, ch := range c.Blocks {
			for j := range c.Layers {
				resnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", b, j), map[bool]int{true: prev, false: ch}[j == 0], ch, 0)
			}
			if b < n-1 {
				conv(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", b), ch, ch, 3)
			}
			prev = ch
		}
		mid("encoder")
		norm("encoder.conv_norm_out", last)
		conv("encoder.conv_out", 2*c.Latent, last, 3)
		conv("quant_conv", 2*c.Latent, 2*c.Latent, 1)
		conv("post_quant_conv", c.Latent, c.Latent, 1)
		conv("decoder.conv_in", last, c.Latent, 3)
		mid("decoder")
		rev := slices.Clone(c.Blocks)
		slices.Reverse(rev)
		prev = rev[0]
		for b, ch := range rev {
			for j := range c.Layers + 1 {
				resnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", b, j), map[bool]int{true: prev, false: ch}[j == 0], ch, 0)
			}
			if b < n-1 {
				conv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", b), ch, ch, 3)
			}
			prev = ch
		}
		norm("decoder.conv_norm_out", c0)
		conv("decoder.conv_out", c.OutCh, c0, 3)
	case TextEncoder:
		h := c.Hidden
		s["text_model.embeddings.token_embedding.weight"] = []int{c.Vocab, h}
		s["text_model.embeddings.position_embedding.weight"] = []int{c.Positions, h}
		for i := range c.NumLayers {
			p := fmt.Sprintf("text_model.encoder.layers.%d.", i)
			for _, q := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
				lin(p+"self_attn."+q, h, h, true)
			}
			norm(p+"layer_norm1", h)
			norm(p+"layer_norm2", h)
			lin(p+"mlp.fc1", c.Inter, h, true)
			lin(p+"mlp.fc2", h, c.Inter, true)
		}
		norm("text_model.final_layer_norm", h)
	default:
		return nil, fmt.Errorf("no architecture for %q", component)
	}
	return s, nil
}

// synthSource serves deterministic pseudo-random tensors for given shapes.
type synthSource struct {
	shapes map[string][]int
	keys   []string
	seed   uint64
}

func newSynthSource(shapes map[string][]int, seed uint64) *synthSource {
	s := &synthSource{shapes: shapes, seed: seed}
	for k := range shapes {
		s.keys = append(s.keys, k)
	}
	sort.Strings(s.keys)
	return s
}

func (s *synthSource) Keys() []string { return slices.Clone(s.keys) }

func (s *synthSource) Info(key string) (DType, []int, bool) {
	sh, ok := s.shapes[key]
	return F32, slices.Clone(sh), ok
}

func (s *synthSource) Float32(key string) ([]float32, []int, error) {
	sh, ok := s.shapes[key]
	if !ok {
		return nil, nil, fmt.Errorf("no %s", key)
	}
	n := 1
	for _, d := range sh {
		n *= d
	}
	// xorshift64 seeded by the key: cheap, reproducible, values in [-0.5, 0.5).
	x := s.seed ^ 0x9e3779b97f4a7c15
	for _, ch := range key {
		x = (x ^ uint64(ch)) * 0x100000001b3
	}
	out := make([]float32, n)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = float32(x>>40)/(1<<24) - 0.5
	}
	return out, slices.Clone(sh), nil
}

// synthModel builds a model of synthetic tensors from configs.
func synthModel(t testing.TB, configs map[string][]byte, seed uint64) *Model {
	t.Helper()
	m := &Model{Format: "synthetic", Components: map[string]*Component{}}
	for _, name := range modelComponents {
		shapes, err := archShapes(name, configs[name])
		if err != nil {
			t.Fatal(err)
		}
		m.Components[name] = &Component{Name: name, Config: configs[name], Source: newSynthSource(shapes, seed)}
	}
	return m
}

// goldenDir finds ../shared/golden without the internal/golden package
// (which imports this one).
func goldenDir(t *testing.T) string {
	d := os.Getenv("LDM_GOLDEN_DIR")
	if d == "" {
		d = filepath.Join("..", "..", "shared", "golden")
	}
	if _, err := os.Stat(filepath.Join(d, "manifest.json")); err != nil {
		t.Skipf("golden data not found (%v): set LDM_GOLDEN_DIR", err)
	}
	return d
}

// The synthetic architectures must be those of diffusers, or the round-trip
// and memory tests would test a fiction.
func TestArchShapesMatchGoldenFolder(t *testing.T) {
	dir := filepath.Join(goldenDir(t), "tiny_sd15")
	m, err := OpenModel(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, name := range modelComponents {
		c := m.Components[name]
		want, err := archShapes(name, c.Config)
		if err != nil {
			t.Fatal(err)
		}
		keys := c.Source.Keys()
		if len(keys) != len(want) {
			t.Errorf("%s: folder has %d keys, architecture %d", name, len(keys), len(want))
		}
		for _, k := range keys {
			_, shape, _ := c.Source.Info(k)
			if !slices.Equal(shape, want[k]) {
				t.Errorf("%s/%s: folder %v, architecture %v", name, k, shape, want[k])
			}
		}
	}
}

// smallConfigs shrinks a preset's channels so the whole structure (4 levels,
// 2 layers per block, 12 or 24 text layers) fits in a fast test.
func smallConfigs(t testing.TB, preset string) map[string][]byte {
	t.Helper()
	p, err := Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(name string, f func(m map[string]any)) {
		var m map[string]any
		if err := json.Unmarshal(p[name], &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		p[name], _ = json.Marshal(m)
	}
	edit(UNet, func(m map[string]any) {
		m["block_out_channels"] = []int{32, 64, 64, 64}
		m["cross_attention_dim"] = 48
	})
	edit(VAE, func(m map[string]any) { m["block_out_channels"] = []int{32, 32, 64, 64} })
	edit(TextEncoder, func(m map[string]any) {
		m["hidden_size"], m["intermediate_size"], m["vocab_size"] = 48, 96, 1000
	})
	return p
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// The presets are the published models: their parameter counts are known
// (diffusers' model cards and num_parameters()).
func TestPresetParameterCounts(t *testing.T) {
	want := map[string]map[string]int64{
		"sd15": {UNet: 859_520_964, VAE: 83_653_863, TextEncoder: 123_060_480},
		"sd21": {UNet: 865_910_724, VAE: 83_653_863, TextEncoder: 340_387_840},
	}
	for preset, counts := range want {
		cfgs, err := Preset(preset)
		if err != nil {
			t.Fatal(err)
		}
		for name, n := range counts {
			shapes, err := archShapes(name, cfgs[name])
			if err != nil {
				t.Fatal(err)
			}
			if got := CountParameters(newSynthSource(shapes, 0)); got != n {
				t.Errorf("%s %s: %d parameters, want %d", preset, name, got, n)
			}
		}
	}
}
