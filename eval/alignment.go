package eval

import (
	"errors"
	"fmt"
	"sort"
)

// TopK returns the indices of the k highest scores, best first (ties: lower
// index first). k is capped at len(scores).
func TopK(scores []float32, k int) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx[:min(k, len(idx))]
}

func inTopK(scores []float32, label, k int) bool {
	for _, c := range TopK(scores, k) {
		if c == label {
			return true
		}
	}
	return false
}

func checkLabels(scores [][]float32, labels []int) error {
	if len(scores) != len(labels) {
		return fmt.Errorf("eval: %d score rows for %d labels", len(scores), len(labels))
	}
	if len(labels) == 0 {
		return errors.New("eval: accuracy of nothing")
	}
	return nil
}

// TopKAccuracy is the fraction of rows whose label is among the k highest
// scores of that row: prompt alignment when the rows are a classifier's
// scores for generated images and the labels come from their prompts.
func TopKAccuracy(scores [][]float32, labels []int, k int) (float64, error) {
	if err := checkLabels(scores, labels); err != nil {
		return 0, err
	}
	hit := 0
	for i, s := range scores {
		if inTopK(s, labels[i], k) {
			hit++
		}
	}
	return float64(hit) / float64(len(labels)), nil
}

// PromptIndependentTopK is the top-k accuracy expected when image i is
// judged against the label of another prompt j ≠ i (the mean over all
// ordered pairs): the alignment a generator would score whose images keep
// their distribution but ignore the prompt. Alignment above it is due to
// the text.
func PromptIndependentTopK(scores [][]float32, labels []int, k int) (float64, error) {
	if err := checkLabels(scores, labels); err != nil {
		return 0, err
	}
	n := len(labels)
	if n < 2 {
		return 0, errors.New("eval: prompt-independent accuracy needs at least 2 rows")
	}
	count := map[int]int{}
	for _, l := range labels {
		count[l]++
	}
	hits := 0
	for i, s := range scores {
		for _, c := range TopK(s, k) {
			hits += count[c]
			if c == labels[i] {
				hits-- // pairs j ≠ i only
			}
		}
	}
	return float64(hits) / float64(n*(n-1)), nil
}

// MajorityTopK is the accuracy of the best prompt-blind constant guess: the
// k classes most frequent in reference (the training labels), scored on
// labels.
func MajorityTopK(reference, labels []int, k int) float64 {
	if len(labels) == 0 {
		return 0
	}
	count := map[int]int{}
	for _, l := range reference {
		count[l]++
	}
	classes := make([]int, 0, len(count))
	for c := range count {
		classes = append(classes, c)
	}
	sort.Slice(classes, func(a, b int) bool {
		if count[classes[a]] != count[classes[b]] {
			return count[classes[a]] > count[classes[b]]
		}
		return classes[a] < classes[b]
	})
	top := map[int]bool{}
	for _, c := range classes[:min(k, len(classes))] {
		top[c] = true
	}
	hit := 0
	for _, l := range labels {
		if top[l] {
			hit++
		}
	}
	return float64(hit) / float64(len(labels))
}

// UniformTopK is the top-k accuracy of a uniformly random guess among
// classes classes: k/classes (at most 1).
func UniformTopK(classes, k int) float64 {
	if classes <= 0 {
		return 0
	}
	return min(1, float64(k)/float64(classes))
}
