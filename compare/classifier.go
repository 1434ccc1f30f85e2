package compare

import (
	"fmt"
	"slices"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/eval"
	"github.com/ldm-project/ldm/train"
)

// Alignment is prompt alignment under one classifier head: how often the
// classifier puts the label of a generated image's prompt first (top-1) or
// among its first five (top-5), beside the levels that need no text.
type Alignment struct {
	Field   string `json:"field"`
	Classes int    `json:"classes"`
	// Images is the number of generated images scored (those whose prompt
	// has a label the head knows), Prompts the distinct prompts among them.
	Images  int     `json:"images"`
	Prompts int     `json:"prompts"`
	Top1    float64 `json:"top1"`
	Top5    float64 `json:"top5"`
	// PromptIndependent* score each image against the labels of the other
	// prompts: what images of the same distribution that ignore the text
	// would get.
	PromptIndependentTop1 float64 `json:"prompt_independent_top1"`
	PromptIndependentTop5 float64 `json:"prompt_independent_top5"`
	// Majority* always guess the classes most frequent in the training
	// images; Uniform* guess at random (k / classes).
	MajorityTop1 float64 `json:"majority_top1"`
	MajorityTop5 float64 `json:"majority_top5"`
	UniformTop1  float64 `json:"uniform_top1"`
	UniformTop5  float64 `json:"uniform_top5"`
	// Real* is the classifier on the real test images at this run's
	// resolution (RealImages of them): the ceiling of the alignment.
	RealImages int     `json:"real_images"`
	RealTop1   float64 `json:"real_top1"`
	RealTop5   float64 `json:"real_top5"`
}

// classifierInputs converts n NCHW images of side size to the classifier's
// input: quantised to 8 bits (as a saved PNG would be) and resized with
// Lanczos when the sides differ, so that real and generated images take the
// same path.
func classifierInputs(x []float32, n, size int, clf *classify.Model) []float32 {
	s := clf.Config.Size
	out := make([]float32, 0, n*s*s*3)
	for _, img := range train.NCHWToImages(x, n, size, size) {
		out = append(out, classify.ImageNHWC(img, s)...)
	}
	return out
}

// classifyImages runs the run's classifier on n NCHW images at o.Size.
func (r *runner) classifyImages(x []float32, n int) (*classify.Prediction, error) {
	clf := r.o.Classifier
	return clf.Run(classifierInputs(x, n, r.o.Size, clf), n)
}

// headLabels maps each image's metadata field to the head's class index
// (-1 when the head does not know the value).
func headLabels(h classify.Head, meta []map[string]string) []int {
	out := make([]int, len(meta))
	for i, m := range meta {
		out[i] = slices.Index(h.Labels, m[h.Field])
	}
	return out
}

// known keeps the rows whose label is not -1.
func known(scores [][]float32, labels []int) ([][]float32, []int) {
	var s [][]float32
	var l []int
	for i, v := range labels {
		if v >= 0 {
			s, l = append(s, scores[i]), append(l, v)
		}
	}
	return s, l
}

// alignment scores generated images (their logits under head h) against
// the labels of their prompts; trainLabels feed the majority guess and
// (realScores, realLabels) the ceiling. Images whose prompt label the head
// does not know are left out and not counted.
func alignment(h classify.Head, genScores [][]float32, genLabels, promptIDs, trainLabels []int, realScores [][]float32, realLabels []int) (Alignment, error) {
	a := Alignment{Field: h.Field, Classes: len(h.Labels),
		UniformTop1: eval.UniformTopK(len(h.Labels), 1), UniformTop5: eval.UniformTopK(len(h.Labels), 5)}
	distinct := map[int]bool{}
	for i, l := range genLabels {
		if l >= 0 {
			distinct[promptIDs[i]] = true
		}
	}
	s, l := known(genScores, genLabels)
	a.Images, a.Prompts = len(l), len(distinct)
	if len(l) < 2 {
		return a, fmt.Errorf("alignment of %s: %d generated images with a known label, want at least 2", h.Field, len(l))
	}
	var err error
	if a.Top1, err = eval.TopKAccuracy(s, l, 1); err != nil {
		return a, err
	}
	a.Top5, _ = eval.TopKAccuracy(s, l, 5)
	if a.PromptIndependentTop1, err = eval.PromptIndependentTopK(s, l, 1); err != nil {
		return a, err
	}
	a.PromptIndependentTop5, _ = eval.PromptIndependentTopK(s, l, 5)
	var tl []int
	for _, v := range trainLabels {
		if v >= 0 {
			tl = append(tl, v)
		}
	}
	a.MajorityTop1, a.MajorityTop5 = eval.MajorityTopK(tl, l, 1), eval.MajorityTopK(tl, l, 5)
	rs, rl := known(realScores, realLabels)
	if a.RealImages = len(rl); a.RealImages > 0 {
		a.RealTop1, _ = eval.TopKAccuracy(rs, rl, 1)
		a.RealTop5, _ = eval.TopKAccuracy(rs, rl, 5)
	}
	return a, nil
}

// promptAlignment measures every head of the run's classifier on generated
// images whose prompt i came from test image testIdx[i]. A head whose field
// the test images lack (a classifier of another dataset) is left out and
// named in the returned note.
func (r *runner) promptAlignment(gen *classify.Prediction, testIdx []int) ([]Alignment, string, error) {
	meta := make([]map[string]string, len(testIdx))
	for i, k := range testIdx {
		meta[i] = r.test.Meta[k]
	}
	var out []Alignment
	var skipped []string
	for h, hd := range r.o.Classifier.Config.Heads {
		labels := headLabels(hd, meta)
		if !slices.ContainsFunc(labels, func(l int) bool { return l >= 0 }) {
			skipped = append(skipped, hd.Field)
			continue
		}
		a, err := alignment(hd, gen.Logits[h], labels, testIdx, headLabels(hd, r.train.Meta),
			r.testPred.Logits[h], headLabels(hd, r.test.Meta))
		if err != nil {
			return nil, "", err
		}
		out = append(out, a)
	}
	note := ""
	if len(skipped) > 0 {
		note = fmt.Sprintf("no prompt alignment by %v: the test images have no label the classifier knows in that field", skipped)
	}
	return out, note, nil
}
