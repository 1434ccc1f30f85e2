package ldm

import (
	"regexp"
	"strconv"
	"strings"
)

// Fragment is a piece of prompt text with its attention weight.
type Fragment struct {
	Text   string
	Weight float64
}

// BREAK forces a new 75-token chunk, as in AUTOMATIC1111.
const breakText = "BREAK"

// A1111's emphasis multipliers: (x) multiplies by 1.1, [x] divides by 1.1.
const (
	roundMul  = 1.1
	squareMul = 1 / 1.1
)

var attentionRe = regexp.MustCompile(`\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:`)

// ParseAttention splits an AUTOMATIC1111 prompt into weighted fragments:
// "(word)" ×1.1, "((word))" ×1.21, "[word]" ÷1.1, "(word:1.5)" ×1.5, "\(" a
// literal parenthesis, and "BREAK" (upper case, on its own) a chunk break,
// returned as a fragment with Text "BREAK" and weight −1. Unbalanced brackets
// apply to the end of the prompt, as in A1111. Adjacent fragments of equal
// weight are merged.
func ParseAttention(text string) []Fragment {
	var res []Fragment
	var round, square []int
	multiply := func(start int, m float64) {
		for i := start; i < len(res); i++ {
			res[i].Weight *= m
		}
	}
	for _, m := range attentionRe.FindAllStringSubmatchIndex(text, -1) {
		tok := text[m[0]:m[1]]
		weight := ""
		if m[2] >= 0 {
			weight = text[m[2]:m[3]]
		}
		switch {
		case strings.HasPrefix(tok, "\\") && len(tok) == 2:
			res = append(res, Fragment{tok[1:], 1})
		case tok == "\\":
			res = append(res, Fragment{tok, 1})
		case tok == "(":
			round = append(round, len(res))
		case tok == "[":
			square = append(square, len(res))
		case weight != "" && len(round) > 0:
			w, err := strconv.ParseFloat(weight, 64)
			if err != nil {
				res = append(res, Fragment{tok, 1})
				continue
			}
			multiply(round[len(round)-1], w)
			round = round[:len(round)-1]
		case tok == ")" && len(round) > 0:
			multiply(round[len(round)-1], roundMul)
			round = round[:len(round)-1]
		case tok == "]" && len(square) > 0:
			multiply(square[len(square)-1], squareMul)
			square = square[:len(square)-1]
		default:
			parts := regexp.MustCompile(`\s*\bBREAK\b\s*`).Split(tok, -1)
			for i, p := range parts {
				if i > 0 {
					res = append(res, Fragment{breakText, -1})
				}
				if p != "" {
					res = append(res, Fragment{p, 1})
				}
			}
		}
	}
	for _, p := range round {
		multiply(p, roundMul)
	}
	for _, p := range square {
		multiply(p, squareMul)
	}
	if len(res) == 0 {
		return []Fragment{{"", 1}}
	}
	merged := res[:1]
	for _, f := range res[1:] {
		last := &merged[len(merged)-1]
		if f.Weight == last.Weight && f.Weight != -1 {
			last.Text += f.Text
		} else {
			merged = append(merged, f)
		}
	}
	return merged
}

// Chunk is one 75-token window of a prompt: the token ids (without BOS/EOS),
// each token's weight, and, where a textual-inversion embedding sits, the
// vector that replaces the id's embedding (Vecs is nil when there is none).
type Chunk struct {
	IDs     []int
	Weights []float64
	Vecs    [][]float32
}

func (c *Chunk) add(t token, w float64) {
	if t.vec != nil && c.Vecs == nil {
		c.Vecs = make([][]float32, len(c.IDs), cap(c.IDs))
	}
	c.IDs = append(c.IDs, t.id)
	c.Weights = append(c.Weights, w)
	if c.Vecs != nil {
		c.Vecs = append(c.Vecs, t.vec)
	}
}

// split moves tokens [cut:] of c into a new chunk.
func (c *Chunk) split(cut int) Chunk {
	rest := Chunk{IDs: append([]int(nil), c.IDs[cut:]...), Weights: append([]float64(nil), c.Weights[cut:]...)}
	c.IDs, c.Weights = c.IDs[:cut], c.Weights[:cut]
	if c.Vecs != nil {
		rest.Vecs = append([][]float32(nil), c.Vecs[cut:]...)
		c.Vecs = c.Vecs[:cut]
	}
	return rest
}

// chunkTokens lays weighted fragments out in chunks of n tokens (75 for CLIP),
// as AUTOMATIC1111 does: a chunk that would split a phrase is broken after
// the last comma if that comma is within backtrack tokens of the end, an
// embedding's vectors are never split across chunks, and BREAK starts a new
// chunk. tokenize returns tokens without BOS/EOS.
func chunkTokens(frags []Fragment, tokenize func(string) []token, commaID, n, backtrack int) []Chunk {
	var chunks []Chunk
	cur := Chunk{}
	lastComma := -1
	flush := func() {
		chunks = append(chunks, cur)
		cur = Chunk{}
		lastComma = -1
	}
	for _, f := range frags {
		if f.Weight == -1 && f.Text == breakText {
			flush()
			continue
		}
		for _, t := range tokenize(f.Text) {
			if t.vec == nil && t.id == commaID {
				lastComma = len(cur.IDs)
			} else if len(cur.IDs) == n && lastComma >= 0 && len(cur.IDs)-lastComma-1 <= backtrack {
				// Move the words after the last comma into the next chunk.
				rest := cur.split(lastComma + 1)
				flush()
				cur = rest
			}
			if len(cur.IDs) == n || (t.span > 1 && len(cur.IDs)+t.span > n) {
				flush()
			}
			cur.add(t, f.Weight)
		}
	}
	if len(cur.IDs) > 0 || len(chunks) == 0 {
		flush()
	}
	return chunks
}
