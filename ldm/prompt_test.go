package ldm

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseAttentionFollowsA1111(t *testing.T) {
	// Cases from AUTOMATIC1111's documented examples of its prompt syntax.
	for _, tc := range []struct {
		in   string
		want []Fragment
	}{
		{"normal text", []Fragment{{"normal text", 1}}},
		{"an (important) word", []Fragment{{"an ", 1}, {"important", 1.1}, {" word", 1}}},
		{"(unbalanced", []Fragment{{"unbalanced", 1.1}}},
		{"\\(literal\\]", []Fragment{{"(literal]", 1}}},
		{"(unnecessary)(parens)", []Fragment{{"unnecessaryparens", 1.1}}},
		{"a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", []Fragment{
			{"a ", 1}, {"house", 1.5730000000000004}, {" ", 1.1}, {"on", 1}, {" a ", 1.1}, {"hill", 0.55},
			{", sun, ", 1.1}, {"sky", 1.4641000000000006}, {".", 1.1}}},
		{"a BREAK b", []Fragment{{"a", 1}, {"BREAK", -1}, {"b", 1}}},
		{"", []Fragment{{"", 1}}},
	} {
		got := ParseAttention(tc.in)
		if len(got) != len(tc.want) {
			t.Errorf("%q: got %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i].Text != tc.want[i].Text || math.Abs(got[i].Weight-tc.want[i].Weight) > 1e-9 {
				t.Errorf("%q: fragment %d = %+v, want %+v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func TestChunkTokensSplitsAt75AndBacktracksToComma(t *testing.T) {
	tok := func(s string) []token {
		var ids []token
		for _, w := range strings.Fields(s) {
			switch w {
			case ",":
				ids = append(ids, token{id: 0, span: 1})
			case "EMB3": // a three-vector embedding
				v := []float32{1}
				ids = append(ids, token{vec: v, span: 3}, token{vec: v}, token{vec: v})
			default:
				ids = append(ids, token{id: 1, span: 1})
			}
		}
		return ids
	}
	// 70 words, a comma, 10 words: the chunk breaks after the comma.
	text := strings.Repeat("w ", 70) + ", " + strings.Repeat("w ", 10)
	chunks := chunkTokens([]Fragment{{text, 1}}, tok, 0, 75, 20)
	if len(chunks) != 2 || len(chunks[0].IDs) != 71 || len(chunks[1].IDs) != 10 {
		t.Fatalf("chunk sizes: %d chunks, %v", len(chunks), lens(chunks))
	}
	// Without a comma: a hard split at 75.
	chunks = chunkTokens([]Fragment{{strings.Repeat("w ", 80), 1}}, tok, 0, 75, 20)
	if !reflect.DeepEqual(lens(chunks), []int{75, 5}) {
		t.Fatalf("chunk sizes %v", lens(chunks))
	}
	// BREAK starts a new chunk; empty prompt gives one empty chunk.
	chunks = chunkTokens(ParseAttention("w w BREAK w"), tok, 0, 75, 20)
	if !reflect.DeepEqual(lens(chunks), []int{2, 1}) {
		t.Fatalf("BREAK chunk sizes %v", lens(chunks))
	}
	if chunks := chunkTokens(ParseAttention(""), tok, 0, 75, 20); len(chunks) != 1 || len(chunks[0].IDs) != 0 {
		t.Fatalf("empty prompt: %v", chunks)
	}
	// An embedding's vectors stay together: 73 words then a 3-vector
	// embedding start a new chunk; the vectors travel with the ids.
	chunks = chunkTokens([]Fragment{{strings.Repeat("w ", 73) + "EMB3 w", 1}}, tok, 0, 75, 20)
	if !reflect.DeepEqual(lens(chunks), []int{73, 4}) {
		t.Fatalf("embedding chunk sizes %v", lens(chunks))
	}
	if chunks[0].Vecs != nil || len(chunks[1].Vecs) != 4 || chunks[1].Vecs[2] == nil || chunks[1].Vecs[3] != nil {
		t.Fatalf("vectors not carried with their positions: %v / %v", chunks[0].Vecs, chunks[1].Vecs)
	}
}

func lens(cs []Chunk) []int {
	var out []int
	for _, c := range cs {
		out = append(out, len(c.IDs))
	}
	return out
}
