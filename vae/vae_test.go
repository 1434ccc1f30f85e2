package vae

import (
	"maps"
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

var goBackend = testutil.GoBackend

// tinyConfig is the golden tiny_sd15/vae config.
func tinyConfig() Config {
	c := DefaultConfig()
	c.BlockOutChannels = []int{32, 32, 64, 64}
	c.DownBlockTypes = slices.Repeat([]string{DownEncoderBlock2D}, 4)
	c.UpBlockTypes = slices.Repeat([]string{UpDecoderBlock2D}, 4)
	c.SampleSize = 64
	return c
}

// sd15Config is the Stable Diffusion 1.5 VAE.
func sd15Config() Config {
	c := tinyConfig()
	c.BlockOutChannels = []int{128, 256, 512, 512}
	c.LayersPerBlock = 2
	c.SampleSize = 512
	return c
}

// randomSource returns seeded weights for every key the model expects,
// scaled like a trained network (unit-variance activations).
func randomSource(t testing.TB, m *AutoencoderKL, seed uint64) nn.MapSource {
	t.Helper()
	keys, err := m.ExpectedKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	src := nn.MapSource{}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		shape := keys[k]
		n, fanIn := 1, 1
		for i, d := range shape {
			n *= d
			if i > 0 {
				fanIn *= d
			}
		}
		data := make([]float32, n)
		for i := range data {
			g := r.NormFloat64()
			switch {
			case len(shape) > 1:
				data[i] = float32(g / math.Sqrt(float64(fanIn)))
			case strings.HasSuffix(k, ".weight"): // norm scale
				data[i] = float32(1 + 0.1*g)
			default:
				data[i] = float32(0.1 * g)
			}
		}
		src[k] = struct {
			Data  []float32
			Shape []int
		}{data, shape}
	}
	return src
}

func randomModel(t testing.TB, cfg Config, seed uint64) *AutoencoderKL {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Backend = goBackend(t)
	if err := m.LoadWeights(randomSource(t, m, seed)); err != nil {
		t.Fatal(err)
	}
	return m
}

