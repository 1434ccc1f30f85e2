package vae

import (
	"math/rand/v2"
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

// openVAE opens the VAE component of a model (diffusers pipeline or
// component folder, or single file) with weights.OpenModel.
func openVAE(t *testing.T, path string) *weights.Component {
	t.Helper()
	wm, err := weights.OpenModel(path, weights.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wm.Close() })
	c := wm.Components[weights.VAE]
	if c == nil || c.Source == nil {
		t.Skipf("%s has no VAE", path)
	}
	return c
}

// loadModel builds a VAE from a component's config and src on the pure-Go backend.
func loadModel(t *testing.T, c *weights.Component, src nn.Source) *AutoencoderKL {
	t.Helper()
	cfg, err := ParseConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Backend = goBackend(t)
	if err := m.LoadWeights(src); err != nil {
		t.Fatal(err)
	}
	return m
}

func loadGoldenModel(t *testing.T, path string) *AutoencoderKL {
	t.Helper()
	c := openVAE(t, path)
	return loadModel(t, c, c.Source)
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

// fp16Source rounds every tensor to float16, as the single-file export did.
type fp16Source struct{ nn.Source }

func (s fp16Source) Float32(key string) ([]float32, []int, error) {
	v, shape, err := s.Source.Float32(key)
	for i := range v {
		v[i] = weights.HalfToFloat32(weights.Float32ToHalf(v[i]))
	}
	return v, shape, err
}

// TestSingleFileLoadsTheSameVAE loads the VAE of an original-layout single
// file and checks it computes exactly what the diffusers folder's weights,
// rounded to fp16 like the file, compute.
func TestSingleFileLoadsTheSameVAE(t *testing.T) {
	golden.ForKind(t, "single_file", func(t *testing.T, c golden.Case) {
		single := openVAE(t, c.Path("model"))
		ref := openVAE(t, c.Path("reference"))
		a := loadModel(t, single, single.Source)
		b := loadModel(t, ref, fp16Source{ref.Source})
		// sample_size cannot be inferred from tensor shapes; it changes no computation.
		ac := a.Config
		ac.SampleSize = b.Config.SampleSize
		if !equalConfig(ac, b.Config) {
			t.Fatalf("single-file config %+v\ndiffusers config %+v", a.Config, b.Config)
		}
		f := a.Config.DownsampleFactor()
		r := rand.New(rand.NewPCG(21, 22))
		ishape, zshape := []int{1, 3, 2 * f, 2 * f}, []int{1, a.Config.LatentChannels, 2, 2}
		image, z := randn(r, 3*2*f*2*f), randn(r, a.Config.LatentChannels*2*2)
		var outs [2][2][]float32
		for i, m := range []*AutoencoderKL{a, b} {
			var err error
			if outs[i][0], _, err = m.EncodeRun(image, ishape); err != nil {
				t.Fatal(err)
			}
			if outs[i][1], _, err = m.DecodeRun(z, zshape); err != nil {
				t.Fatal(err)
			}
		}
		golden.AssertClose(t, "encode", outs[0][0], outs[1][0], 0)
		golden.AssertClose(t, "decode", outs[0][1], outs[1][1], 0)
	})
}
