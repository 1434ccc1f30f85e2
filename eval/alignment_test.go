package eval

import (
	"math"
	"slices"
	"testing"
)

func TestTopKOrdersBestFirstAndBreaksTiesByIndex(t *testing.T) {
	cases := []struct {
		scores []float32
		k      int
		want   []int
	}{
		{[]float32{0.1, 0.9, 0.5}, 2, []int{1, 2}},
		{[]float32{1, 3, 3, 0}, 3, []int{1, 2, 0}},
		{[]float32{2, 1}, 5, []int{0, 1}},
	}
	for _, c := range cases {
		if got := TopK(c.scores, c.k); !slices.Equal(got, c.want) {
			t.Errorf("TopK(%v, %d) = %v, want %v", c.scores, c.k, got, c.want)
		}
	}
}

func TestTopKAccuracyCountsLabelsAmongTheBestK(t *testing.T) {
	scores := [][]float32{{0.9, 0.05, 0.05}, {0.2, 0.5, 0.3}, {0.6, 0.3, 0.1}, {0.1, 0.1, 0.8}}
	labels := []int{0, 2, 1, 2}
	for k, want := range map[int]float64{1: 0.5, 2: 1, 3: 1} {
		got, err := TopKAccuracy(scores, labels, k)
		if err != nil || got != want {
			t.Errorf("k=%d: got %v (%v), want %v", k, got, err, want)
		}
	}
	if _, err := TopKAccuracy(scores, labels[:2], 1); err == nil {
		t.Error("mismatched lengths: no error")
	}
}

// The prompt-independent level is the mean over ordered pairs i ≠ j of
// [label j in top-k of row i]: checked against that definition directly.
func TestPromptIndependentTopKIsTheMeanOverOtherPromptsLabels(t *testing.T) {
	scores := [][]float32{{0.9, 0.05, 0.05}, {0.2, 0.5, 0.3}, {0.6, 0.3, 0.1}, {0.1, 0.1, 0.8}, {0.3, 0.4, 0.3}}
	labels := []int{0, 2, 1, 2, 0}
	for _, k := range []int{1, 2} {
		hits, pairs := 0, 0
		for i := range scores {
			for j := range labels {
				if i != j {
					pairs++
					if slices.Contains(TopK(scores[i], k), labels[j]) {
						hits++
					}
				}
			}
		}
		got, err := PromptIndependentTopK(scores, labels, k)
		if want := float64(hits) / float64(pairs); err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("k=%d: got %v (%v), want %v", k, got, err, want)
		}
	}
}

func TestMajorityAndUniformBaselines(t *testing.T) {
	train := []int{3, 3, 3, 1, 1, 2}
	labels := []int{3, 1, 2, 0}
	if got := MajorityTopK(train, labels, 1); got != 0.25 {
		t.Errorf("majority top-1 = %v, want 0.25", got)
	}
	if got := MajorityTopK(train, labels, 2); got != 0.5 {
		t.Errorf("majority top-2 = %v, want 0.5", got)
	}
	if got := UniformTopK(10, 5); got != 0.5 {
		t.Errorf("uniform 5 of 10 = %v", got)
	}
	if got := UniformTopK(3, 5); got != 1 {
		t.Errorf("uniform 5 of 3 = %v, want 1", got)
	}
}
