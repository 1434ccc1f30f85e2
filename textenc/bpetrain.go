package textenc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ldm-project/ldm/internal/fsutil"
)

// BPETrainOptions configures TrainBPE.
type BPETrainOptions struct {
	// Merges is the most merges learnt; the vocabulary is 512 byte symbols
	// (each alone and with "</w>") + merges + 2 specials.
	Merges int
	// MinFrequency stops training when the best pair occurs less often.
	MinFrequency int
}

// TrainBPE learns a CLIP-format byte-level BPE from texts: the texts are
// cleaned, lower-cased and pre-tokenized exactly as CLIPTokenizer does, each
// word becomes its bytes_to_unicode symbols with "</w>" on the last, and the
// most frequent adjacent pair is merged repeatedly (ties broken by the pair's
// text, so training is deterministic). The result loads with
// NewCLIPTokenizer / LoadCLIPTokenizer unchanged.
func TrainBPE(texts []string, o BPETrainOptions) (vocab map[string]int, merges [][2]string, err error) {
	if o.Merges < 0 || o.Merges > maxSlowMerges {
		return nil, nil, fmt.Errorf("textenc: %d merges: want 0…%d", o.Merges, maxSlowMerges)
	}
	o.MinFrequency = max(o.MinFrequency, 1)
	base := baseVocab()
	// A merge-free tokenizer splits every word into its base symbols; the
	// symbol carrying "</w>" ends a word.
	tk, err := NewCLIPTokenizer(withSpecials(base, nil), nil)
	if err != nil {
		return nil, nil, err
	}
	counts := map[string]int{}
	for _, text := range texts {
		var word []string
		for _, s := range tk.Tokens(text) {
			if s == StartOfText || s == EndOfText {
				continue
			}
			word = append(word, s)
			if strings.HasSuffix(s, endOfWord) {
				counts[strings.Join(word, " ")]++
				word = word[:0]
			}
		}
	}
	type entry struct {
		syms []string
		n    int
	}
	words := make([]entry, 0, len(counts))
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		words = append(words, entry{strings.Fields(k), counts[k]})
	}
	var learnt []string
	for len(merges) < o.Merges {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.n
			}
		}
		var best [2]string
		bestN := 0
		for p, n := range pairs {
			if n > bestN || n == bestN && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, bestN = p, n
			}
		}
		if bestN < o.MinFrequency {
			break
		}
		merges = append(merges, best)
		joined := best[0] + best[1]
		learnt = append(learnt, joined)
		for wi := range words {
			s := words[wi].syms
			out := s[:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best[0] && s[i+1] == best[1] {
					out = append(out, joined)
					i++
					continue
				}
				out = append(out, s[i])
			}
			words[wi].syms = out
		}
	}
	return withSpecials(base, learnt), merges, nil
}

// baseVocab is CLIP's first 512 entries: the 256 byte symbols in the order
// of bytes_to_unicode's dict (the printable bytes, then the others), then
// each with "</w>".
func baseVocab() []string {
	var order []int
	printable := func(b int) bool { return b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF }
	for b := 0; b < 256; b++ {
		if printable(b) {
			order = append(order, b)
		}
	}
	for b := 0; b < 256; b++ {
		if !printable(b) {
			order = append(order, b)
		}
	}
	out := make([]string, 0, 512)
	for _, b := range order {
		out = append(out, byteChar[b])
	}
	for _, b := range order {
		out = append(out, byteChar[b]+endOfWord)
	}
	return out
}

// withSpecials numbers base, then learnt tokens (skipping repeats), then
// <|startoftext|> and <|endoftext|>, as CLIP's vocab.json does.
func withSpecials(base, learnt []string) map[string]int {
	vocab := make(map[string]int, len(base)+len(learnt)+2)
	for _, list := range [][]string{base, learnt, {StartOfText, EndOfText}} {
		for _, tok := range list {
			if _, ok := vocab[tok]; !ok {
				vocab[tok] = len(vocab)
			}
		}
	}
	return vocab
}

// WriteCLIPTokenizer writes vocab.json, merges.txt (with the "#version: 0.2"
// header), special_tokens_map.json and tokenizer_config.json (model_max_length
// maxLength, CLIPTokenizer) to dir, each atomically.
func WriteCLIPTokenizer(dir string, vocab map[string]int, merges [][2]string, maxLength int) error {
	if len(vocab) == 0 {
		return errors.New("textenc: empty vocabulary")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	vj, err := json.Marshal(vocab)
	if err != nil {
		return err
	}
	var mb strings.Builder
	mb.WriteString("#version: 0.2\n")
	for _, m := range merges {
		mb.WriteString(m[0] + " " + m[1] + "\n")
	}
	special := map[string]string{"bos_token": StartOfText, "eos_token": EndOfText, "unk_token": EndOfText, "pad_token": EndOfText}
	sj, err := json.MarshalIndent(special, "", "  ")
	if err != nil {
		return err
	}
	cfg := map[string]any{"tokenizer_class": "CLIPTokenizer", "model_max_length": maxLength, "do_lower_case": true,
		"bos_token": StartOfText, "eos_token": EndOfText, "unk_token": EndOfText, "pad_token": EndOfText,
		"clean_up_tokenization_spaces": true}
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"vocab.json": vj, "merges.txt": []byte(mb.String()),
		"special_tokens_map.json": sj, "tokenizer_config.json": cj} {
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}
