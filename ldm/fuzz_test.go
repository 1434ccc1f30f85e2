package ldm

import (
	"bytes"
	"image"
	"math"
	"strings"
	"testing"
)

// FuzzReadParameters feeds arbitrary bytes to the PNG/JPEG infotext reader
// and whatever it finds to the infotext parser and Request: none may panic,
// and an image this package writes must read back to the text it was given.
func FuzzReadParameters(f *testing.F) {
	info := Infotext{Prompt: "a lighthouse, (cliff:1.2)", NegativePrompt: "blurry",
		Params: []KV{{"Steps", "20"}, {"Sampler", "Euler a"}, {"CFG scale", "7"}, {"Seed", "42"}, {"Size", "8x8"}, {"Lora hashes", `"a: 0123"`}}}
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for _, format := range []Format{PNG, JPEG} {
		var buf bytes.Buffer
		if err := EncodeImage(&buf, img, info, format, 0); err != nil {
			f.Fatal(err)
		}
		data := buf.Bytes()
		f.Add(data)
		f.Add(data[:len(data)/2])
		f.Add(data[:40])
	}
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x05tEXtparameters\x00x"))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		text, err := ReadParameters(bytes.NewReader(data))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		it, err := ParseInfotext(text)
		if err != nil {
			return
		}
		_, _ = it.Request()
		// What was read must survive a round trip through the writer.
		var buf bytes.Buffer
		if err := EncodePNG(&buf, img, []KV{{"parameters", text}}); err != nil {
			t.Fatalf("cannot write back what was read: %v", err)
		}
		back, err := ReadParameters(&buf)
		if err != nil || back != text {
			t.Fatalf("round trip: %q (%v), want %q", back, err, text)
		}
	})
}

// FuzzParsePrompt feeds arbitrary prompts to the prompt parser (emphasis,
// BREAK, LoRA tags) and the chunker: no panic, every weight finite, every
// chunk within its 75 tokens, and the request validator answers a
// FieldError rather than anything else.
func FuzzParsePrompt(f *testing.F) {
	for _, s := range []string{
		"a (red:1.3) [car], ((sunset)) BREAK night sky",
		`\(literal\) (unbalanced [mix) ]`, "(a:1e308) (b:-0.5)", "<lora:x:0.8> <lora:y:te=1:unet=0.5> cat",
		"((((((((((((((((((((deep))))))))))))))))))))", "BREAK BREAK BREAK", "(:)", "x:1.5)",
		strings.Repeat("word, ", 120),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prompt string) {
		frags := ParseAttention(prompt)
		for _, fr := range frags {
			if fr.Weight == -1 && fr.Text == breakText {
				continue
			}
			if math.IsNaN(fr.Weight) || math.IsInf(fr.Weight, 0) {
				t.Fatalf("fragment %q has weight %v", fr.Text, fr.Weight)
			}
		}
		// A stand-in tokenizer: one token per byte, ',' is the comma.
		tokenize := func(s string) []token {
			out := make([]token, len(s))
			for i := range s {
				out[i] = token{id: int(s[i]), span: 1}
			}
			return out
		}
		for _, c := range chunkTokens(frags, tokenize, ',', 75, 20) {
			if len(c.IDs) > 75 || len(c.IDs) != len(c.Weights) {
				t.Fatalf("chunk of %d ids, %d weights", len(c.IDs), len(c.Weights))
			}
		}
		if _, _, err := ParseLoRATags(prompt); err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
		req := Request{Prompt: prompt, NegativePrompt: prompt}
		req.Defaults(64)
		if err := req.Validate(DefaultLimits, 8); err != nil {
			if _, ok := IsFieldError(err); !ok {
				t.Fatalf("validation error %v is not a FieldError", err)
			}
		}
	})
}
