package textenc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// LoadCLIPTokenizer loads a CLIP tokenizer folder: vocab.json and merges.txt
// (the files the slow tokenizer reads), or, when either is missing,
// tokenizer.json (its model.vocab and model.merges). tokenizer_config.json and
// special_tokens_map.json, when present, set the special tokens (bos_token,
// eos_token, unk_token, pad_token; special_tokens_map.json wins, as in
// transformers), model_max_length and clean_up_tokenization_spaces. Options
// are applied last.
func LoadCLIPTokenizer(dir string, opts ...TokenizerOption) (*CLIPTokenizer, error) {
	o := tokOptions{bos: StartOfText, eos: EndOfText, unk: EndOfText, pad: EndOfText, maxLen: DefaultMaxLength}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		if err := readTokenizerConfig(filepath.Join(dir, name), &o); err != nil {
			return nil, err
		}
	}
	for _, f := range opts {
		f(&o)
	}

	vocabPath := filepath.Join(dir, "vocab.json")
	mergesPath := filepath.Join(dir, "merges.txt")
	jsonPath := filepath.Join(dir, "tokenizer.json")
	var (
		vocab  map[string]int
		merges [][2]string
		err    error
	)
	if !(fileExists(vocabPath) && fileExists(mergesPath)) && fileExists(jsonPath) {
		if vocab, merges, err = readTokenizerJSON(jsonPath); err != nil {
			return nil, err
		}
		vocabPath = jsonPath
	} else {
		if vocab, err = readVocab(vocabPath); err != nil {
			return nil, err
		}
		if merges, err = readMerges(mergesPath); err != nil {
			return nil, err
		}
	}
	t, err := build(vocab, merges, o)
	if err != nil {
		return nil, fmt.Errorf("textenc: %s: %w", vocabPath, err)
	}
	return t, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readVocab(path string) (map[string]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("textenc: CLIP tokenizer vocabulary %s not found (need vocab.json and merges.txt, or tokenizer.json): %w", path, err)
		}
		return nil, fmt.Errorf("textenc: reading CLIP tokenizer vocabulary: %w", err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("textenc: %s: corrupt vocabulary (want a JSON object of token → id): %w", path, err)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("textenc: %s: empty vocabulary", path)
	}
	return vocab, nil
}

// readMerges reads merges.txt like the slow tokenizer: the file is stripped,
// the "#version" header line skipped, and at most 48894 merges are read, each
// two whitespace-separated symbols.
func readMerges(path string) ([][2]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("textenc: CLIP tokenizer merges %s not found: %w", path, err)
		}
		return nil, fmt.Errorf("textenc: reading CLIP tokenizer merges: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	first := 1
	if len(lines) > 0 && strings.HasPrefix(lines[0], "#version") {
		lines = lines[1:]
	} else {
		first = 0 // a header-less file: keep its first merge
	}
	lines = lines[:min(len(lines), maxSlowMerges)]
	merges := make([][2]string, 0, len(lines))
	for i, line := range lines {
		f := strings.Fields(line)
		switch len(f) {
		case 0:
			continue
		case 2:
			merges = append(merges, [2]string{f[0], f[1]})
		default:
			return nil, fmt.Errorf("textenc: %s:%d: corrupt merge %q (want two symbols)", path, i+1+first, line)
		}
	}
	if len(merges) == 0 {
		return nil, fmt.Errorf("textenc: %s: no merges", path)
	}
	return merges, nil
}

