package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchDefaultModel runs ldm bench on the embedded model and checks the
// JSON report: every part measured, times positive, the U-Net's FLOPs
// counted.
func TestBenchDefaultModel(t *testing.T) {
	t.Setenv("LDM_CACHE", t.TempDir())
	path := filepath.Join(t.TempDir(), "bench.json")
	out, err := runLDM("bench", "--model", "default", "--size", "64", "--runs", "2", "--json", path, "--backend", "go")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Parts) != 3 {
		t.Fatalf("%d parts, want unet, text, vae: %s", len(rep.Parts), data)
	}
	for _, p := range rep.Parts {
		if len(p.Runs) != 2 || p.Compile <= 0 || p.Min <= 0 || p.Median < p.Min {
			t.Errorf("%s: first %g, runs %v, median %g, min %g", p.Part, p.Compile, p.Runs, p.Median, p.Min)
		}
	}
	if u := rep.Parts[0]; u.Part != "unet" || u.GFLOPs <= 0 || u.GFLOPS <= 0 || !strings.Contains(u.What, "16×16") {
		t.Errorf("unet part %+v: want 16×16 latents and counted FLOPs", u)
	}
	if rep.PeakRSSMB <= 0 {
		t.Errorf("peak RSS %g MiB", rep.PeakRSSMB)
	}
}

func TestBenchRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--size", "100"},
		{"bench", "--runs", "0"},
		{"bench", "--parts", "unet,clip"},
		{"bench", "--model", filepath.Join(t.TempDir(), "missing")},
	} {
		if out, err := runLDM(args...); err == nil {
			t.Errorf("%v: no error (%s)", args, out)
		}
	}
}
