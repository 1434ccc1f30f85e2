package textenc

import (
	"slices"
	"testing"
)

func TestTrainBPERoundTripsThroughLoadCLIPTokenizer(t *testing.T) {
	texts := []string{"grinning face, grinning, smileys and emotion", "red apple, apple, food and drink",
		"green apple, food and drink", "smiling face with smiling eyes", "Apple pie!"}
	vocab, merges, err := TrainBPE(texts, BPETrainOptions{Merges: 40, MinFrequency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(merges) == 0 || len(merges) > 40 {
		t.Fatalf("%d merges", len(merges))
	}
	if vocab["!"] != 0 || vocab["a</w>"] != 256+int('a')-int('!') || vocab[EndOfText] != len(vocab)-1 || vocab[StartOfText] != len(vocab)-2 {
		t.Fatalf("vocab layout differs from CLIP's: ! %d, a</w> %d, bos %d, eos %d of %d", vocab["!"], vocab["a</w>"], vocab[StartOfText], vocab[EndOfText], len(vocab))
	}
	dir := t.TempDir()
	if err := WriteCLIPTokenizer(dir, vocab, merges, 32); err != nil {
		t.Fatal(err)
	}
	tk, err := LoadCLIPTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tk.MaxLength() != 32 || tk.VocabSize() != len(vocab) {
		t.Fatalf("loaded max length %d, vocab %d; want 32, %d", tk.MaxLength(), tk.VocabSize(), len(vocab))
	}
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"apple", []string{"apple</w>"}},
		{"Grinning FACE", []string{"grinning</w>", "face</w>"}},
		{"and drink", []string{"and</w>", "drink</w>"}},
	} {
		if got := tk.Tokens(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("Tokens(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
	// Every text decodes back to its lower-cased, punctuation-spaced form.
	for _, text := range texts {
		ids, _ := tk.Encode(text, tk.PadID(), 32)
		if ids[0] != tk.BOS() {
			t.Fatalf("%q: first id %d, want BOS", text, ids[0])
		}
	}
	if got := tk.Decode(tk.TokenIDs("red apple, food")); got != "red apple , food" && got != "red apple, food" {
		t.Errorf("Decode = %q", got)
	}
}
