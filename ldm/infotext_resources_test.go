package ldm

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/ldm-project/ldm/weights"
)

// LoRAs given beside the prompt (--lora FILE:0.8, an API's loras) are
// recorded in the infotext's prompt as A1111 records every LoRA, so that the
// prompt read back applies them at the same weight. Before, the prompt had
// no tag and only "Lora hashes" named the file.
func TestInfotextPromptCarriesFieldLoRAs(t *testing.T) {
	p := loadTiny(t)
	te := 0.5
	req := Request{Prompt: "a cat", LoRAs: []LoRASpec{{Path: filepath.Join("x", "style.safetensors"), Weight: 0.8}, {Name: "ink", Weight: 1, UNetWeight: &te}}}
	it := p.infotext(req, 1)
	if want := "a cat <lora:style:0.8> <lora:ink:1:0.5>"; it.Prompt != want {
		t.Fatalf("infotext prompt %q, want %q", it.Prompt, want)
	}
	text, specs, err := ParseLoRATags(it.Prompt)
	if err != nil || len(specs) != 2 || specs[0].Name != "style" || specs[0].Weight != 0.8 || specs[1].UNetWeight == nil || *specs[1].UNetWeight != 0.5 {
		t.Errorf("read back: %q %+v %v", text, specs, err)
	}
	if it := p.infotext(Request{Prompt: "a cat"}, 1); it.Prompt != "a cat" {
		t.Errorf("without LoRAs the prompt became %q", it.Prompt)
	}
}

// Textual inversions a prompt or negative prompt uses are listed as A1111's
// "TI hashes: name: <sha256 of the file, 12 hex digits>", in order of use;
// unused ones are not. Before, the infotext did not name them.
func TestInfotextNamesTextualInversionsUsed(t *testing.T) {
	folder, _ := tinyModel(t)
	ref := loadTiny(t)
	d := ref.Text.Config.HiddenSize
	dir := t.TempDir()
	sums := map[string]string{}
	for _, name := range []string{"mytrigger", "style7", "unused"} {
		path := filepath.Join(dir, name+".safetensors")
		v := make([]float32, d)
		v[0] = float32(len(name))
		if err := weights.WriteFile(path, []weights.WriteTensor{{Name: "emb_params", DType: weights.F32, Shape: []int{1, d}, Float32: v}}, nil); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		s := sha256.Sum256(b)
		sums[name] = hex.EncodeToString(s[:])[:12]
	}
	p, err := Load(folder, LoadOptions{Backend: "go", Embeddings: dir})
	if err != nil {
		t.Fatal(err)
	}
	it := p.infotext(Request{Prompt: "a (mytrigger:1.2) cat <lora:x:1>", NegativePrompt: "style7, mytrigger"}, 1)
	got, _ := it.Get("TI hashes")
	if want := "mytrigger: " + sums["mytrigger"] + ", style7: " + sums["style7"]; got != want {
		t.Errorf("TI hashes %q, want %q", got, want)
	}
	if _, ok := p.infotext(Request{Prompt: "a cat"}, 1).Get("TI hashes"); ok {
		t.Error("a prompt without triggers has TI hashes")
	}
}
