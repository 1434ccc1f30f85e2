package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/weights"
)

func TestConvertFolderToSingleFileAndBack(t *testing.T) {
	model := tinyFolder(t)
	dir := t.TempDir()
	single := filepath.Join(dir, "tiny-f16.safetensors")
	stdout, _, err := runSplit("convert", model, single, "--dtype", "f16")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout, single+"\tsingle file, F16, ") {
		t.Errorf("convert reported %q", stdout)
	}
	m, err := weights.OpenModel(single, weights.OpenOptions{ConfigFrom: model})
	if err != nil {
		t.Fatal(err)
	}
	s := weights.Summarize(m)
	m.Close()
	if s.Format != weights.FormatSingleFile || s.Parameters != 1603951+1106212+1028935 || len(s.Unexpected) != 0 {
		t.Fatalf("converted file: format %s, %d parameters, unexpected %v", s.Format, s.Parameters, s.Unexpected)
	}

	folder := filepath.Join(dir, "back")
	if _, _, err := runSplit("convert", single, folder, "--config-from", model, "--dtype", "bf16"); err != nil {
		t.Fatal(err)
	}
	f, err := weights.Open(filepath.Join(folder, "unet", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Info(f.Names()[0])
	f.Close()
	if info.DType != weights.BF16 {
		t.Errorf("--dtype bf16 wrote %s", info.DType)
	}
	// The folder generates (tokenizer copied, configs in place).
	if _, stderr, err := runSplit("generate", "x", "--model", folder, "--backend", "go", "--steps", "1", "-o", filepath.Join(dir, "x.png")); err != nil {
		t.Fatalf("generating from the converted folder: %v\n%s", err, stderr)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{model, single}, "exists: remove it or pick another destination"},
		{[]string{model, filepath.Join(dir, "x.safetensors"), "--dtype", "f8"}, `--dtype "f8": use f32, f16 or bf16`},
		{[]string{filepath.Join(dir, "nothing"), filepath.Join(dir, "y.safetensors")}, "no such file"},
	} {
		_, _, err := runSplit(append([]string{"convert"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("convert %v: got %v, want …%s…", tc.args, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 { // tiny-f16.safetensors, back, x.png: no temporary leftovers
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left in the folder: %v", names)
	}
}

func TestPNGInfoWithoutParameters(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plain.png")
	f, _ := os.Create(p)
	f.Write([]byte("\x89PNG\r\n\x1a\n"))
	f.Close()
	if _, _, err := runSplit("png-info", p); err == nil {
		t.Error("a PNG without parameters must be an error")
	}
	writeTestPNG(t, p, 8, 8) // an empty infotext: no parameter line
	if _, _, err := runSplit("png-info", "--json", p); err == nil || !strings.Contains(err.Error(), "not in the AUTOMATIC1111 format") {
		t.Errorf("png-info --json on a non-A1111 text: %v", err)
	}
}

// The embedded model, a model this project trained, converts to a single
// file by the name users know it by. Before, its unet config's
// layers_per_block list failed ("cannot unmarshal array into ... int").
func TestConvertTheEmbeddedModel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "default.safetensors")
	if _, err := runLDM("convert", "default", out); err != nil {
		t.Fatal(err)
	}
	if _, err := runLDM("info", out); err != nil {
		t.Fatalf("the converted file does not open: %v", err)
	}
}
