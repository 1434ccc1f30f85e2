package ldm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ldm-project/ldm/weights"
)

// Embedding is a textual-inversion embedding: vectors that stand in for the
// token embeddings of its trigger word wherever the word appears in a prompt.
type Embedding struct {
	Name    string      // the trigger word: the file name without extension
	Vectors [][]float32 // one per token position it occupies, each the text encoder's width
	Path    string
	Hash    string // AUTOMATIC1111's short hash: the file's SHA-256, 12 hex digits (infotext "TI hashes")

	ids []int // the trigger word's tokens, matched in prompts
}

// LoadEmbedding reads one textual-inversion file: AUTOMATIC1111's layout (an
// "emb_params" tensor [n, D]) or diffusers' (a single tensor named after its
// token, [D] or [n, D]). The trigger word is the file name.
func LoadEmbedding(path string) (*Embedding, error) {
	f, err := weights.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	key := "emb_params"
	if _, ok := f.Info(key); !ok {
		names := f.Names()
		if len(names) != 1 {
			return nil, fmt.Errorf("%s: not a textual-inversion embedding: want an \"emb_params\" tensor or a single tensor, found %d tensors", path, len(names))
		}
		key = names[0]
	}
	data, shape, err := f.Float32(key)
	if err != nil {
		return nil, err
	}
	var n, d int
	switch len(shape) {
	case 1:
		n, d = 1, shape[0]
	case 2:
		n, d = shape[0], shape[1]
	default:
		return nil, fmt.Errorf("%s: embedding tensor %q has shape %v, want [D] or [n, D]", path, key, shape)
	}
	if n < 1 || d < 1 {
		return nil, fmt.Errorf("%s: empty embedding tensor %q", path, key)
	}
	e := &Embedding{Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), Path: path}
	if b, err := os.ReadFile(path); err == nil {
		sum := sha256.Sum256(b)
		e.Hash = hex.EncodeToString(sum[:6])
	}
	for i := range n {
		e.Vectors = append(e.Vectors, data[i*d:(i+1)*d])
	}
	return e, nil
}

// loadEmbeddings loads every *.safetensors file of dir whose width fits the
// text encoder (hidden). Files that do not fit are returned as skipped, with
// the reason, as AUTOMATIC1111 skips embeddings of another model family.
func (p *Pipeline) loadEmbeddings(dir string, hidden int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("embeddings: %w", err)
	}
	p.Embeddings = map[string]*Embedding{}
	for _, ent := range entries {
		name := ent.Name()
		path := filepath.Join(dir, name)
		switch ext := strings.ToLower(filepath.Ext(name)); {
		case ent.IsDir() || strings.HasPrefix(name, "."):
			continue
		case ext == ".pt" || ext == ".bin" || ext == ".ckpt":
			p.SkippedEmbeddings = append(p.SkippedEmbeddings, path+": PyTorch pickle (not loaded: it can run code); convert it to .safetensors")
			continue
		case ext != ".safetensors":
			continue
		}
		e, err := LoadEmbedding(path)
		if err != nil {
			p.SkippedEmbeddings = append(p.SkippedEmbeddings, err.Error())
			continue
		}
		if d := len(e.Vectors[0]); d != hidden {
			p.SkippedEmbeddings = append(p.SkippedEmbeddings, fmt.Sprintf("%s: vectors of width %d, the text encoder's is %d (another model family)", path, d, hidden))
			continue
		}
		if n := len(e.Vectors); n > p.Tokenizer.MaxLength()-2 {
			p.SkippedEmbeddings = append(p.SkippedEmbeddings, fmt.Sprintf("%s: %d vectors do not fit in one %d-token chunk", path, n, p.Tokenizer.MaxLength()-2))
			continue
		}
		e.ids = p.Tokenizer.TokenIDs(e.Name)
		if len(e.ids) == 0 {
			p.SkippedEmbeddings = append(p.SkippedEmbeddings, path+": the file name gives no token to trigger it")
			continue
		}
		if old := p.Embeddings[strings.ToLower(e.Name)]; old != nil {
			p.SkippedEmbeddings = append(p.SkippedEmbeddings, fmt.Sprintf("%s: the trigger %q is taken by %s", path, e.Name, old.Path))
			continue
		}
		p.Embeddings[strings.ToLower(e.Name)] = e
	}
	return nil
}

// token is one prompt position: a vocabulary id, or a textual-inversion
// vector (id 0 as AUTOMATIC1111's placeholder, vec set). span > 1 on the
// first vector of an embedding: that many positions stay in one chunk.
type token struct {
	id   int
	vec  []float32
	span int
}

// tokenize turns prompt text into tokens, replacing each trigger word of a
// loaded embedding with its vectors (the longest trigger wins where several
// match, as the tokens of AUTOMATIC1111's lookup).
func (p *Pipeline) tokenize(text string) []token {
	ids := p.Tokenizer.TokenIDs(text)
	out := make([]token, 0, len(ids))
	triggers := p.sortedEmbeddings()
	for i := 0; i < len(ids); {
		var hit *Embedding
		for _, e := range triggers {
			if hasPrefix(ids[i:], e.ids) {
				hit = e
				break
			}
		}
		if hit == nil {
			out = append(out, token{id: ids[i], span: 1})
			i++
			continue
		}
		for k, v := range hit.Vectors {
			t := token{vec: v}
			if k == 0 {
				t.span = len(hit.Vectors)
			}
			out = append(out, t)
		}
		i += len(hit.ids)
	}
	return out
}

// tiHashes is the infotext's "TI hashes" value (A1111: "name: hash, ..."):
// the embeddings whose trigger the prompt or negative prompt uses, matched
// as tokenize matches them, in order of first use; "" when none.
func (p *Pipeline) tiHashes(req Request) string {
	if len(p.Embeddings) == 0 || p.Tokenizer == nil {
		return ""
	}
	triggers := p.sortedEmbeddings()
	seen := map[*Embedding]bool{}
	var parts []string
	for _, text := range []string{req.Prompt, req.NegativePrompt} {
		ids := p.Tokenizer.TokenIDs(stripLoRATags(text))
		for i := 0; i < len(ids); i++ {
			for _, e := range triggers {
				if hasPrefix(ids[i:], e.ids) {
					if !seen[e] && e.Hash != "" {
						seen[e] = true
						parts = append(parts, strings.NewReplacer(":", "", ",", "").Replace(e.Name)+": "+e.Hash)
					}
					i += len(e.ids) - 1
					break
				}
			}
		}
	}
	return strings.Join(parts, ", ")
}

// sortedEmbeddings lists the embeddings longest trigger first.
func (p *Pipeline) sortedEmbeddings() []*Embedding {
	if len(p.Embeddings) == 0 {
		return nil
	}
	out := make([]*Embedding, 0, len(p.Embeddings))
	for _, e := range p.Embeddings {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i].ids) != len(out[j].ids) {
			return len(out[i].ids) > len(out[j].ids)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func hasPrefix(s, prefix []int) bool {
	if len(prefix) > len(s) {
		return false
	}
	for i, v := range prefix {
		if s[i] != v {
			return false
		}
	}
	return true
}
