package compare

import (
	stdctx "context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/nn"
)

func TestAlignmentScoresPromptsAgainstChanceAndMajority(t *testing.T) {
	h := classify.Head{Field: "subcategory", Labels: []string{"a", "b", "c", "d", "e", "f"}}
	// Image i's scores favour class best[i], then the classes in index order.
	scores := func(best ...int) [][]float32 {
		var out [][]float32
		for _, b := range best {
			s := make([]float32, 6)
			for c := range s {
				s[c] = -float32(c)
			}
			s[b] = 10
			out = append(out, s)
		}
		return out
	}
	gen := scores(0, 1, 2, 5)
	// Prompt labels: images 0 and 1 match; image 2 (class 2) is wrong but
	// its label 3 is in its top-5; image 3's prompt label is unknown to the
	// head and is left out.
	labels := []int{0, 1, 3, -1}
	prompts := []int{7, 8, 9, 10}
	trainLabels := []int{5, 5, 5, 0, -1}
	real := scores(0, 1)
	a, err := alignment(h, gen, labels, prompts, trainLabels, real, []int{0, 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"images", float64(a.Images), 3},
		{"prompts", float64(a.Prompts), 3},
		{"top1", a.Top1, 2.0 / 3},
		{"top5", a.Top5, 1},
		// Image 0 (top-1 class 0) against labels {1,3}: 0 hits; image 1
		// (class 1) against {0,3}: 0; image 2 (class 2) against {0,1}: 0.
		{"prompt-independent top1", a.PromptIndependentTop1, 0},
		// Top-5 of image 0 = {0,1,2,3,4}: labels 1 and 3 hit (2); image 1 =
		// {1,0,2,3,4}: 0 and 3 (2); image 2 = {2,0,1,3,4}: 0 and 1 (2).
		{"prompt-independent top5", a.PromptIndependentTop5, 6.0 / 6},
		// Majority guess: class 5 (top-1), classes 5 and 0 (top-5).
		{"majority top1", a.MajorityTop1, 0},
		{"majority top5", a.MajorityTop5, 1.0 / 3},
		{"chance top1", a.UniformTop1, 1.0 / 6},
		{"chance top5", a.UniformTop5, 5.0 / 6},
		{"real top1", a.RealTop1, 0.5},
		{"real images", float64(a.RealImages), 2},
	} {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if _, err := alignment(h, gen, []int{-1, -1, -1, 0}, prompts, trainLabels, real, []int{0, 4}); err == nil {
		t.Error("alignment of one labelled image: want an error")
	}
}

func TestHeadLabelsMapsMetadataToClassIndices(t *testing.T) {
	h := classify.Head{Field: "category", Labels: []string{"Animals", "Food"}}
	got := headLabels(h, []map[string]string{{"category": "Food"}, {"category": "Flags"}, {}, {"category": "Animals"}})
	want := []int{1, -1, -1, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("labels %v, want %v", got, want)
		}
	}
}

// tinyClassifier is a randomly initialised classifier on 16² images with
// the tiny folder's two categories.
func tinyClassifier(t *testing.T) *classify.Model {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	cfg := classify.Config{Task: "custom", Size: 16, Channels: []int{8, 8}, Groups: 4,
		Heads: []classify.Head{{Field: "category", Labels: []string{"c0", "c1"}}}}
	keys, err := classify.ExpectedKeys(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := classify.New(b, cfg, nn.RandomSource(keys, 1))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRunWithAClassifierMeasuresInItsFeatureSpace checks that a classifier
// adds its FD/KID to every generated set and to the reference, moves
// precision/recall into its space and heads the report's table.
func TestRunWithAClassifierMeasuresInItsFeatureSpace(t *testing.T) {
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	o := QuickOptions()
	o.Data, o.Out = tinyFolder(t, 64), t.TempDir()
	o.Size, o.Batch, o.Steps, o.Samples, o.Models = 16, 8, 2, 16, []string{ModelVAE}
	o.Classifier, o.ClassifierName = tinyClassifier(t), "tiny"
	rep, err := Run(stdctx.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ClassifierFeatures != 8 || rep.PRSpace != "classifier" {
		t.Errorf("classifier features %d, precision/recall space %q", rep.ClassifierFeatures, rep.PRSpace)
	}
	if rep.Reference.FDClf == nil || rep.Reference.KIDClf == nil {
		t.Error("reference row lacks the classifier's FD/KID")
	}
	vae := rep.Rows[len(rep.Rows)-1]
	if vae.Model != ModelVAE || vae.FDClf == nil || vae.KIDClf == nil || *vae.FDClf < 0 || vae.FD == nil || len(vae.Alignment) != 0 {
		t.Errorf("vae row: %+v", vae)
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| n | FD (clf) | KID (clf) | FD (AE) |", "8-value pooled feature space of the emoji classifier tiny", "in the classifier feature space", "Prompt alignment does not apply"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

func TestReferenceImagesSpanTheTrainingSet(t *testing.T) {
	s := &imageSet{N: 10, Size: 1, X: make([]float32, 30)}
	for i := range s.X {
		s.X[i] = float32(i / 3)
	}
	r := &runner{train: s}
	got := r.referenceImages(4)
	want := []float32{0, 2, 5, 7} // images i·10/4
	for i, w := range want {
		if got[3*i] != w {
			t.Fatalf("reference images %v, want first channels %v", got, want)
		}
	}
}

func TestPromptIndexSpreadsPromptsOverTheTestSet(t *testing.T) {
	for _, c := range []struct {
		n, m int
		want []int
	}{
		{4, 10, []int{0, 2, 5, 7}},
		{3, 3, []int{0, 1, 2}},
		{5, 2, []int{0, 1, 0, 1, 0}},
	} {
		for i, w := range c.want {
			if got := promptIndex(i, c.n, c.m); got != w {
				t.Errorf("promptIndex(%d, %d, %d) = %d, want %d", i, c.n, c.m, got, w)
			}
		}
	}
}