// readTokenizerJSON reads the BPE model of an HF tokenizers file.
func readTokenizerJSON(path string) (map[string]int, [][2]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("textenc: reading CLIP tokenizer: %w", err)
	}
	var f struct {
		Model struct {
			Type            string            `json:"type"`
			Vocab           map[string]int    `json:"vocab"`
			Merges          []json.RawMessage `json:"merges"`
			EndOfWordSuffix *string           `json:"end_of_word_suffix"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("textenc: %s: corrupt tokenizer.json: %w", path, err)
	}
	m := f.Model
	if m.Type != "" && m.Type != "BPE" {
		return nil, nil, fmt.Errorf("textenc: %s: model type %q, want BPE", path, m.Type)
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != endOfWord {
		return nil, nil, fmt.Errorf("textenc: %s: end_of_word_suffix %q, want %q", path, *m.EndOfWordSuffix, endOfWord)
	}
	if len(m.Vocab) == 0 {
		return nil, nil, fmt.Errorf("textenc: %s: no model.vocab", path)
	}
	merges := make([][2]string, 0, len(m.Merges))
	for i, raw := range m.Merges {
		// Either "a b" (tokenizers < 0.20) or ["a", "b"].
		var s string
		var pair []string
		if err := json.Unmarshal(raw, &s); err == nil {
			pair = strings.Fields(s)
		} else if err := json.Unmarshal(raw, &pair); err != nil {
			return nil, nil, fmt.Errorf("textenc: %s: model.merges[%d]: %w", path, i, err)
		}
		if len(pair) != 2 {
			return nil, nil, fmt.Errorf("textenc: %s: model.merges[%d] = %s: want two symbols", path, i, raw)
		}
		merges = append(merges, [2]string{pair[0], pair[1]})
	}
	if len(merges) == 0 {
		return nil, nil, fmt.Errorf("textenc: %s: no model.merges", path)
	}
	return m.Vocab, merges, nil
}

// readTokenizerConfig applies tokenizer_config.json or
// special_tokens_map.json to o; a missing file is not an error.
func readTokenizerConfig(path string, o *tokOptions) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("textenc: reading tokenizer config: %w", err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(sanitizeJSONNumbers(data), &cfg); err != nil {
		return fmt.Errorf("textenc: %s: corrupt JSON: %w", path, err)
	}
	for key, dst := range map[string]*string{"bos_token": &o.bos, "eos_token": &o.eos, "unk_token": &o.unk, "pad_token": &o.pad} {
		raw, ok := cfg[key]
		if !ok || string(raw) == "null" {
			continue
		}
		tok, err := tokenContent(raw)
		if err != nil {
			return fmt.Errorf("textenc: %s: %s: %w", path, key, err)
		}
		*dst = tok
	}
	if raw, ok := cfg["model_max_length"]; ok {
		var n float64
		if err := json.Unmarshal(raw, &n); err == nil && n >= 2 && n <= 1<<20 && n == math.Trunc(n) {
			o.maxLen = int(n)
		}
	}
	if raw, ok := cfg["clean_up_tokenization_spaces"]; ok {
		var b bool
		if err := json.Unmarshal(raw, &b); err == nil {
			o.cleanUp = &b
		}
	}
	return nil
}

// tokenContent reads a special token given as a string or as an AddedToken
// object {"content": ...}.
func tokenContent(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("want a string or an object with \"content\", got %s", raw)
	}
	return *obj.Content, nil
}

// sanitizeJSONNumbers replaces the bare NaN/Infinity literals that Python's
// json module may write (e.g. a model_max_length of inf) with null.
func sanitizeJSONNumbers(data []byte) []byte {
	if !bytes.Contains(data, []byte("Infinity")) && !bytes.Contains(data, []byte("NaN")) {
		return data
	}
	var out []byte
	inStr := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inStr {
			out = append(out, c)
			if c == '\\' && i+1 < len(data) {
				i++
				out = append(out, data[i])
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
		case bytes.HasPrefix(data[i:], []byte("-Infinity")):
			out = append(out, "null"...)
			i += len("-Infinity") - 1
			continue
		case bytes.HasPrefix(data[i:], []byte("Infinity")), bytes.HasPrefix(data[i:], []byte("NaN")):
			out = append(out, "null"...)
			if c == 'N' {
				i += len("NaN") - 1
			} else {
				i += len("Infinity") - 1
			}
			continue
		}
		out = append(out, c)
	}
	return out
}
