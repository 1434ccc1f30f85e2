package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateInpaintingFlags(t *testing.T) {
	folder := tinyFolder(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "init.png")
	writeTestPNG(t, img, 64, 64)
	mask := filepath.Join(dir, "mask.png")
	writeTestPNG(t, mask, 64, 64)
	base := []string{"generate", "a wall", "--model", folder, "--steps", "2", "--init-image", img, "--mask", mask}
	for _, extra := range [][]string{
		{"--inpainting-fill", "latent_nothing"},
		{"--inpaint-full-res", "--inpaint-full-res-padding", "8"},
		{"--mask-invert"},
	} {
		args := append(append(append([]string{}, base...), "-o", filepath.Join(dir, "ok.png")), extra...)
		if _, stderr, err := runSplit(args...); err != nil {
			t.Errorf("%v: %v\n%s", extra, err, stderr)
		}
	}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--inpainting-fill", "blur"}, "--inpainting-fill: \"blur\": want one of fill, original"},
		{[]string{"--inpaint-full-res-padding", "999"}, "--inpaint-full-res-padding: 999 must be between 0 and 256"},
	} {
		args := append(append(append([]string{}, base...), "-o", filepath.Join(dir, "bad.png")), c.extra...)
		if _, _, err := runSplit(args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.extra, err, c.want)
		}
	}
	if _, _, err := runSplit("generate", "x", "--model", folder, "--inpaint-full-res", "-o", filepath.Join(dir, "bad.png")); err == nil || !strings.Contains(err.Error(), "--inpaint-full-res: is only meaningful with a mask") {
		t.Errorf("--inpaint-full-res without a mask: %v", err)
	}
}
