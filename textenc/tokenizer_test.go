package textenc

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
)

type tokenizerCase struct {
	Prompt           string   `json:"prompt"`
	Tokens           []string `json:"tokens"`
	IDsUnpadded      []int    `json:"ids_unpadded"`
	InputIDsSD1      []int    `json:"input_ids_sd1"`
	AttentionMaskSD1 []int    `json:"attention_mask_sd1"`
	InputIDsSD2      []int    `json:"input_ids_sd2"`
}

func readTokenizerCases(t *testing.T, path string) []tokenizerCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []tokenizerCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return f.Cases
}

// onlyTokenizerJSON copies dir's tokenizer.json (and configs) into a
// folder without vocab.json/merges.txt.
func onlyTokenizerJSON(t *testing.T, dir string) string {
	t.Helper()
	tmp := t.TempDir()
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if name == "tokenizer.json" {
				t.Skipf("no tokenizer.json in %s", dir)
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tmp
}

func checkTokenizerCase(t *testing.T, tok *CLIPTokenizer, c tokenizerCase, withTokens bool) {
	t.Helper()
	if withTokens && len(c.Tokens) > 0 {
		// The reference's tokens include BOS/EOS; Tokens leaves them out.
		want := c.Tokens
		if len(want) >= 2 && want[0] == StartOfText && want[len(want)-1] == EndOfText {
			want = want[1 : len(want)-1]
		}
		if got := tok.Tokens(c.Prompt); !slices.Equal(got, want) {
			t.Errorf("%q: tokens\n got %q\nwant %q", c.Prompt, got, want)
		}
	}
	if got := tok.Tokenize(c.Prompt); !slices.Equal(got, c.IDsUnpadded) {
		t.Errorf("%q: ids_unpadded\n got %v\nwant %v", c.Prompt, got, c.IDsUnpadded)
	}
	if c.InputIDsSD1 != nil {
		ids, mask := tok.Encode(c.Prompt, PadSD1, len(c.InputIDsSD1))
		if !slices.Equal(ids, c.InputIDsSD1) {
			t.Errorf("%q: input_ids_sd1\n got %v\nwant %v", c.Prompt, ids, c.InputIDsSD1)
		}
		if c.AttentionMaskSD1 != nil && !slices.Equal(mask, c.AttentionMaskSD1) {
			t.Errorf("%q: attention_mask_sd1\n got %v\nwant %v", c.Prompt, mask, c.AttentionMaskSD1)
		}
	}
	if c.InputIDsSD2 != nil {
		if ids, _ := tok.Encode(c.Prompt, PadSD2, len(c.InputIDsSD2)); !slices.Equal(ids, c.InputIDsSD2) {
			t.Errorf("%q: input_ids_sd2\n got %v\nwant %v", c.Prompt, ids, c.InputIDsSD2)
		}
	}
}

// TestCLIPTokenizerGolden checks every expected_ids.json case of every
// clip_tokenizer manifest entry, loading from vocab.json+merges.txt and from
// tokenizer.json alone.
func TestCLIPTokenizerGolden(t *testing.T) {
	golden.ForKind(t, "clip_tokenizer", func(t *testing.T, gc golden.Case) {
		dir := gc.Path("tokenizer")
		cases := readTokenizerCases(t, gc.Path("expected"))
		tok, err := LoadCLIPTokenizer(dir)
		if err != nil {
			t.Fatal(err)
		}
		if tok.BOS() != 49406 || tok.EOS() != 49407 || tok.PadID() != PadSD1 || tok.MaxLength() != 77 {
			t.Errorf("BOS %d EOS %d pad %d max %d", tok.BOS(), tok.EOS(), tok.PadID(), tok.MaxLength())
		}
		t.Run("vocab_merges", func(t *testing.T) {
			pass := 0
			for i, c := range cases {
				ok := t.Run(fmt.Sprintf("case%02d", i), func(t *testing.T) { checkTokenizerCase(t, tok, c, true) })
				if ok {
					pass++
				}
			}
			t.Logf("%d/%d cases exact", pass, len(cases))
		})
		t.Run("tokenizer_json", func(t *testing.T) {
			tj, err := LoadCLIPTokenizer(onlyTokenizerJSON(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			if tj.VocabSize() != tok.VocabSize() {
				t.Errorf("vocab size %d from tokenizer.json, %d from vocab.json", tj.VocabSize(), tok.VocabSize())
			}
			for _, c := range cases {
				checkTokenizerCase(t, tj, c, true)
			}
		})
	})
}

var (
	goldenTokOnce sync.Once
	goldenTok     *CLIPTokenizer
	goldenTokErr  error
)

// goldenTokenizer loads the first clip_tokenizer folder of the manifest, or
// skips.
func goldenTokenizer(t testing.TB) *CLIPTokenizer {
	t.Helper()
	goldenTokOnce.Do(func() {
		m, err := golden.LoadManifest(golden.Dir())
		if err != nil {
			goldenTokErr = err
			return
		}
		for _, c := range m.Cases {
			if c.Kind == "clip_tokenizer" {
				goldenTok, goldenTokErr = LoadCLIPTokenizer(c.Path("tokenizer"))
				return
			}
		}
		goldenTokErr = os.ErrNotExist
	})
	if goldenTokErr != nil {
		if os.IsNotExist(goldenTokErr) {
			t.Skipf("no golden CLIP tokenizer: %v", goldenTokErr)
		}
		t.Fatal(goldenTokErr)
	}
	return goldenTok
}

// tinyTokenizer is a small CLIP-structured tokenizer that needs no files.
func tinyTokenizer(t testing.TB, opts ...TokenizerOption) *CLIPTokenizer {
	t.Helper()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[byteChar[b]] = b
		vocab[byteChar[b]+endOfWord] = 256 + b
	}
	merges := [][2]string{{"a", "b"}, {"ab", "c</w>"}, {"c", "d"}, {"a", "a"}}
	for _, m := range merges {
		vocab[m[0]+m[1]] = len(vocab)
	}
	vocab[StartOfText] = len(vocab)
	vocab[EndOfText] = len(vocab)
	tok, err := NewCLIPTokenizer(vocab, merges, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestCLIPTokenizerBPE(t *testing.T) {
	tok := tinyTokenizer(t)
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"abc", []string{"abc</w>"}},
		{"ABC abcd", []string{"abc</w>", "ab", "c", "d</w>"}}, // c+d is ranked after a+b
		{"aaa", []string{"aa", "a</w>"}},                      // non-overlapping, left to right
		{"aaaa", []string{"aa", "a", "a</w>"}},                // "a</w>" ≠ "a": the second pair stays
		{"x", []string{"x</w>"}},
		{"", nil},
		{"a<|endoftext|>b", []string{"a</w>", EndOfText, "b</w>"}},
	} {
		if got := tok.Tokens(tc.in); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("Tokens(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestBPELongMatchesSimple checks that the heap-based merge used for long
// pre-tokens gives exactly the simple merge loop's result.
func TestBPELongMatchesSimple(t *testing.T) {
	tok := goldenTokenizer(t)
	r := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"abcdefghijklmnopqrstuvwxyz", "etaoinshrdlu", "ab", "a", "!?.,-()[]", "é中ßσς🐱", "0123456789abc"}
	for i := 0; i < 3000; i++ {
		alpha := []rune(alphabets[i%len(alphabets)])
		var b strings.Builder
		for n := 1 + r.IntN(120); n > 0; n-- {
			b.WriteRune(alpha[r.IntN(len(alpha))])
		}
		w := b.String()
		if got, want := tok.bpeLong(w), tok.bpe(w); !slices.Equal(got, want) {
			t.Fatalf("%q: bpeLong %v, bpe %v", w, got, want)
		}
	}
	for _, w := range []string{"a", "ab", "supercalifragilisticexpialidocious", strings.Repeat("a", 300), "\xff\x00"} {
		if got, want := tok.bpeLong(w), tok.bpe(w); !slices.Equal(got, want) {
			t.Errorf("%q: bpeLong %v, bpe %v", w, got, want)
		}
	}
	// Long words tokenize the same through the public API (uncached path).
	long := strings.Repeat("photograph", 20)
	if got := tok.Tokens(long); len(got) == 0 || got[len(got)-1] != "photograph</w>" {
		t.Errorf("long word: %q", got)
	}
}

func TestCLIPTokenizerText(t *testing.T) {
	tok := goldenTokenizer(t)
	for _, tc := range []struct {
		name string
		in   string
		want []string // tokens without BOS/EOS; nil for "same as same"
		same string   // or: must tokenize like this text
	}{
		{name: "final sigma", in: "ΟΔΟΣ", same: "οδος"},
		{name: "final sigma before punctuation", in: "ΟΔΟΣ.", same: "οδος."},
		{name: "medial sigma", in: "ΣΑΣ", want: []string{"Ï", "ĥ", "Î", "±", "Ï", "Ĥ</w>"}},
		{name: "lone sigma", in: "Σ", same: "σ"},
		{name: "sigma after case-ignorable", in: "Α'Σ", same: "α'ς"},
		{name: "dotted capital I", in: "İ", same: "i\u0307"},
		{name: "NFC", in: "cafe\u0301", same: "café"},
		{name: "control chars dropped", in: "a\x07b\u200bc\x00d", same: "abcd"},
		{name: "whitespace kinds", in: "a\tb\nc\rd\u00a0e\u3000f\u2028g", same: "a b c d e f g"},
		{name: "vertical tab dropped", in: "a\vb\fc", same: "abc"},
		{name: "private use dropped", in: "a\ue000b", same: "ab"},
		{name: "CJK spaced", in: "中文", same: "中 文"},
		{name: "upper special text", in: "<|ENDOFTEXT|>", same: EndOfText},
		{name: "special text after cleaning", in: "<|end\u200boftext|>", same: EndOfText},
		{name: "special not at match start", in: "(<|ENDOFTEXT|>", want: []string{"(", "<", "|</w>", "endof", "text</w>", "|", "></w>"}},
		{name: "long s contraction", in: "it'ſ", want: []string{"it</w>", "'", "Å", "¿</w>"}},
		{name: "long s in special text", in: "<|ſtartoftext|>", want: []string{"<", "|", "Å", "¿", "tar", "tof", "text", "|", "></w>"}},
		{name: "ypogegrammeni skipped", in: "!\u0345! a\u0345b", want: []string{"!</w>", "!</w>", "a</w>", "b</w>"}},
		{name: "circled letter is punctuation", in: "x\u24b6y", want: []string{"x</w>", "âĵ", "Ĳ</w>", "y</w>"}},
		{name: "dotted capital I tokens", in: "İ", want: []string{"i</w>", "Ìĩ</w>"}},
		{name: "contraction", in: "IT'S", same: "it 's"},
		{name: "numbers one by one", in: "x2024", want: []string{"x</w>", "2</w>", "0</w>", "2</w>", "4</w>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tok.Tokens(tc.in)
			want := tc.want
			if want == nil {
				want = tok.Tokens(tc.same)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Tokens(%q) = %q, want %q", tc.in, got, want)
			}
		})
	}
	// The specials in the text map to their ids.
	if got := tok.Tokenize("<|STARTOFTEXT|>"); !slices.Equal(got, []int{49406, 49406, 49407}) {
		t.Errorf("upper-case special text: %v", got)
	}
}

func TestCLIPTokenizerInvalidUTF8(t *testing.T) {
	tok := goldenTokenizer(t)
	for _, tc := range []struct{ in, same string }{
		{"a\xffphoto", "aphoto"},
		{"\xff\xfe\xfd", ""},
		{"photo\xe2\x82", "photo"},
		{"\xed\xa0\x80dog", "dog"}, // an encoded surrogate
		{"a\ufffdb", "ab"},         // U+FFFD itself is dropped, as in the reference
		{"<|endoftext\xff|>", "<|endoftext|>"},
		{"<|endo\xfftext|>a", "<|endotext|>a"},
	} {
		got := tok.Tokenize(tc.in)
		if want := tok.Tokenize(tc.same); !slices.Equal(got, want) {
			t.Errorf("Tokenize(%q) = %v, want %v (as %q)", tc.in, got, want, tc.same)
		}
	}
}

func TestCLIPTokenizerTruncation(t *testing.T) {
	tok := goldenTokenizer(t)
	long := strings.Repeat("a majestic lion on a cliff, ", 40)
	full := tok.Tokenize(long)
	if len(full) <= 77 {
		t.Fatalf("prompt has only %d tokens", len(full))
	}
	for _, pad := range []int{PadSD1, PadSD2, PadDefault} {
		ids, mask := tok.Encode(long, pad, 77)
		if len(ids) != 77 || len(mask) != 77 {
			t.Fatalf("lengths %d %d", len(ids), len(mask))
		}
		if ids[0] != tok.BOS() || ids[76] != tok.EOS() {
			t.Errorf("pad %d: ids[0]=%d ids[76]=%d", pad, ids[0], ids[76])
		}
		if !slices.Equal(ids[:76], full[:76]) {
			t.Errorf("pad %d: prefix differs", pad)
		}
		if slices.Contains(mask, 0) {
			t.Errorf("pad %d: mask has zeros", pad)
		}
	}
	// maxLen <= 0 means model_max_length.
	if ids, _ := tok.Encode(long, PadDefault, 0); len(ids) != 77 || ids[76] != tok.EOS() {
		t.Errorf("default length: %d ids, last %d", len(ids), ids[len(ids)-1])
	}
	// Short prompt: padding and mask.
	ids, mask := tok.Encode("a photo", PadSD2, 8)
	if want := []int{49406, 320, 1125, 49407, 0, 0, 0, 0}; !slices.Equal(ids, want) {
		t.Errorf("short: %v, want %v", ids, want)
	}
	if want := []int{1, 1, 1, 1, 0, 0, 0, 0}; !slices.Equal(mask, want) {
		t.Errorf("short mask: %v, want %v", mask, want)
	}
}

func TestCLIPTokenizerDecode(t *testing.T) {
	tok := goldenTokenizer(t)
	for _, tc := range []struct{ in, want string }{
		{"A Cute CAT, highly detailed, 4K!", "a cute cat, highly detailed, 4 k!"},
		{"café naïve 🐱", "café naïve 🐱"},
		{"it's", "it's"},
		{"", ""},
	} {
		if got := tok.Decode(tok.Tokenize(tc.in)); got != tc.want {
			t.Errorf("Decode(Tokenize(%q)) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// A multi-byte character cut in half decodes to U+FFFD.
	id, _ := tok.ID("ðŁĲ")
	if id != 0 {
		if got := tok.Decode([]int{id}); got != "\ufffd" {
			t.Errorf("partial emoji: %q", got)
		}
	}
	if got := tok.Decode([]int{-1, 1 << 30, 320}); got != "a" {
		t.Errorf("out-of-range ids: %q", got)
	}
}

func TestCLIPTokenizerAPI(t *testing.T) {
	tok := goldenTokenizer(t)
	if tok.VocabSize() != 49408 {
		t.Errorf("VocabSize %d", tok.VocabSize())
	}
	if id, ok := tok.ID("photo</w>"); !ok || id != 1125 {
		t.Errorf("ID(photo</w>) = %d %v", id, ok)
	}
	if s, ok := tok.Token(49406); !ok || s != StartOfText {
		t.Errorf("Token(49406) = %q %v", s, ok)
	}
	if _, ok := tok.ID("no such token"); ok {
		t.Error("ID of a missing token")
	}
	if got, want := tok.TokenIDs("a photo"), []int{320, 1125}; !slices.Equal(got, want) {
		t.Errorf("TokenIDs %v, want %v", got, want)
	}
	// Concurrent use shares the cache.
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				tok.Tokenize("a photograph of an astronaut riding a horse")
			}
		}()
	}
	wg.Wait()
}

func TestCLIPTokenizerSD2Folder(t *testing.T) {
	golden.ForKind(t, "clip_tokenizer", func(t *testing.T, gc golden.Case) {
		dir := t.TempDir()
		src := gc.Path("tokenizer")
		for _, name := range []string{"vocab.json", "merges.txt"} {
			data, err := os.ReadFile(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// As in stabilityai/stable-diffusion-2 tokenizer folders.
		cfg := `{"bos_token": {"content": "<|startoftext|>", "__type": "AddedToken"}, "eos_token": "<|endoftext|>",
			"pad_token": "!", "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}`
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "special_tokens_map.json"), []byte(`{"pad_token": "!"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := LoadCLIPTokenizer(dir)
		if err != nil {
			t.Fatal(err)
		}
		if tok.PadID() != PadSD2 {
			t.Fatalf("PadID %d, want 0", tok.PadID())
		}
		for _, c := range readTokenizerCases(t, gc.Path("expected")) {
			if c.InputIDsSD2 == nil {
				continue
			}
			if ids, _ := tok.Encode(c.Prompt, PadDefault, 0); !slices.Equal(ids, c.InputIDsSD2) {
				t.Errorf("%q: got %v, want %v", c.Prompt, ids, c.InputIDsSD2)
			}
		}
		// transformers' quirk on SD2 folders: "!" split out as the pad token
		// (diffusers issue #4153 shows "! !! !!!" → six zeros).
		split, err := LoadCLIPTokenizer(dir, WithSplitPadToken(true))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := split.Tokenize("! !! !!!"), []int{49406, 0, 0, 0, 0, 0, 0, 49407}; !slices.Equal(got, want) {
			t.Errorf("split pad: %v, want %v", got, want)
		}
		if got, want := tok.Tokenize("! !! !!!"), []int{49406, 256, 748, 995, 49407}; !slices.Equal(got, want) {
			t.Errorf("unsplit pad: %v, want %v (open_clip)", got, want)
		}
	})
}

func writeTokFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadCLIPTokenizerErrors(t *testing.T) {
	tiny := tinyTokenizer(t)
	vocabJSON, err := json.Marshal(tiny.vocab)
	if err != nil {
		t.Fatal(err)
	}
	merges := "#version: 0.2\na b\nab c</w>\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"empty folder", nil, []string{"vocab.json", "not found"}},
		{"missing merges", map[string]string{"vocab.json": string(vocabJSON)}, []string{"merges.txt", "not found"}},
		{"missing vocab", map[string]string{"merges.txt": merges}, []string{"vocab.json", "not found"}},
		{"missing merges, bad tokenizer.json", map[string]string{"vocab.json": string(vocabJSON), "tokenizer.json": "{"}, []string{"tokenizer.json", "corrupt"}},
		{"corrupt vocab", map[string]string{"vocab.json": `{"a": 1,`, "merges.txt": merges}, []string{"vocab.json", "corrupt"}},
		{"vocab not an object", map[string]string{"vocab.json": `["a"]`, "merges.txt": merges}, []string{"vocab.json", "corrupt"}},
		{"empty vocab", map[string]string{"vocab.json": `{}`, "merges.txt": merges}, []string{"vocab.json", "empty"}},
		{"negative id", map[string]string{"vocab.json": `{"a": -3}`, "merges.txt": merges}, []string{"vocab.json", "out of range"}},
		{"corrupt merges", map[string]string{"vocab.json": string(vocabJSON), "merges.txt": "#version: 0.2\na b c\n"}, []string{"merges.txt:2", "corrupt"}},
		{"no specials", map[string]string{"vocab.json": `{"a": 0, "a</w>": 1}`, "merges.txt": merges}, []string{"vocab.json", "<|startoftext|>", "not in the vocabulary"}},
		{"pad not in vocab", map[string]string{"vocab.json": string(vocabJSON), "merges.txt": merges, "special_tokens_map.json": `{"pad_token": "<pad>"}`}, []string{"pad token", "<pad>"}},
		{"corrupt config", map[string]string{"vocab.json": string(vocabJSON), "merges.txt": merges, "tokenizer_config.json": `{"pad_token": `}, []string{"tokenizer_config.json", "corrupt"}},
		{"bad config token", map[string]string{"vocab.json": string(vocabJSON), "merges.txt": merges, "tokenizer_config.json": `{"pad_token": 3}`}, []string{"tokenizer_config.json", "pad_token"}},
		{"corrupt tokenizer.json", map[string]string{"tokenizer.json": `{"model": `}, []string{"tokenizer.json", "corrupt"}},
		{"tokenizer.json not BPE", map[string]string{"tokenizer.json": `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`}, []string{"tokenizer.json", "WordPiece"}},
		{"tokenizer.json no vocab", map[string]string{"tokenizer.json": `{"model": {"type": "BPE"}}`}, []string{"tokenizer.json", "vocab"}},
		{"tokenizer.json bad merge", map[string]string{"tokenizer.json": `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}`}, []string{"tokenizer.json", "merges[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCLIPTokenizer(writeTokFiles(t, tc.files))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadCLIPTokenizerFormats(t *testing.T) {
	tiny := tinyTokenizer(t)
	vocabJSON, _ := json.Marshal(tiny.vocab)
	want := tiny.Tokenize("abc abcd aaa")
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"merges.txt", map[string]string{"vocab.json": string(vocabJSON), "merges.txt": "#version: 0.2\na b\nab c</w>\nc d\na a\n"}},
		{"merges.txt CRLF", map[string]string{"vocab.json": string(vocabJSON), "merges.txt": "#version: 0.2\r\na b\r\nab c</w>\r\nc d\r\na a\r\n"}},
		{"tokenizer.json strings", map[string]string{"tokenizer.json": `{"model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": ` + string(vocabJSON) + `, "merges": ["a b", "ab c</w>", "c d", "a a"]}}`}},
		{"tokenizer.json pairs", map[string]string{"tokenizer.json": `{"model": {"type": "BPE", "vocab": ` + string(vocabJSON) + `, "merges": [["a", "b"], ["ab", "c</w>"], ["c", "d"], ["a", "a"]]}}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := LoadCLIPTokenizer(writeTokFiles(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Tokenize("abc abcd aaa"); !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	// model_max_length of inf (Python's json writes Infinity) is ignored.
	tok, err := LoadCLIPTokenizer(writeTokFiles(t, map[string]string{
		"vocab.json": string(vocabJSON), "merges.txt": "#version: 0.2\na b\n",
		"tokenizer_config.json": `{"model_max_length": Infinity, "clean_up_tokenization_spaces": false}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if tok.MaxLength() != 77 || tok.cleanUp {
		t.Errorf("max length %d, cleanUp %v", tok.MaxLength(), tok.cleanUp)
	}
}

func BenchmarkTokenize(b *testing.B) {
	tok := goldenTokenizer(b)
	// 60 words.
	prompt := "A majestic lion standing on a cliff at sunset, dramatic lighting, ultra realistic, " +
		"cinematic composition, golden hour, highly detailed fur, 8k resolution, trending on artstation, " +
		"by greg rutkowski and alphonse mucha, volumetric fog, god rays, intricate details, sharp focus, " +
		"award winning photograph, national geographic, wide angle lens, depth of field, bokeh, " +
		"masterpiece, best quality, extremely detailed, 4k wallpaper, hdr photo"
	if n := len(strings.Fields(prompt)); n != 60 {
		b.Fatalf("%d words", n)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tok.Tokenize(prompt)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tok.mu.Lock()
			clear(tok.cache)
			tok.mu.Unlock()
			tok.Tokenize(prompt)
		}
	})
}
