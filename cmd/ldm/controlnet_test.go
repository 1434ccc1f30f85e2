package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
)

func TestGenerateTakesControlNets(t *testing.T) {
	folder := tinyFolder(t)
	var net, img string
	for _, c := range golden.Load(t).Cases {
		if c.Kind == "controlnet" {
			net, img = c.Path("model"), c.Path("control_image")
		}
	}
	if net == "" {
		t.Skip("the golden manifest has no controlnet case")
	}
	dir := t.TempDir()
	gen := func(name string, extra ...string) []byte {
		t.Helper()
		out := filepath.Join(dir, name)
		args := append([]string{"generate", "a red apple", "--model", folder, "--steps", "2", "--seed", "3", "-o", out}, extra...)
		if _, stderr, err := runSplit(args...); err != nil {
			t.Fatalf("%v: %v\n%s", extra, err, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := gen("plain.png")
	one := gen("one.png", "--control-net", net, "--control-image", img, "--control-strength", "0.8")
	if slices.Equal(plain, one) {
		t.Error("--control-net did not change the image")
	}
	zero := gen("zero.png", "--control-net", net, "--control-image", img, "--control-strength", "0")
	if !slices.Equal(stripText(t, zero), stripText(t, plain)) {
		t.Error("--control-strength 0 changed the pixels")
	}
	two := gen("two.png", "--control-net", net, "--control-image", img, "--control-net", net, "--control-image", img, "--control-strength", "0.4,0.4")
	if slices.Equal(two, plain) {
		t.Error("two ControlNets did not change the image")
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--control-net", net}, "1 ControlNets and 0 --control-image"},
		{[]string{"--control-strength", "0.5"}, "need a --control-net"},
		{[]string{"--control-net", net, "--control-image", img, "--control-strength", "0.5,0.6"}, "--control-strength: given 2 times for 1"},
		{[]string{"--control-net", filepath.Join(dir, "nosuch"), "--control-image", img}, "--control-net: stat"},
		{[]string{"--control-net", net, "--control-image", img, "--control-strength", "5"}, "--control-net: [0]: weight 5 must be between 0 and 2"},
		{[]string{"--control-net", net, "--control-image", img, "--control-module", "openpose"}, "not available"},
	} {
		args := append([]string{"generate", "x", "--model", folder, "--steps", "1", "-o", filepath.Join(dir, "bad.png")}, c.args...)
		_, _, err := runSplit(args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}

// stripText is the PNG's pixels, decoded.
func stripText(t *testing.T, b []byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.png")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := readImage(path)
	if err != nil {
		t.Fatal(err)
	}
	var pix []byte
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			pix = append(pix, byte(r>>8), byte(g>>8), byte(b>>8))
		}
	}
	return pix
}
