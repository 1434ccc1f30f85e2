package taesd

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

func load(t *testing.T, path string) *Model {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// layouts are the ways a user hands over the golden case's TAESD: the
// diffusers folder, the two original files as a folder, and either original
// file on its own (its sibling is picked up), and the diffusers weights as
// one file without a config (stable-diffusion.cpp's --taesd).
func layouts(t *testing.T, c golden.Case) map[string]string {
	t.Helper()
	dir, single := t.TempDir(), filepath.Join(t.TempDir(), "taesd.safetensors")
	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"original_encoder", "original_decoder"} {
		copyFile(c.Path(key), filepath.Join(dir, filepath.Base(c.Path(key))))
	}
	copyFile(filepath.Join(c.Path("model"), "diffusion_pytorch_model.safetensors"), single)
	return map[string]string{
		"diffusers":             c.Path("model"),
		"diffusers single file": single,
		"original folder":       dir,
		"original decoder":      c.Path("original_decoder"),
		"original encoder":      c.Path("original_encoder"),
	}
}

// TestGoldenMatchesDiffusers checks encode, both decodes and every
// intermediate output of the case against AutoencoderTiny, for every layout.
func TestGoldenMatchesDiffusers(t *testing.T) {
	golden.ForKind(t, "taesd", func(t *testing.T, c golden.Case) {
		data := c.Tensors(t, "data")
		var inter []string
		for _, name := range data.Names() {
			if strings.HasPrefix(name, "inter.") {
				inter = append(inter, strings.TrimPrefix(name, "inter."))
			}
		}
		tensor := func(name string) *tensors.Tensor {
			v, s := golden.Float32(t, data, name)
			return tensors.FromFlatDataAndDimensions(v, s...)
		}
		for layout, path := range layouts(t, c) {
			t.Run(layout, func(t *testing.T) {
				m := load(t, path)
				if !m.HasEncoder() || !m.HasDecoder() {
					t.Fatalf("encoder loaded %v, decoder %v; both files are there", m.HasEncoder(), m.HasDecoder())
				}
				var found []string
				var outs [][]float32
				err := nn.Try(func() {
					e := context.MustNewExec(m.Backend, m.Ctx.Reuse(), func(ctx *context.Context, image, latents, z *Node) []*Node {
						taps := Taps{}
						res := []*Node{Encode(ctx, m.Config, image, taps), Decode(ctx, m.Config, latents, nil), Decode(ctx, m.Config, z, taps)}
						found = found[:0]
						for _, name := range inter {
							if x, ok := taps[name]; ok {
								found = append(found, name)
								res = append(res, x)
							}
						}
						return res
					})
					for _, r := range e.MustExec(tensor("image"), tensor("latents"), tensor("z")) {
						outs = append(outs, nn.Values(r))
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				for i, name := range []string{"latents", "decode_latents", "decode_z"} {
					want, _ := golden.Float32(t, data, name)
					tol := c.Tol(golden.MaxAbs(want))
					if name == "latents" { // tiny values (random weights): relative
						tol = 1e-4 * golden.MaxAbs(want)
					}
					golden.AssertClose(t, name, outs[i], want, tol)
				}
				for _, name := range inter {
					i := slices.Index(found, name)
					if i < 0 {
						t.Errorf("inter.%s: no layer of that name is tapped", name)
						continue
					}
					want, _ := golden.Float32(t, data, "inter."+name)
					golden.AssertClose(t, "inter."+name, outs[3+i], want, c.Tol(golden.MaxAbs(want)))
				}
			})
		}
	})
}

// TestRunnersMatchGolden checks the slice executors, and that a decoder file
// alone loads a decoder that refuses to encode with a clear error.
func TestRunnersMatchGolden(t *testing.T) {
	golden.ForKind(t, "taesd", func(t *testing.T, c golden.Case) {
		data := c.Tensors(t, "data")
		m := load(t, c.Path("model"))
		image, ishape := golden.Float32(t, data, "image")
		lat, lshape, err := m.EncodeRun(image, ishape)
		if err != nil {
			t.Fatal(err)
		}
		want, wshape := golden.Float32(t, data, "latents")
		if !slices.Equal(lshape, wshape) {
			t.Fatalf("latents shape %v, want %v", lshape, wshape)
		}
		golden.AssertClose(t, "EncodeRun", lat, want, 1e-4*golden.MaxAbs(want))
		z, zshape := golden.Float32(t, data, "z")
		img, _, err := m.DecodeRun(z, zshape)
		if err != nil {
			t.Fatal(err)
		}
		want, _ = golden.Float32(t, data, "decode_z")
		golden.AssertClose(t, "DecodeRun", img, want, c.Tol(golden.MaxAbs(want)))

		dir := t.TempDir()
		raw, err := os.ReadFile(c.Path("original_decoder"))
		if err != nil {
			t.Fatal(err)
		}
		only := filepath.Join(dir, "taesd_decoder.safetensors")
		if err := os.WriteFile(only, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		d := load(t, only)
		if d.HasEncoder() || !d.HasDecoder() {
			t.Fatalf("decoder-only file: encoder %v decoder %v", d.HasEncoder(), d.HasDecoder())
		}
		img2, _, err := d.DecodeRun(z, zshape)
		if err != nil {
			t.Fatal(err)
		}
		golden.AssertClose(t, "decoder-only DecodeRun", img2, img, 0)
		if _, _, err := d.EncodeRun(image, ishape); err == nil || !strings.Contains(err.Error(), "taesd_encoder") {
			t.Errorf("encoding without an encoder: err %v, want one naming taesd_encoder", err)
		}
	})
}

// TestBadFilesGiveClearErrors covers files that are not TAESD.
func TestBadFilesGiveClearErrors(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.safetensors")
	if err := weights.WriteFile(other, []weights.WriteTensor{{Name: "foo.weight", DType: weights.F32, Shape: []int{2}, Float32: []float32{1, 2}}}, nil); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing":     filepath.Join(dir, "nope.safetensors"),
		"not taesd":   other,
		"empty dir":   t.TempDir(),
		"pickle only": writePickle(t),
	} {
		if _, err := Load(path, nil); err == nil {
			t.Errorf("%s: loaded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func writePickle(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "taesd_decoder.pth"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
