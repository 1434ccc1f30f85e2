package textenc

import (
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzTokenize checks that any input tokenizes without panicking, with ids in
// the vocabulary, BOS first and EOS last, that Encode keeps EOS last, and that
// the two BPE merge loops agree.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"", "a photograph of an astronaut riding a horse", "A Cute CAT, highly detailed, 4K!",
		"it's, don't", "café naïve", "cafe\u0301", "日本語のテキスト 中文 한국어", "ΣΑΣ ΟΔΟΣ İ",
		"<|startoftext|>a<|endoftext|>", "<|ENDOFTEXT|>", "(masterpiece:1.2), [low]",
		"zero\u200bwidth\x07", "\xff\xfe", "ﬁ ｆｕｌｌ", "emoji 🐱🚀✨ ❤️",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := goldenTokenizer(t)
		ids := tok.Tokenize(s)
		if len(ids) < 2 || ids[0] != tok.BOS() || ids[len(ids)-1] != tok.EOS() {
			t.Fatalf("Tokenize(%q) = %v: want BOS … EOS", s, ids)
		}
		for _, id := range ids {
			if _, ok := tok.Token(id); !ok {
				t.Fatalf("Tokenize(%q): id %d not in the vocabulary", s, id)
			}
		}
		toks := tok.Tokens(s)
		if len(toks) != len(ids)-2 {
			t.Fatalf("Tokens(%q): %d tokens for %d ids", s, len(toks), len(ids))
		}
		enc, mask := tok.Encode(s, PadSD1, 77)
		if len(enc) != 77 || len(mask) != 77 || enc[0] != tok.BOS() {
			t.Fatalf("Encode(%q): bad shape or BOS: %v", s, enc)
		}
		n := min(len(ids), 77)
		if enc[n-1] != tok.EOS() || mask[n-1] != 1 || (n < 77 && mask[n] != 0) {
			t.Fatalf("Encode(%q): EOS/mask wrong at %d: %v %v", s, n-1, enc, mask)
		}
		if d := tok.Decode(ids); !utf8.ValidString(d) {
			t.Fatalf("Decode(Tokenize(%q)) = %q: invalid UTF-8", s, d)
		}
		// The heap merge for long pre-tokens equals the simple loop on any bytes.
		if w := s[:min(len(s), 256)]; w != "" && !slices.Equal(tok.bpeLong(w), tok.bpe(w)) {
			t.Fatalf("bpeLong(%q) = %v, bpe = %v", w, tok.bpeLong(w), tok.bpe(w))
		}
	})
}
