package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpscaleCommand: ldm upscale doubles an image with Nearest (every
// source pixel becomes a 2x2 block) and names the flag of a bad upscaler.
func TestUpscaleCommand(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	src := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 11)
		if i%4 == 3 {
			src.Pix[i] = 255
		}
	}
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, src); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, stderr, err := runSplit("upscale", in, "--upscaler", "Nearest", "-o", out); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	g, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(g)
	g.Close()
	if err != nil || img.Bounds().Dx() != 6 || img.Bounds().Dy() != 4 {
		t.Fatalf("wrote %v (%v), want 6x4", img.Bounds(), err)
	}
	for y := range 4 {
		for x := range 6 {
			want := color.NRGBAModel.Convert(src.At(x/2, y/2))
			if got := color.NRGBAModel.Convert(img.At(x, y)); got != want {
				t.Fatalf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
	if _, _, err := runSplit("upscale", in, "--upscaler", "Latent", "-o", out); err == nil || !strings.Contains(err.Error(), "--upscaler") {
		t.Errorf("latent upscaler: %v, want an error naming --upscaler", err)
	}
}
