package textenc

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// fileSource serves a safetensors file as an nn.Source.
type fileSource struct{ *weights.File }

func (f fileSource) Keys() []string { return f.Names() }

// loadGoldenCLIP builds and loads the model in a case's "model" folder.
func loadGoldenCLIP(t *testing.T, c golden.Case) *CLIPTextModel {
	t.Helper()
	dir := c.Path("model")
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseCLIPConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	f, err := weights.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := NewCLIPTextModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadWeights(fileSource{f}); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCLIPTextModelMatchesTransformers(t *testing.T) {
	golden.ForKind(t, "clip_text", func(t *testing.T, c golden.Case) {
		m := loadGoldenCLIP(t, c)
		backend, err := nn.NewBackend("go")
		if err != nil {
			t.Fatal(err)
		}
		data := c.Tensors(t, "data")
		ids64, shape := golden.Int64(t, data, "input_ids")
		if len(shape) != 2 {
			t.Fatalf("input_ids shape %v, want [batch, tokens]", shape)
		}
		batch, seqLen := shape[0], shape[1]
		ids := make([]int32, len(ids64))
		for i, v := range ids64 {
			ids[i] = int32(v)
		}
		all, err := m.EncodeAll(backend, ids, batch, seqLen)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what, name string, got []float32) {
			want, _ := golden.Float32(t, data, name)
			golden.AssertClose(t, what, got, want, c.Tol(golden.MaxAbs(want)))
		}
		for _, name := range data.Names() {
			var skip int
			switch {
			case name == "input_ids":
			case name == "last_hidden_state":
				check(name, name, all.LastHiddenState)
			case name == "pooler_output":
				check(name, name, all.PoolerOutput)
			case name == "hidden_states":
				var flat []float32
				for _, h := range all.HiddenStates {
					flat = append(flat, h...)
				}
				check(name, name, flat)
			case name == "penultimate_hidden_state":
				check(name, name, all.HiddenStates[len(all.HiddenStates)-2])
			case scanClipSkip(name, &skip):
				embeds, pooled, err := m.Encode(backend, ids, batch, seqLen, skip)
				if err != nil {
					t.Fatal(err)
				}
				check(name, name, embeds)
				check(name+": pooler_output", "pooler_output", pooled)
			default:
				t.Logf("%s: not checked (unknown tensor)", name)
			}
		}
	})
}

// scanClipSkip parses "clip_skip<N>_prompt_embeds".
func scanClipSkip(name string, n *int) bool {
	var rest string
	k, _ := fmt.Sscanf(name, "clip_skip%d_%s", n, &rest)
	return k == 2 && rest == "prompt_embeds"
}
