package vae

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// fileSource adapts a safetensors file to nn.Source.
type fileSource struct{ *weights.File }

func (f fileSource) Keys() []string { return f.Names() }

// loadGoldenModel reads a diffusers VAE folder (config.json + one
// safetensors file) onto the pure-Go backend.
func loadGoldenModel(t *testing.T, dir string) *AutoencoderKL {
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
	m.Backend = goBackend(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if len(files) != 1 {
		t.Fatalf("%s: want one .safetensors file, found %v", dir, files)
	}
	f, err := weights.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.LoadWeights(fileSource{f}); err != nil {
		t.Fatal(err)
	}
	return m
}

// runGraph executes fn once on the model's weights and returns its outputs.
func runGraph(t *testing.T, m *AutoencoderKL, fn func(ctx *context.Context, in []*Node) []*Node, inputs ...*tensors.Tensor) [][]float32 {
	t.Helper()
	var out [][]float32
	err := nn.Try(func() {
		e := context.MustNewExec(m.Backend, m.Ctx.Reuse(), fn)
		args := make([]any, len(inputs))
		for i, x := range inputs {
			args[i] = x
		}
		res := e.MustExec(args...)
		for _, r := range res {
			out = append(out, nn.Values(r))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tensorOf(t *testing.T, f *weights.File, name string) *tensors.Tensor {
	t.Helper()
	v, s := golden.Float32(t, f, name)
	return tensors.FromFlatDataAndDimensions(v, s...)
}

// TestGoldenMatchesDiffusers checks encode, the posterior, the sample and
// decode, and every intermediate module output the data file holds, against
// diffusers v0.29.2.
func TestGoldenMatchesDiffusers(t *testing.T) {
	golden.ForKind(t, "vae", func(t *testing.T, c golden.Case) {
		m := loadGoldenModel(t, c.Path("model"))
		data := c.Tensors(t, "data")
		cfg := m.Config

		var inter []string
		for _, name := range data.Names() {
			if strings.HasPrefix(name, "inter.") {
				inter = append(inter, strings.TrimPrefix(name, "inter."))
			}
		}
		// One graph runs everything: encode(image) and decode(z) with taps,
		// the posterior of our moments, its sample with the file's eps, and
		// decode(our mean).
		var found []string
		outs := runGraph(t, m, func(ctx *context.Context, in []*Node) []*Node {
			image, eps, z := in[0], in[1], in[2]
			taps := Taps{}
			moments := Encode(ctx, cfg, image, taps)
			mean, logvar, std := Posterior(moments)
			sample := Sample(mean, std, eps)
			decZ := Decode(ctx, cfg, z, taps)
			decMean := Decode(ctx, cfg, mean, nil)
			res := []*Node{moments, mean, logvar, std, sample, decZ, decMean}
			found = found[:0]
			for _, name := range inter {
				if x, ok := taps[name]; ok {
					found = append(found, name)
					res = append(res, x)
				}
			}
			return res
		}, tensorOf(t, data, "image"), tensorOf(t, data, "eps"), tensorOf(t, data, "z"))

		for i, name := range []string{"moments", "mean", "logvar", "std", "posterior_sample", "decode_z", "decode_mean"} {
			want, _ := golden.Float32(t, data, name)
			golden.AssertClose(t, name, outs[i], want, c.Tol(golden.MaxAbs(want)))
		}
		for _, name := range inter {
			i := slices.Index(found, name)
			if i < 0 {
				t.Errorf("inter.%s: no module of that name is tapped", name)
				continue
			}
			want, _ := golden.Float32(t, data, "inter."+name)
			golden.AssertClose(t, "inter."+name, outs[7+i], want, c.Tol(golden.MaxAbs(want)))
		}
	})
}

// TestGoldenRunnersMatchGraph checks the slice executors and
// PosteriorSample on the golden case.
func TestGoldenRunnersMatchGraph(t *testing.T) {
	golden.ForKind(t, "vae", func(t *testing.T, c golden.Case) {
		m := loadGoldenModel(t, c.Path("model"))
		data := c.Tensors(t, "data")
		image, ishape := golden.Float32(t, data, "image")
		moments, mshape, err := m.EncodeRun(image, ishape)
		if err != nil {
			t.Fatal(err)
		}
		want, wshape := golden.Float32(t, data, "moments")
		if !slices.Equal(mshape, wshape) {
			t.Fatalf("moments shape %v, want %v", mshape, wshape)
		}
		golden.AssertClose(t, "EncodeRun", moments, want, c.Tol(golden.MaxAbs(want)))

		eps, _ := golden.Float32(t, data, "eps")
		sample, _, err := PosteriorSample(moments, mshape, eps)
		if err != nil {
			t.Fatal(err)
		}
		want, _ = golden.Float32(t, data, "posterior_sample")
		golden.AssertClose(t, "PosteriorSample", sample, want, c.Tol(golden.MaxAbs(want)))

		z, zshape := golden.Float32(t, data, "z")
		img, shape, err := m.DecodeRun(z, zshape)
		if err != nil {
			t.Fatal(err)
		}
		want, wshape = golden.Float32(t, data, "decode_z")
		if !slices.Equal(shape, wshape) {
			t.Fatalf("decode shape %v, want %v", shape, wshape)
		}
		golden.AssertClose(t, "DecodeRun", img, want, c.Tol(golden.MaxAbs(want)))
	})
}
