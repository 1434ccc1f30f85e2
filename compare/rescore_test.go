package compare

import (
	stdctx "context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/nn"
)

// TestRescoreReproducesTheRunsClassifierMetrics re-measures a finished run
// with the classifier it ran with: the stored 8-bit samples must give the
// same numbers the run measured, and the report must say it was rescored.
func TestRescoreReproducesTheRunsClassifierMetrics(t *testing.T) {
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	o := QuickOptions()
	o.Data, o.Out = tinyFolder(t, 64), t.TempDir()
	o.Size, o.Batch, o.Steps, o.Samples, o.Models = 16, 8, 2, 12, []string{ModelVAE}
	clf := tinyClassifier(t)
	o.Classifier, o.ClassifierName = clf, "tiny"
	ran, err := Run(stdctx.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	want := ran.Rows[len(ran.Rows)-1]
	rep, err := Rescore(stdctx.Background(), b, o.Out, clf, "tiny again", "ldm compare --rescore x")
	if err != nil {
		t.Fatal(err)
	}
	got := rep.Rows[len(rep.Rows)-1]
	for _, c := range []struct {
		name      string
		got, want *float64
	}{
		{"FD (clf)", got.FDClf, want.FDClf}, {"KID (clf)", got.KIDClf, want.KIDClf},
		{"precision", got.Precision, want.Precision}, {"recall", got.Recall, want.Recall},
		{"reference FD (clf)", rep.Reference.FDClf, ran.Reference.FDClf},
		{"FD (AE), kept", got.FD, want.FD},
	} {
		if c.got == nil || c.want == nil || math.Abs(*c.got-*c.want) > 1e-9*max(1, math.Abs(*c.want)) {
			t.Errorf("%s: rescored %v, run %v", c.name, deref(c.got), deref(c.want))
		}
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"measured afterwards from the stored samples (`samples/`) by `ldm compare --rescore x`", "classifier tiny again"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("report.md lacks %q", s)
		}
	}
	if _, err := readSamples(filepath.Join(o.Out, samplesFile(ModelVAE)), 17, 16); err == nil {
		t.Error("reading 17 samples from a grid of 12: want an error")
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestResumeKeepsFinishedRowsAndRunsTheMissingOnes resumes a run with one
// more model: the finished row is kept as it was, the new one is measured,
// and other budgets are refused.
func TestResumeKeepsFinishedRowsAndRunsTheMissingOnes(t *testing.T) {
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	o := QuickOptions()
	o.Data, o.Out = tinyFolder(t, 64), t.TempDir()
	o.Size, o.Batch, o.Steps, o.Samples, o.Models, o.Command = 16, 8, 2, 8, []string{ModelVAE}, "first"
	first, err := Run(stdctx.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Models, o.Resume, o.Command = []string{ModelVAE, ModelBVAE}, true, "second"
	rep, err := Run(stdctx.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || rep.Rows[1].TrainSeconds != first.Rows[1].TrainSeconds || rep.Rows[2].Model != ModelBVAE || rep.Rows[2].FD == nil {
		t.Errorf("resumed rows: %+v", rep.Rows)
	}
	if rep.Options.Command != "first" || len(rep.Resumed) != 1 || rep.Resumed[0] != "second" || rep.Seconds <= first.Seconds {
		t.Errorf("resumed report: command %q, resumed %v, seconds %v after %v", rep.Options.Command, rep.Resumed, rep.Seconds, first.Seconds)
	}
	o.Steps = 3
	if _, err := Run(stdctx.Background(), b, o); err == nil || !strings.Contains(err.Error(), "same flags") {
		t.Errorf("resuming with other steps: err %v", err)
	}
}
