package main

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerateHiresFix: --enable-hr --hr-scale 2 writes an image of twice
// the size whose parameters png-info reads back with the hires fields;
// a bad upscaler names its flag.
func TestGenerateHiresFix(t *testing.T) {
	model := tinyFolder(t)
	out := filepath.Join(t.TempDir(), "hr.png")
	_, stderr, err := runSplit("generate", "x", "--model", model, "--backend", "go", "--steps", "2", "-W", "32", "-H", "32",
		"--enable-hr", "--hr-scale", "2", "--hr-upscaler", "Lanczos", "--denoising-strength", "0.5", "-o", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := image.DecodeConfig(f)
	f.Close()
	if err != nil || cfg.Width != 64 || cfg.Height != 64 {
		t.Fatalf("wrote %dx%d (%v), want 64x64", cfg.Width, cfg.Height, err)
	}
	info, _, err := runSplit("png-info", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Size: 32x32", "Denoising strength: 0.5", "Hires upscale: 2", "Hires upscaler: Lanczos"} {
		if !strings.Contains(info, want) {
			t.Errorf("png-info lacks %q:\n%s", want, info)
		}
	}
	_, _, err = runSplit("generate", "x", "--model", model, "--backend", "go", "--enable-hr", "--hr-upscaler", "Bogus", "-o", out)
	if err == nil || !strings.Contains(err.Error(), "--hr-upscaler") {
		t.Errorf("bad upscaler: %v, want an error naming --hr-upscaler", err)
	}
}

// TestGenerateHiresFixWithoutADenoisingStep fails before the first pass.
func TestGenerateHiresFixWithoutADenoisingStep(t *testing.T) {
	model := tinyFolder(t)
	_, _, err := runSplit("generate", "x", "--model", model, "--backend", "go", "--steps", "1", "--enable-hr", "--strength", "0.5", "-o", filepath.Join(t.TempDir(), "a.png"))
	if err == nil || !strings.Contains(err.Error(), "--strength") || !strings.Contains(err.Error(), "no denoising step of the hires pass") {
		t.Errorf("got %v, want --strength: … no denoising step of the hires pass", err)
	}
}

// TestGenerateOutpaint: --outpaint right=32 makes a 32x32 init image 64x32.
func TestGenerateOutpaint(t *testing.T) {
	model := tinyFolder(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.png"), filepath.Join(dir, "out.png")
	if _, _, err := runSplit("generate", "x", "--model", model, "--backend", "go", "--steps", "1", "-W", "32", "-H", "32", "-o", in); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runSplit("generate", "x", "--model", model, "--backend", "go", "--steps", "2", "--init-image", in, "--outpaint", "right=32", "--outpaint-fill", "mean", "-o", out); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := image.DecodeConfig(f)
	f.Close()
	if err != nil || cfg.Width != 64 || cfg.Height != 32 {
		t.Fatalf("wrote %dx%d (%v), want 64x32", cfg.Width, cfg.Height, err)
	}
	if _, _, err := runSplit("generate", "x", "--model", model, "--init-image", in, "--outpaint", "sideways=3", "-o", out); err == nil || !strings.Contains(err.Error(), "--outpaint") {
		t.Errorf("bad side: %v, want an error naming --outpaint", err)
	}
}
