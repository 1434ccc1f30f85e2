package textenc

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// EncodeWithVectors is Encode with some input token embeddings replaced, as
// textual-inversion embeddings need: where vectors[i] (one entry per id,
// [batch·seqLen]) is not nil, position i's token embedding is that vector
// (HiddenSize values) instead of token_embedding[ids[i]]. The id at such a
// position still counts for pooling (use a non-EOS id). With no vector set
// it is exactly Encode.
func (m *CLIPTextModel) EncodeWithVectors(backend backends.Backend, ids []int32, vectors [][]float32, batch, seqLen, clipSkip int) (hidden, pooled []float32, err error) {
	if err := m.checkInput(ids, batch, seqLen); err != nil {
		return nil, nil, err
	}
	if len(vectors) != len(ids) {
		return nil, nil, fmt.Errorf("clip text model: %d vector slots for %d ids", len(vectors), len(ids))
	}
	if clipSkip < 0 || clipSkip > m.Config.NumHiddenLayers {
		return nil, nil, fmt.Errorf("clip text model: clip skip %d outside 0..%d", clipSkip, m.Config.NumHiddenLayers)
	}
	d := m.Config.HiddenSize
	vec := make([]float32, len(ids)*d)
	use := make([]float32, len(ids))
	set := false
	for i, v := range vectors {
		if v == nil {
			continue
		}
		if len(v) != d {
			return nil, nil, fmt.Errorf("clip text model: vector for position %d has %d values, the model's hidden size is %d", i, len(v), d)
		}
		copy(vec[i*d:], v)
		use[i] = 1
		set = true
	}
	if !set {
		return m.Encode(backend, ids, batch, seqLen, clipSkip)
	}
	out, err := m.run(backend, clipSkip, ids, batch, seqLen,
		tensors.FromFlatDataAndDimensions(vec, batch, seqLen, d),
		tensors.FromFlatDataAndDimensions(use, batch, seqLen))
	if err != nil {
		return nil, nil, err
	}
	return out[0], out[1], nil
}
