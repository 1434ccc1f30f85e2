package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/weights"
)

// runLDM runs the command tree as the binary does and returns its output.
func runLDM(args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func rawSafetensors(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestInfoRefusesBrokenFilesInOneLine(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	err := weights.WriteFile(good, []weights.WriteTensor{
		{Name: "model.diffusion_model.out.2.bias", DType: weights.F16, Shape: []int{4}, Float32: []float32{1, 2, 3, 4}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(good)
	hlen := int(binary.LittleEndian.Uint64(whole))
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	tests := []struct {
		path string
		want string
	}{
		{write("cut-data.safetensors", whole[:len(whole)-2]),
			`tensor "model.diffusion_model.out.2.bias": data_offsets [0,8] outside the 6-byte data section (truncated or corrupt file)`},
		{write("cut-header.safetensors", whole[:8+hlen/2]),
			"truncated safetensors file: header claims"},
		{write("lying-offsets.safetensors", rawSafetensors(`{"model.diffusion_model.out.2.bias":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}`, make([]byte, 16))),
			"data_offsets [0,4000] outside the 16-byte data section (truncated or corrupt file)"},
		{write("lying-shape.safetensors", rawSafetensors(`{"model.diffusion_model.out.2.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8))),
			"shape [3] of F32 needs 12 bytes but data_offsets span 8 (corrupt header)"},
		{write("garbage.safetensors", []byte("<html>not found</html>")),
			"not a safetensors file: header length"},
	}
	for _, tt := range tests {
		out, err := runLDM("info", tt.path)
		if err == nil {
			t.Errorf("%s: no error; output:\n%s", tt.path, out)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tt.path+": ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
			t.Errorf("error %q\nwant one line: %q + %q", msg, tt.path+": ", tt.want)
		}
		if out != "" {
			t.Errorf("%s: printed %q besides the error", tt.path, out)
		}
	}
}

func TestInfoDescribesTheGoldenSingleFile(t *testing.T) {
	g := golden.Load(t)
	file := filepath.Join(g.Dir, "tiny_sd15_single_file.safetensors")
	ref := filepath.Join(g.Dir, "tiny_sd15")
	out, err := runLDM("info", "--json", "--config-from", ref, file)
	if err != nil {
		t.Fatal(err)
	}
	var s weights.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Parameter counts of the reference tensors, from stats.json.
	want := []struct {
		name    string
		class   string
		tensors int
		params  int64
	}{
		{"text_encoder", "CLIPTextModel", 52, 1603951},
		{"unet", "UNet2DConditionModel", 304, 1106212},
		{"vae", "AutoencoderKL", 180, 1028935},
		{"scheduler", "PNDMScheduler", 0, 0},
		{"tokenizer", "", 0, 0},
	}
	if s.Format != "single_file" || len(s.Components) != len(want) || s.Parameters != 1603951+1106212+1028935 ||
		len(s.Ignored) != 4 || len(s.Unexpected) != 0 {
		t.Fatalf("format %s, %d components, %d parameters, ignored %v, unexpected %v", s.Format, len(s.Components), s.Parameters, s.Ignored, s.Unexpected)
	}
	for i, w := range want {
		c := s.Components[i]
		if c.Name != w.name || c.Class != w.class || c.Tensors != w.tensors || c.Parameters != w.params || len(c.Unexpected) != 0 {
			t.Errorf("component %d: %s (%s) %d tensors %d params, unexpected %v; want %+v", i, c.Name, c.Class, c.Tensors, c.Parameters, c.Unexpected, w)
		}
		if w.tensors > 0 && c.DTypes[weights.F16] != (weights.DTypeCount{Tensors: w.tensors, Parameters: w.params}) {
			t.Errorf("%s dtypes %v, want all F16", c.Name, c.DTypes)
		}
	}
	if got := s.Components[2].Config["block_out_channels"]; jsonOf(got) != "[32,32,64,64]" {
		t.Errorf("vae block_out_channels %v", got)
	}

	text, err := runLDM("info", ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"format: diffusers, 3.7M parameters", "unet (UNet2DConditionModel)", "1.1M parameters in 304 tensors: F32 304", "attention_head_dim: 8",
		"pure-Go backend fast path: on (GEMM kernel "} {
		if !strings.Contains(text, line) {
			t.Errorf("text output lacks %q:\n%s", line, text)
		}
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// "default" is how users name the embedded model (ldm bench, ldm compare):
// info takes it too.
func TestInfoDefaultIsTheEmbeddedModel(t *testing.T) {
	out, err := runLDM("info", "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"unet (UNet2DConditionModel)", "vae (AutoencoderKL)", "text_encoder"} {
		if !strings.Contains(out, want) {
			t.Errorf("ldm info default lacks %q:\n%s", want, out)
		}
	}
}
