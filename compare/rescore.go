package compare

import (
	stdctx "context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"

	"github.com/ldm-project/ldm/classify"
)

// Rescore measures the samples a finished run stored in its report folder
// dir again in clf's feature space: FD/KID (clf), precision/recall (then in
// clf's space) and the prompt alignment are replaced, every other number is
// kept. It reloads the run's data as results.json describes it, so the data
// folder must be where the run read it. command is recorded in the report.
func Rescore(ctx stdctx.Context, backend backends.Backend, dir string, clf *classify.Model, clfName, command string) (*Report, error) {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s/results.json: %w", dir, err)
	}
	o := rep.Options
	o.Out, o.Classifier, o.ClassifierName = dir, clf, clfName
	r := &runner{ctx: ctx, backend: backend, o: o, report: &rep}
	if err := r.loadData(); err != nil {
		return nil, err
	}
	if r.train.N != rep.TrainN || r.test.N != rep.TestN {
		return nil, fmt.Errorf("compare: %s now has %d training and %d test images, the run had %d and %d", o.Data, r.train.N, r.test.N, rep.TrainN, rep.TestN)
	}
	if r.testPred, err = r.classifyImages(r.test.X, r.test.N); err != nil {
		return nil, err
	}
	if n := rep.Reference.Samples; n > 0 {
		if _, err := r.classifierMetrics(&rep.Reference, r.referenceImages(n), n); err != nil {
			return nil, err
		}
	}
	for i := range rep.Rows {
		row := &rep.Rows[i]
		if row.Samples == 0 {
			continue
		}
		x, err := readSamples(filepath.Join(dir, samplesFile(row.Model)), row.Samples, o.Size)
		if err != nil {
			return nil, fmt.Errorf("compare: %s: %w", row.Model, err)
		}
		pred, err := r.classifierMetrics(row, x, row.Samples)
		if err != nil {
			return nil, err
		}
		if row.Model == ModelLDM {
			testIdx := make([]int, row.Samples)
			for k := range testIdx {
				testIdx[k] = promptIndex(k, row.Samples, r.test.N)
			}
			if row.Alignment, _, err = r.promptAlignment(pred, testIdx); err != nil {
				return nil, err
			}
		}
	}
	rep.Options.ClassifierName = clfName
	rep.ClassifierFeatures, rep.PRSpace, rep.Rescored = clf.Config.FeatureDim(), "classifier", command
	rep.Conclusion = conclusions(&rep)
	return &rep, r.write()
}

// readSamples reads n images of side size back from a grid written by
// samplesDone.
func readSamples(path string, n, size int) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, err
	}
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok {
		return nil, fmt.Errorf("%s: cannot crop a %T", path, img)
	}
	rows := (n + samplesCols - 1) / samplesCols
	if b := img.Bounds(); b.Dx() != samplesCols*size || b.Dy() != rows*size {
		return nil, fmt.Errorf("%s is %d×%d, want %d samples of %d² in %d columns", path, b.Dx(), b.Dy(), n, size, samplesCols)
	}
	out := make([]float32, 0, n*3*size*size)
	for i := range n {
		at := image.Pt((i%samplesCols)*size, (i/samplesCols)*size).Add(img.Bounds().Min)
		out = append(out, toNCHW(sub.SubImage(image.Rectangle{Min: at, Max: at.Add(image.Pt(size, size))}), size)...)
	}
	return out, nil
}