func randn(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func TestParseConfigAppliesDiffusersDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		want func(*Config)
	}{
		{"empty file is the class defaults", `{}`, func(*Config) {}},
		{"null shift_factor is 0", `{"shift_factor": null, "scaling_factor": 0.13025}`,
			func(c *Config) { c.ScalingFactor = 0.13025 }},
		{"SD3-style shift and flags", `{"shift_factor": 0.0609, "scaling_factor": 1.5305, "latent_channels": 16,
			"use_quant_conv": false, "use_post_quant_conv": false, "mid_block_add_attention": false}`,
			func(c *Config) {
				c.ShiftFactor, c.ScalingFactor, c.LatentChannels = 0.0609, 1.5305, 16
				c.UseQuantConv, c.UsePostQuantConv, c.MidBlockAddAttention = false, false, false
			}},
		{"sample_size as a list keeps the height", `{"sample_size": [96, 64]}`, func(c *Config) { c.SampleSize = 96 }},
		{"Python literals and unknown fields", `{"force_upcast": true, "latents_mean": null, "x": NaN, "block_out_channels": [128, 128],
			"down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
			"layers_per_block": 2, "act_fn": "swish"}`,
			func(c *Config) {
				c.BlockOutChannels = []int{128, 128}
				c.DownBlockTypes = []string{DownEncoderBlock2D, DownEncoderBlock2D}
				c.UpBlockTypes = []string{UpDecoderBlock2D, UpDecoderBlock2D}
				c.LayersPerBlock, c.ActFn = 2, "swish"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultConfig()
			tc.want(&want)
			if !equalConfig(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func equalConfig(a, b Config) bool {
	return slices.Equal(a.BlockOutChannels, b.BlockOutChannels) && slices.Equal(a.DownBlockTypes, b.DownBlockTypes) &&
		slices.Equal(a.UpBlockTypes, b.UpBlockTypes) &&
		a.InChannels == b.InChannels && a.OutChannels == b.OutChannels && a.LayersPerBlock == b.LayersPerBlock &&
		a.ActFn == b.ActFn && a.LatentChannels == b.LatentChannels && a.NormNumGroups == b.NormNumGroups &&
		a.SampleSize == b.SampleSize && a.ScalingFactor == b.ScalingFactor && a.ShiftFactor == b.ShiftFactor &&
		a.UseQuantConv == b.UseQuantConv && a.UsePostQuantConv == b.UsePostQuantConv &&
		a.MidBlockAddAttention == b.MidBlockAddAttention
}

func TestParseConfigRejectsUnbuildableConfigs(t *testing.T) {
	for _, tc := range []struct{ name, json, wantErr string }{
		{"block count mismatch", `{"block_out_channels": [64, 64]}`, "must match"},
		{"unknown block", `{"down_block_types": ["AttnDownEncoderBlock2D"]}`, "AttnDownEncoderBlock2D"},
		{"groups do not divide channels", `{"norm_num_groups": 48}`, "norm_num_groups"},
		{"unknown activation", `{"act_fn": "tanhshrink"}`, "tanhshrink"},
		{"zero scaling", `{"scaling_factor": 0}`, "scaling_factor"},
		{"not JSON", `{"in_channels": }`, "vae config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestDownsampleFactorFollowsBlockCount(t *testing.T) {
	for _, tc := range []struct {
		channels []int
		want     int
	}{{[]int{64}, 1}, {[]int{32, 64}, 2}, {[]int{128, 256, 512, 512}, 8}, {[]int{8, 8, 8, 8, 8}, 16}} {
		c := Config{BlockOutChannels: tc.channels}
		if got := c.DownsampleFactor(); got != tc.want {
			t.Errorf("%v: factor %d, want %d", tc.channels, got, tc.want)
		}
	}
}

func TestScaleValuesMatchGraphAndInvert(t *testing.T) {
	b := goBackend(t)
	z := randn(rand.New(rand.NewPCG(5, 6)), 64)
	for _, tc := range []struct{ scale, shift float64 }{{0.18215, 0}, {1.5305, 0.0609}, {0.13025, 0}} {
		c := Config{ScalingFactor: tc.scale, ShiftFactor: tc.shift}
		lat := c.ScaleValues(z)
		for i := range z {
			if want := (float64(z[i]) - tc.shift) * tc.scale; math.Abs(float64(lat[i])-want) > 1e-6 {
				t.Fatalf("scale %v shift %v: latents[%d] = %v, want %v", tc.scale, tc.shift, i, lat[i], want)
			}
		}
		back := c.UnscaleValues(lat)
		var g, gb []float32
		err := nn.Try(func() {
			e := context.MustNewExec(b, context.New(), func(_ *context.Context, x *Node) (*Node, *Node) {
				return c.Scale(x), c.Unscale(c.Scale(x))
			})
			res := e.MustExec(tensors.FromFlatDataAndDimensions(z, len(z)))
			g, gb = nn.Values(res[0]), nn.Values(res[1])
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range z {
			if g[i] != lat[i] || gb[i] != back[i] {
				t.Fatalf("graph and values differ at %d: %v/%v, %v/%v", i, g[i], lat[i], gb[i], back[i])
			}
			if d := math.Abs(float64(back[i] - z[i])); d > 1e-6 {
				t.Fatalf("Unscale(Scale(z)) off by %g", d)
			}
		}
	}
}

func TestLoadWeightsNamesMissingAndUnexpectedKeys(t *testing.T) {
	m, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	m.Backend = goBackend(t)
	src := randomSource(t, m, 1)
	delete(src, "decoder.up_blocks.2.resnets.1.conv2.weight")
	src["encoder.down_blocks.9.conv.weight"] = src["quant_conv.bias"]
	err = m.LoadWeights(src)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"1 missing", "decoder.up_blocks.2.resnets.1.conv2.weight", "1 unexpected", "encoder.down_blocks.9.conv.weight"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	src = randomSource(t, m, 1)
	src["decoder.conv_in.weight"] = src["decoder.conv_out.weight"]
	if err := m.LoadWeights(src); err == nil || !strings.Contains(err.Error(), "decoder.conv_in.weight has shape") {
		t.Errorf("wrong shape: error %v", err)
	}
}

func TestLoadWeightsAcceptsDeprecatedAttentionNames(t *testing.T) {
	cfg := tinyConfig()
	modern := randomModel(t, cfg, 3)
	src := randomSource(t, modern, 3)
	old := nn.MapSource{}
	for k, v := range src {
		if strings.Contains(k, "mid_block.attentions.0.") {
			for nw, dep := range map[string]string{"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"} {
				k = strings.Replace(k, "."+nw+".", "."+dep+".", 1)
			}
			if len(v.Shape) == 2 { // stored as a 1×1 conv
				v.Shape = append(slices.Clone(v.Shape), 1, 1)
			}
		}
		old[k] = v
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Backend = goBackend(t)
	if err := m.LoadWeights(old); err != nil {
		t.Fatal(err)
	}
	z := randn(rand.New(rand.NewPCG(7, 8)), 1*4*4*4)
	want, _, err := modern.DecodeRun(z, []int{1, 4, 4, 4})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := m.DecodeRun(z, []int{1, 4, 4, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Error("decoding with deprecated attention names differs")
	}
}

// TestNonSquareImagesKeepTheirShape encodes and decodes images whose sides
// differ and whose latents are not powers of two.
func TestNonSquareImagesKeepTheirShape(t *testing.T) {
	m := randomModel(t, tinyConfig(), 11)
	f := m.Config.DownsampleFactor()
	r := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct{ b, h, w int }{{1, 64, 48}, {2, 40, 24}} {
		image := randn(r, tc.b*3*tc.h*tc.w)
		moments, ms, err := m.EncodeRun(image, []int{tc.b, 3, tc.h, tc.w})
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{tc.b, 8, tc.h / f, tc.w / f}; !slices.Equal(ms, want) {
			t.Fatalf("%dx%d: moments shape %v, want %v", tc.w, tc.h, ms, want)
		}
		z, zs, err := PosteriorSample(moments, ms, randn(r, len(moments)/2))
		if err != nil {
			t.Fatal(err)
		}
		img, is, err := m.DecodeRun(z, zs)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{tc.b, 3, tc.h, tc.w}; !slices.Equal(is, want) {
			t.Fatalf("%dx%d: decoded shape %v, want %v", tc.w, tc.h, is, want)
		}
		for i, v := range img {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%dx%d: decoded value %d is %v", tc.w, tc.h, i, v)
			}
		}
	}
}

func TestRunnersRejectBadShapes(t *testing.T) {
	m, err := New(tinyConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		run   func() error
		wantE string
	}{
		{"image channels", func() error { _, _, err := m.EncodeRun(make([]float32, 4*16*16), []int{1, 4, 16, 16}); return err }, "[B, 3, H, W]"},
		{"image length", func() error { _, _, err := m.EncodeRun(make([]float32, 10), []int{1, 3, 16, 16}); return err }, "needs 768"},
		{"image below factor", func() error { _, _, err := m.EncodeRun(make([]float32, 3*4*16), []int{1, 3, 4, 16}); return err }, "smaller than"},
		{"latent channels", func() error { _, _, err := m.DecodeRun(make([]float32, 8), []int{1, 8, 1, 1}); return err }, "[B, 4, H, W]"},
		{"moments odd channels", func() error { _, _, err := PosteriorSample(make([]float32, 3), []int{1, 3, 1, 1}, nil); return err }, "moments shape"},
	} {
		if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.wantE) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantE)
		}
	}
}

// TestPosteriorSampleMatchesGraph covers the logvar clamp on both sides.
func TestPosteriorSampleMatchesGraph(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	shape := []int{2, 8, 3, 5}
	moments := randn(r, 2*8*3*5)
	for i := range moments {
		moments[i] *= 20 // logvar beyond [-30, 20] in places
	}
	eps := randn(r, len(moments)/2)
	want, _, err := PosteriorSample(moments, shape, eps)
	if err != nil {
		t.Fatal(err)
	}
	var got, logvar []float32
	err = nn.Try(func() {
		e := context.MustNewExec(goBackend(t), context.New(), func(_ *context.Context, m, eps *Node) (*Node, *Node) {
			mean, logvar, std := Posterior(m)
			return Sample(mean, std, eps), logvar
		})
		res := e.MustExec(tensors.FromFlatDataAndDimensions(moments, shape...), tensors.FromFlatDataAndDimensions(eps, 2, 4, 3, 5))
		got, logvar = nn.Values(res[0]), nn.Values(res[1])
	})
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := slices.Min(logvar), slices.Max(logvar); lo != -30 || hi != 20 {
		t.Errorf("logvar range [%v, %v], want clamped to [-30, 20]", lo, hi)
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-6*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("sample %d: graph %v, values %v", i, got[i], want[i])
		}
	}
}

// TestExpectedKeysFollowConfigFlags counts the weights each variant reads;
// 180 is the key count of the golden tiny_sd15/vae file.
func TestExpectedKeysFollowConfigFlags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   int
		absent string
	}{
		{"tiny golden config", func(*Config) {}, 180, ""},
		{"no mid-block attention", func(c *Config) { c.MidBlockAddAttention = false }, 160, "encoder.mid_block.attentions.0.to_q.weight"},
		{"no quant convs", func(c *Config) { c.UseQuantConv, c.UsePostQuantConv = false, false }, 176, "post_quant_conv.weight"},
		{"two layers per block", func(c *Config) { c.LayersPerBlock = 2 }, 180 + 4*8 + 4*8, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig()
			tc.change(&cfg)
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m.Backend = goBackend(t)
			keys, err := m.ExpectedKeys()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != tc.want {
				t.Errorf("%d keys, want %d", len(keys), tc.want)
			}
			if _, ok := keys[tc.absent]; tc.absent != "" && ok {
				t.Errorf("%s is expected but the config has no such module", tc.absent)
			}
		})
	}
}

// TestVariantsWithoutAttentionOrQuantConvRun decodes and encodes with the
// optional modules switched off (SD3/Flux-style VAEs drop the quant convs).
func TestVariantsWithoutAttentionOrQuantConvRun(t *testing.T) {
	cfg := tinyConfig()
	cfg.BlockOutChannels = []int{32, 64}
	cfg.DownBlockTypes, cfg.UpBlockTypes = cfg.DownBlockTypes[:2], cfg.UpBlockTypes[:2]
	cfg.MidBlockAddAttention, cfg.UseQuantConv, cfg.UsePostQuantConv = false, false, false
	cfg.LatentChannels, cfg.ShiftFactor = 16, 0.06
	m := randomModel(t, cfg, 4)
	r := rand.New(rand.NewPCG(1, 1))
	moments, ms, err := m.EncodeRun(randn(r, 3*16*12), []int{1, 3, 16, 12})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 32, 8, 6}; !slices.Equal(ms, want) {
		t.Fatalf("moments shape %v, want %v", ms, want)
	}
	_, is, err := m.DecodeRun(moments[:len(moments)/2], []int{1, 16, 8, 6})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 3, 16, 12}; !slices.Equal(is, want) {
		t.Fatalf("image shape %v, want %v", is, want)
	}
}
