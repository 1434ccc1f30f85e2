package train_test

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/train"
)

func writePNG(t *testing.T, path string, c color.RGBA) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// Training reads the kohya layout (captions in .txt files beside the images,
// in sub-folders), composites transparency onto white, and skips a corrupt
// image with a count instead of failing.
func TestLoadImageFolderKohyaLayoutAndCorruptImages(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	writePNG(t, filepath.Join(dir, "a.png"), color.RGBA{255, 0, 0, 255})
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a red square\n"), 0o644)
	writePNG(t, filepath.Join(dir, "sub", "b.png"), color.RGBA{0, 0, 0, 0}) // fully transparent
	os.WriteFile(filepath.Join(dir, "sub", "b.txt"), []byte("nothing"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("broken"), 0o644)

	ds, err := train.LoadImageFolder(dir, 4, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Examples) != 2 || len(ds.Skipped) != 1 || !strings.Contains(ds.Skipped[0], "c.png") {
		t.Fatalf("%d examples, skipped %q; want 2 and c.png", len(ds.Examples), ds.Skipped)
	}
	got := map[string]train.Example{}
	for _, e := range ds.Examples {
		got[e.File] = e
	}
	a, b := got["a.png"], got["sub/b.png"]
	if a.Caption != "a red square" || b.Caption != "nothing" {
		t.Errorf("captions %q, %q", a.Caption, b.Caption)
	}
	if len(a.RGB) != 4*4*3 || a.RGB[0] != 255 || a.RGB[1] != 0 || b.RGB[0] != 255 || b.RGB[1] != 255 {
		t.Errorf("pixels: red square starts %v, transparent one %v (want red, white)", a.RGB[:3], b.RGB[:3])
	}
	if _, err := train.LoadImageFolder(dir, 4, "train"); err == nil || !strings.Contains(err.Error(), `captions layout, 3 items): no item has split "train"`) {
		t.Errorf("a split the folder lacks: err %v", err)
	}
	// Training takes the folder as it is: no split column, so everything
	// trains (the corrupt image skipped) and nothing is held out.
	tr, te, err := train.LoadTrainingData(dir, 4, 0)
	if err != nil || len(tr.Examples) != 2 || te != nil {
		t.Errorf("LoadTrainingData of a kohya folder: %v, held out %v, err %v", tr, te, err)
	}
	os.Remove(filepath.Join(dir, "a.png"))
	os.Remove(filepath.Join(dir, "sub", "b.png"))
	if _, _, err := train.LoadTrainingData(dir, 4, 0); err == nil || !strings.Contains(err.Error(), "none of the 1 listed images could be read; the first: c.png") {
		t.Errorf("a folder of corrupt images: err %v, want one naming the count and the file", err)
	}
	if _, err := train.LoadImageFolder(filepath.Join(dir, "missing"), 4, ""); err == nil {
		t.Error("a missing folder loaded")
	}
}
