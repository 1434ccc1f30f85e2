package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
)

// Few-step generation from the command line: LCM with a LoRA file (the
// LCM-LoRA path), and SD-Turbo style (one step, trailing, CFG off); the PNG
// records them as A1111 does.
func TestGenerateFewStep(t *testing.T) {
	model := tinyFolder(t)
	lora := filepath.Join(golden.Load(t).Dir, "lora", "tiny_lora_kohya.safetensors")
	dir := t.TempDir()
	for i, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sampler", "LCM", "--lora", lora + ":1", "--steps", "4"}, "Steps: 4, Sampler: LCM, CFG scale: 1,"},
		{[]string{"--sampler", "Euler a", "--schedule", "Trailing", "--steps", "1"}, "Steps: 1, Sampler: Euler a, Schedule type: SGM Uniform, CFG scale: 1,"},
		{[]string{"--sampler", "TCD", "--steps", "2"}, "Steps: 2, Sampler: TCD, CFG scale: 1,"},
	} {
		out := filepath.Join(dir, string(rune('a'+i)))
		args := append([]string{"generate", "a red square", "--model", model, "--backend", "go", "--cfg", "1",
			"-W", "32", "-H", "32", "--seed", "2", "-o", out}, tc.args...)
		if _, stderr, err := runSplit(args...); err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, stderr)
		}
		files, _ := filepath.Glob(filepath.Join(out, "*.png"))
		if len(files) != 1 {
			entries, _ := os.ReadDir(out)
			t.Fatalf("%v: wrote %v", tc.args, entries)
		}
		text, _, err := runSplit("png-info", files[0])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, tc.want) {
			t.Errorf("%v: infotext %q lacks %q", tc.args, text, tc.want)
		}
	}
}
