package unet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// fileSource presents a safetensors file as an nn.Source.
type fileSource struct{ *weights.File }

func (f fileSource) Keys() []string { return f.Names() }

func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadGoldenModel reads a case's diffusers unet folder.
func loadGoldenModel(t testing.TB, dir string) *Model {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := weights.Open(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.LoadWeights(fileSource{f}); err != nil {
		t.Fatal(err)
	}
	return m
}

func int64sToFloat32(v []int64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// TestGoldenUNet compares the output for per-sample timesteps (case A), for
// one timestep shared by the batch (case B), and every sub-block output of
// case A that the data file holds, with diffusers v0.29.2.
func TestGoldenUNet(t *testing.T) {
	backend := testBackend(t)
	golden.ForKind(t, "unet", func(t *testing.T, c golden.Case) {
		m := loadGoldenModel(t, c.Path("model"))
		data := c.Tensors(t, "data")
		sample, sampleShape := golden.Float32(t, data, "sample")
		ehs, ehsShape := golden.Float32(t, data, "encoder_hidden_states")
		tA, _ := golden.Int64(t, data, "timesteps_A")
		tB, _ := golden.Int64(t, data, "timestep_B")

		var taps []string
		for _, name := range data.Names() {
			if s, ok := strings.CutPrefix(name, "inter_A."); ok {
				taps = append(taps, s)
			}
		}
		var outs []*tensors.Tensor
		err := nn.Try(func() {
			e := context.MustNewExec(backend, m.Ctx.Reuse(), func(ctx *context.Context, x, ts, h *Node) []*Node {
				got := map[string]*Node{}
				res := []*Node{m.Apply(ctx, x, ts, h, WithTaps(got))}
				for _, name := range taps {
					n, ok := got[name]
					if !ok {
						panic(fmt.Errorf("Apply produces no tap %q", name))
					}
					res = append(res, n)
				}
				return res
			})
			outs = e.MustExec(tensors.FromFlatDataAndDimensions(sample, sampleShape...),
				tensors.FromFlatDataAndDimensions(int64sToFloat32(tA), len(tA)),
				tensors.FromFlatDataAndDimensions(ehs, ehsShape...))
		})
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, got []float32) {
			want, _ := golden.Float32(t, data, what)
			golden.AssertClose(t, what, got, want, c.Tol(golden.MaxAbs(want)))
		}
		check("out_A", nn.Values(outs[0]))
		for i, name := range taps {
			check("inter_A."+name, nn.Values(outs[i+1]))
		}

		// Case B goes through Run, the pipeline's entry point.
		got, err := m.Run(backend, sample, sampleShape, int64sToFloat32(tB), ehs, ehsShape)
		if err != nil {
			t.Fatal(err)
		}
		check("out_B", got)
	})
}

// tinyConfig is a small random U-Net with both block kinds, a mid block and
// per-block heads.
func tinyConfig(t testing.TB, inChannels int) Config {
	t.Helper()
	cfg, err := ParseConfig(fmt.Appendf(nil, `{"in_channels": %d, "block_out_channels": [8, 16],
		"down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
		"layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": [2, 4], "cross_attention_dim": 6}`, inChannels))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func randn(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestRunInpaintingNonSquareSharedTimestep runs a 9-channel (inpainting)
// U-Net on a non-square batch and checks that one timestep for the batch, a
// scalar timestep and the same value repeated per sample agree, and that
// samples are independent of each other.
func TestRunInpaintingNonSquareSharedTimestep(t *testing.T) {
	backend := testBackend(t)
	m, err := New(tinyConfig(t, 9))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitWeights(7); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	b, h, w, tok := 2, 8, 4, 5
	sample := randn(r, b*9*h*w)
	ehs := randn(r, b*tok*6)
	shared, err := m.Run(backend, sample, []int{b, 9, h, w}, []float32{321}, ehs, []int{b, tok, 6})
	if err != nil {
		t.Fatal(err)
	}
	if len(shared) != b*4*h*w {
		t.Fatalf("got %d outputs, want %d ([%d,4,%d,%d])", len(shared), b*4*h*w, b, h, w)
	}
	perSample, err := m.Run(backend, sample, []int{b, 9, h, w}, []float32{321, 321}, ehs, []int{b, tok, 6})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(shared, perSample); d > 1e-6 {
		t.Errorf("[t] vs [t,t]: max abs diff %g", d)
	}
	var scalar []float32
	err = nn.Try(func() {
		e := context.MustNewExec(backend, m.Ctx.Reuse(), func(ctx *context.Context, x, ts, e *Node) *Node {
			return m.Apply(ctx, x, ts, e)
		})
		scalar = nn.Values(e.MustExec(tensors.FromFlatDataAndDimensions(sample, b, 9, h, w),
			tensors.FromValue(float32(321)), tensors.FromFlatDataAndDimensions(ehs, b, tok, 6))[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(shared, scalar); d > 1e-6 {
		t.Errorf("[t] vs scalar t: max abs diff %g", d)
	}
	// The second sample alone gives the second half of the batched output.
	half := len(sample) / b
	one, err := m.Run(backend, sample[half:], []int{1, 9, h, w}, []float32{321}, ehs[len(ehs)/b:], []int{1, tok, 6})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(one, shared[len(shared)/b:]); d > 1e-5 {
		t.Errorf("batch of 1 vs batch of 2: max abs diff %g", d)
	}
	if d := maxAbsDiff(shared[:len(shared)/b], shared[len(shared)/b:]); d < 1e-3 {
		t.Errorf("different inputs gave the same output (diff %g): the model is degenerate", d)
	}
}

func TestRunRejectsBadShapes(t *testing.T) {
	backend := testBackend(t)
	m, err := New(tinyConfig(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		sample, ehs []int
		timesteps   int
		wantInError string
	}{
		{"empty height", []int{1, 4, 0, 8}, []int{1, 3, 6}, 1, "must be positive"},
		{"channels", []int{1, 3, 8, 8}, []int{1, 3, 6}, 1, "[B,4,H,W]"},
		{"timesteps count", []int{2, 4, 8, 8}, []int{2, 3, 6}, 3, "3 timesteps for a batch of 2"},
		{"context width", []int{1, 4, 8, 8}, []int{1, 3, 7}, 1, "encoder_hidden_states must be [1,T,6]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Run(backend, make([]float32, prod(tc.sample)), tc.sample, make([]float32, tc.timesteps),
				make([]float32, prod(tc.ehs)), tc.ehs)
			if err == nil || !strings.Contains(err.Error(), tc.wantInError) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantInError)
			}
		})
	}
}

// TestNonDivisibleSizeUpsamplesToSkip: a sample whose sides are not
// multiples of DownFactor runs, as in diffusers, by resizing each
// upsampler's output to its skip connection with PyTorch's nearest rule.
func TestNonDivisibleSizeUpsamplesToSkip(t *testing.T) {
	// F.interpolate(torch.arange(n)[None,None,:,None].float(), size=(m,1),
	// mode="nearest") reads these indices (torch 2.x).
	for _, tc := range []struct {
		in, out int
		want    []int32
	}{
		{4, 8, []int32{0, 0, 1, 1, 2, 2, 3, 3}},
		{5, 9, []int32{0, 0, 1, 1, 2, 2, 3, 3, 4}},
		{3, 5, []int32{0, 0, 1, 1, 2}},
		{4, 9, []int32{0, 0, 0, 1, 1, 2, 2, 3, 3}},
		{9, 18, []int32{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8}},
	} {
		if got := nearestIndices(tc.in, tc.out); !slices.Equal(got, tc.want) {
			t.Errorf("nearest %d→%d reads %v, want %v", tc.in, tc.out, got, tc.want)
		}
	}

	backend := testBackend(t)
	// The graph op reads exactly those indices on both axes.
	r := rand.New(rand.NewPCG(3, 4))
	b, h, w, c, H, W := 2, 3, 5, 2, 5, 9
	x := randn(r, b*h*w*c)
	var got []float32
	if err := nn.Try(func() {
		e := MustNewExec(backend, func(x *Node) *Node { return upsampleNearest(x, H, W) })
		got = nn.Values(e.MustExec(tensors.FromFlatDataAndDimensions(x, b, h, w, c))[0])
	}); err != nil {
		t.Fatal(err)
	}
	iy, ix := nearestIndices(h, H), nearestIndices(w, W)
	for n := range b {
		for y := range H {
			for xx := range W {
				for ch := range c {
					want := x[((n*h+int(iy[y]))*w+int(ix[xx]))*c+ch]
					if g := got[((n*H+y)*W+xx)*c+ch]; g != want {
						t.Fatalf("out[%d,%d,%d,%d] = %g, want in[%d,%d,%d,%d] = %g", n, y, xx, ch, g, n, iy[y], ix[xx], ch, want)
					}
				}
			}
		}
	}

	// A two-level U-Net (factor 2) on odd sides: the output has the
	// sample's size and each sample stays independent of the other.
	m, err := New(tinyConfig(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitWeights(5); err != nil {
		t.Fatal(err)
	}
	for _, size := range [][2]int{{7, 9}, {5, 6}, {1, 3}} {
		sh, sw := size[0], size[1]
		sample := randn(r, 2*4*sh*sw)
		ehs := randn(r, 2*3*6)
		out, err := m.Run(backend, sample, []int{2, 4, sh, sw}, []float32{500}, ehs, []int{2, 3, 6})
		if err != nil {
			t.Fatalf("%d×%d: %v", sh, sw, err)
		}
		if len(out) != 2*4*sh*sw {
			t.Fatalf("%d×%d: %d outputs, want %d", sh, sw, len(out), 2*4*sh*sw)
		}
		one, err := m.Run(backend, sample[len(sample)/2:], []int{1, 4, sh, sw}, []float32{500}, ehs[len(ehs)/2:], []int{1, 3, 6})
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(one, out[len(out)/2:]); d > 1e-5 || math.IsNaN(d) {
			t.Errorf("%d×%d: batch of 1 vs batch of 2: max abs diff %g", sh, sw, d)
		}
	}
}

// subsetSource drops and adds keys of another source.
type subsetSource struct {
	nn.Source
	drop  string
	extra string
}

func (s subsetSource) Keys() []string {
	keys := slices.DeleteFunc(s.Source.Keys(), func(k string) bool { return k == s.drop })
	return append(keys, s.extra)
}

func (s subsetSource) Float32(key string) ([]float32, []int, error) {
	if key == s.extra {
		return []float32{1}, []int{1}, nil
	}
	return s.Source.Float32(key)
}

func TestLoadWeightsNamesMissingAndUnexpectedKeys(t *testing.T) {
	m, err := New(tinyConfig(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	shapes, err := m.ExpectedKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"conv_in.weight", "time_embedding.linear_2.bias",
		"down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
		"down_blocks.0.downsamplers.0.conv.weight", "mid_block.attentions.0.proj_in.weight",
		"up_blocks.0.resnets.1.conv_shortcut.weight", "up_blocks.0.upsamplers.0.conv.bias",
		"up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight", "conv_norm_out.weight",
	} {
		if _, ok := shapes[k]; !ok {
			t.Errorf("expected key %s is not among the model's weights", k)
		}
	}
	// proj_in is a 1×1 convolution without use_linear_projection: OIHW.
	if got := shapes["mid_block.attentions.0.proj_in.weight"]; !slices.Equal(got, []int{16, 16, 1, 1}) {
		t.Errorf("mid_block proj_in shape %v, want [16 16 1 1]", got)
	}
	src := subsetSource{Source: nn.RandomSource(shapes, 1), drop: "mid_block.resnets.1.conv2.bias", extra: "mid_block.bogus.weight"}
	err = m.LoadWeights(src)
	if err == nil || !strings.Contains(err.Error(), "1 missing: mid_block.resnets.1.conv2.bias") ||
		!strings.Contains(err.Error(), "1 unexpected: mid_block.bogus.weight") {
		t.Fatalf("got %v, want an error naming the missing and the unexpected key", err)
	}
	m2, _ := New(tinyConfig(t, 4))
	if err := m2.LoadWeights(nn.RandomSource(shapes, 1)); err != nil {
		t.Fatalf("complete weights: %v", err)
	}
	// A 4-channel checkpoint in a 9-channel (inpainting) config: conv_in has the wrong shape.
	m9, _ := New(tinyConfig(t, 9))
	err = m9.LoadWeights(nn.RandomSource(shapes, 1))
	if err == nil || !strings.Contains(err.Error(), "conv_in.weight [8 4 3 3] (config wants [8 9 3 3])") {
		t.Fatalf("got %v, want the conv_in shape mismatch named", err)
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		// check runs on success; wantErr is a substring of the error otherwise.
		check   func(t *testing.T, c Config, p *plan)
		wantErr string
	}{
		{name: "empty is the diffusers default (SD 1.x layout)", json: `{}`, check: func(t *testing.T, c Config, p *plan) {
			if !slices.Equal(c.BlockOutChannels, []int{320, 640, 1280, 1280}) || c.InChannels != 4 || !c.FlipSinToCos ||
				c.NormEps != 1e-5 || *c.NormNumGroups != 32 || c.MidBlockType == nil {
				t.Errorf("defaults: %+v", c)
			}
			if len(p.down) != 4 || p.down[3].attn != nil || p.down[0].attn.heads != 8 || p.down[0].attn.crossDim != 1280 ||
				p.mid.attn.heads != 8 || p.timeEmbedDim != 1280 || len(p.up[0].resnets) != 3 || p.up[3].sampler {
				t.Errorf("plan: %+v", p)
			}
			// up_blocks.1.resnets.2 concatenates the 640-channel output of down_blocks.1's downsampler.
			if r := p.up[1].resnets[2]; r.in != 1280 || r.skip != 640 || r.out != 1280 {
				t.Errorf("up_blocks.1.resnets.2 = %+v, want in 1280 skip 640 out 1280", r)
			}
			if r := p.up[3].resnets[0]; r.in != 640 || r.skip != 320 || r.out != 320 {
				t.Errorf("up_blocks.3.resnets.0 = %+v, want in 640 skip 320 out 320", r)
			}
		}},
		{name: "SD2 per-block heads, mid uses the last", json: `{"attention_head_dim": [5, 10, 20, 20], "use_linear_projection": true, "cross_attention_dim": 1024}`,
			check: func(t *testing.T, c Config, p *plan) {
				if p.down[0].attn.heads != 5 || p.down[2].attn.heads != 20 || p.mid.attn.heads != 20 || p.up[3].attn.heads != 5 ||
					p.up[1].attn.heads != 20 || !p.up[1].attn.linear {
					t.Errorf("heads: down %d %d mid %d up %d %d", p.down[0].attn.heads, p.down[2].attn.heads, p.mid.attn.heads, p.up[1].attn.heads, p.up[3].attn.heads)
				}
			}},
		{name: "num_attention_heads takes precedence", json: `{"attention_head_dim": 64, "num_attention_heads": [5, 10, 20, 20]}`,
			check: func(t *testing.T, c Config, p *plan) {
				if p.down[0].attn.heads != 5 || p.mid.attn.heads != 20 {
					t.Errorf("heads %d, mid %d", p.down[0].attn.heads, p.mid.attn.heads)
				}
			}},
		{name: "NaN and Infinity tolerated", json: `{"sample_size": 64, "dropout": NaN, "norm_eps": 1e-5}`,
			check: func(t *testing.T, c Config, p *plan) {
				if c.SampleSize != 64 {
					t.Errorf("sample_size %d", c.SampleSize)
				}
			}},
		{name: "null mid block", json: `{"mid_block_type": null}`, check: func(t *testing.T, c Config, p *plan) {
			if p.mid != nil {
				t.Error("mid block present")
			}
		}},
		{name: "inpainting in_channels", json: `{"in_channels": 9}`, check: func(t *testing.T, c Config, p *plan) {
			if c.InChannels != 9 {
				t.Errorf("in_channels %d", c.InChannels)
			}
		}},
		{name: "SDXL addition embeds", json: `{"addition_embed_type": "text_time"}`, wantErr: "addition_embed_type"},
		{name: "class embeds", json: `{"class_embed_type": "timestep"}`, wantErr: "class_embed_type"},
		{name: "dual cross attention", json: `{"dual_cross_attention": true}`, wantErr: "dual_cross_attention"},
		{name: "fourier time", json: `{"time_embedding_type": "fourier"}`, wantErr: "time_embedding_type"},
		{name: "scale_shift", json: `{"resnet_time_scale_shift": "scale_shift"}`, wantErr: "resnet_time_scale_shift"},
		{name: "heads list length", json: `{"attention_head_dim": [8, 8]}`, wantErr: "attention_head_dim has 2 entries"},
		{name: "block count", json: `{"block_out_channels": [32, 64]}`, wantErr: "must have the same length"},
		{name: "unknown block", json: `{"down_block_types": ["SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"]}`, wantErr: "down_block_types[0]"},
		{name: "unknown mid block", json: `{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}`, wantErr: "mid_block_type"},
		{name: "groups do not divide", json: `{"norm_num_groups": 48}`, wantErr: "norm_num_groups 48 does not divide the 320 channels of conv_norm_out"},
		{name: "activation", json: `{"act_fn": "gelu"}`, wantErr: "act_fn"},
		{name: "wrong type", json: `{"in_channels": "four"}`, wantErr: "in_channels"},
		{name: "asymmetric transformer layers", json: `{"reverse_transformer_layers_per_block": [[1], [2]]}`, wantErr: "reverse_transformer_layers_per_block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, err := c.plan()
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c, p)
		})
	}
}

func TestFLOPsCountedByHand(t *testing.T) {
	for _, tc := range []struct {
		name       string
		json       string
		b, h, w, t int
		want       int64
	}{
		// time 8·32+32·32 = 1280; conv_in 16·4·8·9 = 4608; down resnet 2·(16·8·8·9)+32·8 = 18688;
		// two up resnets (8+8→8): 16·16·8·9 + 16·8·8·9 + 16·16·8 + 32·8 = 29952 each; conv_out 4608.
		{"one plain level", `{"block_out_channels": [8], "down_block_types": ["DownBlock2D"], "up_block_types": ["UpBlock2D"],
			"layers_per_block": 1, "norm_num_groups": 4, "mid_block_type": null, "time_embedding_dim": 32}`,
			1, 4, 4, 3, 2 * (1280 + 4608 + 18688 + 2*29952 + 4608)},
		// Per sample at 2×2 (n=4 pixels, T=3, D=6, c=inner=8): time 1280; conv_in 1152; down resnet 4864;
		// transformer = proj 512 + self (4·4·64 + 2·4·4·8 = 1280) + cross (2·4·64 + 2·3·6·8 + 2·4·3·8 = 992)
		// + ff 12·4·64 = 3072 → 5856; mid 2·4864 + 5856; up 2·((4·16·8·9 + 4·8·8·9 + 4·16·8 + 256) + 5856);
		// conv_out 1152. Batch 2.
		{"one attention level with mid", `{"block_out_channels": [8], "down_block_types": ["CrossAttnDownBlock2D"],
			"up_block_types": ["CrossAttnUpBlock2D"], "layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": 2,
			"cross_attention_dim": 6, "time_embedding_dim": 32}`,
			2, 2, 2, 3, 2 * 2 * (1280 + 1152 + 4864 + 5856 + (2*4864 + 5856) + 2*(7680+5856) + 1152)},
		// Two levels: the downsampler conv runs at the halved size, the upsampler's at the doubled one.
		// time 1280; conv_in 16·4·8·9 = 4608; down0 resnet 18688; downsampler 4·8·8·9 = 2304;
		// down1 resnet 8→16 at 4 px: 4·8·16·9 + 4·16·16·9 + 4·8·16 + 32·16 = 4608+9216+512+512 = 14848;
		// up0 (r=1): resnets (16+16→16) 4·32·16·9+4·16·16·9+4·32·16+512 = 18432+9216+2048+512 = 30208 and
		// (16+8→16) 4·24·16·9+9216+4·24·16+512 = 13824+9216+1536+512 = 25088; upsampler 16·16·16·9 = 36864;
		// up1 (r=0): (16+8→8) 16·24·8·9+16·8·8·9+16·24·8+256 = 27648+9216+3072+256 = 40192 and
		// (8+8→8) 29952; conv_out 4608.
		{"two plain levels", `{"block_out_channels": [8, 16], "down_block_types": ["DownBlock2D", "DownBlock2D"],
			"up_block_types": ["UpBlock2D", "UpBlock2D"], "layers_per_block": 1, "norm_num_groups": 4, "mid_block_type": null,
			"time_embedding_dim": 32}`,
			1, 4, 4, 1, 2 * (1280 + 4608 + 18688 + 2304 + 14848 + 30208 + 25088 + 36864 + 40192 + 29952 + 4608)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			got, err := FLOPs(cfg, tc.b, tc.h, tc.w, tc.t)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("FLOPs = %d, want %d", got, tc.want)
			}
		})
	}
	if _, err := FLOPs(DefaultConfig(), 1, 60, 64, 77); err == nil {
		t.Error("want an error for a height that is not a multiple of 8")
	}
}

// sd15Config is the Stable Diffusion 1.5 U-Net (runwayml config.json): the
// class defaults with a 768-wide CLIP context.
func sd15Config() Config {
	c := DefaultConfig()
	c.CrossAttentionDim = IntList{768}
	c.SampleSize = 64
	return c
}

func TestFLOPsOfSD15(t *testing.T) {
	f, err := FLOPs(sd15Config(), 1, 64, 64, 77)
	if err != nil {
		t.Fatal(err)
	}
	// Published counts for the SD 1.5 U-Net at 512×512 are about 0.4 TMAC (0.8 TFLOP).
	if f < 700e9 || f > 900e9 {
		t.Errorf("SD1.5 64×64: %.1f GFLOP, want about 800", float64(f)/1e9)
	}
	t.Logf("SD1.5 U-Net, one 64×64 latent, 77 tokens: %.1f GFLOP", float64(f)/1e9)
}

// BenchmarkUNetForward times one forward pass with batch 2 (a CFG step): the
// golden tiny U-Nets at their 8×8 latents, and the full SD 1.5 U-Net with
// random weights at 32×32 and 64×64 latents (512 px), which take minutes per
// op on the pure-Go backend and run only with LDM_BENCH_FULL=1, e.g.
//
//	LDM_BENCH_FULL=1 go test ./unet -run '^$' -bench 'UNetForward/sd15_64' -benchtime=1x
func BenchmarkUNetForward(b *testing.B) {
	backend := testBackend(b)
	run := func(b *testing.B, m *Model, h, w, tokens int, warm bool) {
		c := m.Config
		r := rand.New(rand.NewPCG(3, 4))
		shape := []int{2, c.InChannels, h, w}
		sample := randn(r, prod(shape))
		ehsShape := []int{2, tokens, m.crossDim()}
		ehs := randn(r, prod(ehsShape))
		ts := []float32{981, 1}
		if warm { // compile outside the timing
			if _, err := m.Run(backend, sample, shape, ts, ehs, ehsShape); err != nil {
				b.Fatal(err)
			}
		}
		flops, err := FLOPs(c, 2, h, w, tokens)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, err := m.Run(backend, sample, shape, ts, ehs, ehsShape); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(flops)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
	for _, c := range golden.Load(b).Cases {
		if c.Kind != "unet" {
			continue
		}
		b.Run(c.Name+"_b2", func(b *testing.B) {
			m := loadGoldenModel(b, c.Path("model"))
			data := c.Tensors(b, "data")
			_, s := golden.Float32(b, data, "sample")
			_, e := golden.Float32(b, data, "encoder_hidden_states")
			run(b, m, s[2], s[3], e[1], true)
		})
	}
	for _, size := range []int{32, 64} {
		b.Run(fmt.Sprintf("sd15_%dx%d_b2", size, size), func(b *testing.B) {
			if os.Getenv("LDM_BENCH_FULL") == "" {
				b.Skip("full-size U-Net: set LDM_BENCH_FULL=1")
			}
			m, err := New(sd15Config())
			if err != nil {
				b.Fatal(err)
			}
			if err := m.InitWeights(1); err != nil {
				b.Fatal(err)
			}
			run(b, m, size, size, 77, false)
		})
	}
}

// TestGradientReachesEveryWeight differentiates a loss through Apply on the
// test backend (the LDM trainer does this) and checks every weight gets a
// finite, non-zero gradient.
func TestGradientReachesEveryWeight(t *testing.T) {
	backend := testBackend(t)
	m, err := New(tinyConfig(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitWeights(3); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	var keys []string
	var norms []float32
	err = nn.Try(func() {
		e := context.MustNewExec(backend, m.Ctx.Reuse(), func(ctx *context.Context, x, ts, h *Node) []*Node {
			loss := ReduceAllMean(Square(m.Apply(ctx, x, ts, h)))
			var vars []*Node
			keys = keys[:0]
			for v := range ctx.IterVariables() {
				keys = append(keys, nn.ScopeToKey(v.Scope(), v.Name()))
				vars = append(vars, v.ValueGraph(x.Graph()))
			}
			var sums []*Node
			for _, g := range Gradient(loss, vars...) {
				sums = append(sums, ReduceAllSum(Abs(g)))
			}
			return []*Node{Stack(sums, 0)}
		})
		norms = nn.Values(e.MustExec(tensors.FromFlatDataAndDimensions(randn(r, 2*4*8*8), 2, 4, 8, 8),
			tensors.FromFlatDataAndDimensions([]float32{10, 900}, 2),
			tensors.FromFlatDataAndDimensions(randn(r, 2*3*6), 2, 3, 6))[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(norms) != len(keys) || len(keys) == 0 {
		t.Fatalf("%d gradients for %d weights", len(norms), len(keys))
	}
	for i, k := range keys {
		if n := float64(norms[i]); n == 0 || math.IsNaN(n) || math.IsInf(n, 0) {
			t.Errorf("%s: sum |grad| = %g", k, n)
		}
	}
}
