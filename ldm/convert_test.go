package ldm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/weights"
)

// generateLatents runs a short request and returns the image and the final
// latents.
func generateLatents(t *testing.T, p *Pipeline) (Result, []float32) {
	t.Helper()
	var last []float32
	req := quick()
	res, err := p.Generate(context.Background(), req, Options{onStep: func(_ int, x []float32) { last = append(last[:0], x...) }})
	if err != nil {
		t.Fatal(err)
	}
	return res[0], last
}

func TestConvertRoundTrips(t *testing.T) {
	folder, single := tinyModel(t)
	dir := t.TempDir()
	load := func(path, configFrom string) *Pipeline {
		t.Helper()
		p, err := Load(path, LoadOptions{Backend: "go", ConfigFrom: configFrom})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	refImg, refLat := generateLatents(t, load(folder, ""))

	t.Run("folder to F32 single file is exact", func(t *testing.T) {
		out := filepath.Join(dir, "tiny-f32.safetensors")
		if err := Convert(folder, out, ConvertOptions{DType: weights.F32}); err != nil {
			t.Fatal(err)
		}
		img, _ := generateLatents(t, load(out, folder))
		if string(img.Image.Pix) != string(refImg.Image.Pix) {
			t.Error("F32 single file gives another image than the folder")
		}
		if err := Convert(folder, out, ConvertOptions{}); err == nil {
			t.Error("converting onto an existing file must be refused")
		}
	})
	t.Run("folder to F16 single file within fp16 tolerance", func(t *testing.T) {
		out := filepath.Join(dir, "tiny-f16.safetensors")
		if err := Convert(folder, out, ConvertOptions{DType: weights.F16}); err != nil {
			t.Fatal(err)
		}
		f, err := weights.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := f.Info(f.Names()[0])
		f.Close()
		if info.DType != weights.F16 {
			t.Fatalf("written as %s", info.DType)
		}
		_, lat := generateLatents(t, load(out, folder))
		// fp16 weights round each weight by up to 2^-11 relative; allow 0.2%
		// of the latents' range (measured: 0.04%).
		tol := 2e-3 * golden.MaxAbs(refLat)
		if d := maxAbsDiff(lat, refLat); d > tol {
			t.Errorf("F16 single file: final latents differ by %g (tolerance %g)", d, tol)
		} else {
			t.Logf("F16 single file: final latents within %g of the folder's (tolerance %g)", d, tol)
		}
	})
	t.Run("single file to folder keeps the weights", func(t *testing.T) {
		out := filepath.Join(dir, "from-single")
		if err := Convert(single, out, ConvertOptions{ConfigFrom: folder}); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
			"vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/vocab.json",
			"tokenizer/merges.txt", "scheduler/scheduler_config.json"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Error(err)
			}
		}
		want, _ := generateLatents(t, load(single, folder))
		got, _ := generateLatents(t, load(out, ""))
		if string(got.Image.Pix) != string(want.Image.Pix) {
			t.Error("the converted folder gives another image than the single file it came from")
		}
		if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*")); len(leftovers) > 0 {
			t.Errorf("temporary files left behind: %v", leftovers)
		}
	})
}
