package ldm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/weights"
)

// TestTextualInversionVectorsReplaceTheTriggerWord builds embeddings whose
// vectors are the text encoder's own token embeddings of other words: a
// prompt with the trigger must then encode exactly as the prompt with those
// words, in both file layouts (AUTOMATIC1111's emb_params, diffusers'
// single <token> tensor) and under emphasis.
func TestTextualInversionVectorsReplaceTheTriggerWord(t *testing.T) {
	folder, _ := tinyModel(t)
	ref := loadTiny(t)
	m, err := weights.OpenModel(folder, weights.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	table, shape, err := m.Components[weights.TextEncoder].Source.Float32("text_model.embeddings.token_embedding.weight")
	if err != nil {
		t.Fatal(err)
	}
	d := shape[1]
	rows := func(word string) []float32 {
		var out []float32
		for _, id := range ref.Tokenizer.TokenIDs(word) {
			out = append(out, table[id*d:(id+1)*d]...)
		}
		return out
	}
	dir := t.TempDir()
	write := func(name, key string, shape []int, v []float32) {
		t.Helper()
		if err := weights.WriteFile(filepath.Join(dir, name), []weights.WriteTensor{{Name: key, DType: weights.F32, Shape: shape, Float32: v}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	write("mytrigger.safetensors", "emb_params", []int{2, d}, rows("red cat"))       // A1111 layout, 2 vectors
	write("style7.safetensors", "<style7>", []int{d}, rows("blue"))                  // diffusers layout, one vector
	write("narrow.safetensors", "emb_params", []int{1, d / 2}, make([]float32, d/2)) // another family: skipped
	os.WriteFile(filepath.Join(dir, "old.pt"), []byte("pickle"), 0o644)              // never unpickled

	p, err := Load(folder, LoadOptions{Backend: "go", Embeddings: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Embeddings) != 2 || p.Embeddings["mytrigger"] == nil || p.Embeddings["style7"] == nil {
		t.Fatalf("embeddings loaded: %v", p.Embeddings)
	}
	if len(p.SkippedEmbeddings) != 2 || !strings.Contains(strings.Join(p.SkippedEmbeddings, "\n"), "width 16") {
		t.Fatalf("skipped: %q", p.SkippedEmbeddings)
	}
	embeds := func(p *Pipeline, prompt, negative string) []float32 {
		t.Helper()
		pl, err := p.Prepare(Request{Prompt: prompt, NegativePrompt: negative}, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		e, err := p.encodePlan(pl)
		if err != nil {
			t.Fatal(err)
		}
		return append(e.neg, e.pos...)
	}
	for _, tc := range [][2]string{
		{"a mytrigger on style7 grass", "a red cat on blue grass"},
		{"a (mytrigger:1.3), [style7]", "a (red cat:1.3), [blue]"},
	} {
		got := embeds(p, tc[0], "style7")
		want := embeds(ref, tc[1], "blue")
		if d := maxAbsDiff(got, want); d > 1e-6 {
			t.Errorf("%q (negative \"style7\") encodes %g away from %q (negative \"blue\")", tc[0], d, tc[1])
		}
		if d := maxAbsDiff(got, embeds(ref, tc[0], "style7")); d < 1e-3 {
			t.Errorf("%q: the embeddings changed nothing (%g)", tc[0], d)
		}
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return 1e30
	}
	d, _ := golden.MaxAbsDiff(a, b)
	return d
}
