package textenc

import (
	"slices"
	"testing"
)

// TestEncodeWithVectorsReplacesTokenEmbeddings checks the textual-inversion
// hook: a position given the token-embedding row of id B encodes exactly as
// the id B itself, and no vector at all is plain Encode.
func TestEncodeWithVectorsReplacesTokenEmbeddings(t *testing.T) {
	cfg := tinyCLIPConfig()
	m := newRandomCLIP(t, cfg)
	b := goBackend(t)
	expected, err := m.ExpectedKeys()
	if err != nil {
		t.Fatal(err)
	}
	table, _, err := randomSource{expected, 7}.Float32("text_model.embeddings.token_embedding.weight")
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.HiddenSize
	row := func(id int) []float32 { return table[id*d : (id+1)*d] }

	const batch, seqLen = 2, 8
	ids := []int32{98, 5, 6, 7, 99, 99, 99, 99, 98, 10, 11, 99, 99, 99, 99, 99}
	want := slices.Clone(ids)
	want[2], want[9], want[10] = 42, 43, 44
	vectors := make([][]float32, len(ids))
	vectors[2], vectors[9], vectors[10] = row(42), row(43), row(44)
	ids[2], ids[9], ids[10] = 0, 0, 0 // placeholders, as AUTOMATIC1111 uses

	for _, skip := range []int{0, 1} {
		got, gotPool, err := m.EncodeWithVectors(b, ids, vectors, batch, seqLen, skip)
		if err != nil {
			t.Fatal(err)
		}
		ref, refPool, err := m.Encode(b, want, batch, seqLen, skip)
		if err != nil {
			t.Fatal(err)
		}
		if diff := maxDiffRows(got, ref, batch, seqLen, d, 0, seqLen); diff > 1e-6 {
			t.Errorf("clip skip %d: hidden states differ from the substituted ids by %g", skip, diff)
		}
		if diff := maxDiffRows(gotPool, refPool, batch, 1, d, 0, 1); diff > 1e-6 {
			t.Errorf("clip skip %d: pooled output differs by %g", skip, diff)
		}
		// The vectors really matter: the placeholders alone encode differently.
		plain, _, err := m.Encode(b, ids, batch, seqLen, skip)
		if err != nil {
			t.Fatal(err)
		}
		if diff := maxDiffRows(plain, ref, batch, seqLen, d, 2, 3); diff < 1e-3 {
			t.Errorf("clip skip %d: replacing a token's embedding changed its output by only %g", skip, diff)
		}
	}

	none, _, err := m.EncodeWithVectors(b, want, make([][]float32, len(want)), batch, seqLen, 0)
	if err != nil {
		t.Fatal(err)
	}
	ref, _, _ := m.Encode(b, want, batch, seqLen, 0)
	if !slices.Equal(none, ref) {
		t.Error("no vectors: EncodeWithVectors must equal Encode exactly")
	}
	vectors[2] = make([]float32, d+1)
	if _, _, err := m.EncodeWithVectors(b, ids, vectors, batch, seqLen, 0); err == nil {
		t.Error("a vector of the wrong width must be an error")
	}
}
