package train

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ldm-project/ldm/models"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/scheduler"
)

// writeGreys writes n 32×32 grey images with captions (kohya layout),
// image i of level base+40i.
func writeGreys(t *testing.T, dir string, n int, base uint8) {
	t.Helper()
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, 32, 32))
		for j := range img.Pix {
			img.Pix[j] = base + uint8(40*i)
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.txt", i)), []byte("a grey square"), 0o644)
	}
}

// The latent cache is keyed by the data's content: editing an image that is
// not the first, in place, invalidates it. The old key (first file name and
// count) kept the stale posteriors.
func TestLatentCacheFollowsTheImages(t *testing.T) {
	tmp := t.TempDir()
	data, out := filepath.Join(tmp, "data"), filepath.Join(tmp, "run")
	os.MkdirAll(data, 0o755)
	writeGreys(t, data, 3, 20)
	def, err := models.Path()
	if err != nil {
		t.Fatal(err)
	}
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	run := LDMRun{Data: data, Size: 32, Batch: 1, Seed: 1, VAE: filepath.Join(def, "vae"), TokenizerMerges: 10, MaxLength: 8,
		Prediction: "epsilon", SchedulerClass: scheduler.ClassEuler, Train: DefaultConfig(),
		UNet: SmallUNetConfig(16), Text: SmallTextConfig(0, 16, 1, 8)}
	run.UNet.BlockOutChannels = []int{8, 16, 16}
	g := 4
	run.UNet.NormNumGroups = &g
	if run.Scheduler, err = SDSchedulerConfig(run.SchedulerClass, "epsilon"); err != nil {
		t.Fatal(err)
	}
	first, err := NewLDMTrainer(b, run, out, "")
	if err != nil {
		t.Fatal(err)
	}
	again, err := NewLDMTrainer(b, run, out, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.mean[2], again.mean[2]) {
		t.Fatal("the same data encoded twice differs: the cache was not used")
	}
	writeGreys(t, data, 3, 30) // every image edited in place, the same names
	edited, err := NewLDMTrainer(b, run, out, "")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(first.mean[2], edited.mean[2]) {
		t.Error("after editing the images the cached latents were used")
	}
}
