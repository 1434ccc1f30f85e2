package ldm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/models"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/scheduler"
	"github.com/ldm-project/ldm/train"
)

// TestEverySamplerAndScheduleRuns runs every sampler name the scheduler
// accepts with every schedule name it lists (2 steps, tiny sizes) on the
// embedded model, on the golden tiny SD1.5 and on a model just written by a
// short `train ldm` run. A pair either runs or is refused with a field
// error (a 400 naming sampler, schedule or steps), never with another error.
// Every sampler and every schedule goes through the pipeline at least once;
// the remaining pairs run their scheduler with the model's config.
func TestEverySamplerAndScheduleRuns(t *testing.T) {
	t.Setenv("LDM_CACHE", t.TempDir())
	embedded, err := models.Path()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name string
		dir  func(t *testing.T) string
		size int
	}{
		{"embedded", func(*testing.T) string { return embedded }, 16},
		{"tiny_sd15", func(t *testing.T) string { return filepath.Join(golden.Load(t).Dir, "tiny_sd15") }, 32},
		{"trained", func(t *testing.T) string { return trainTinyLDM(t, filepath.Join(embedded, "vae")) }, 16},
	} {
		t.Run(m.name, func(t *testing.T) {
			p, err := ldm.Load(m.dir(t), ldm.LoadOptions{Backend: "go"})
			if err != nil {
				t.Fatal(err)
			}
			ran := map[string]bool{}
			runs, stepped, refused := 0, 0, 0
			for _, name := range scheduler.AcceptedSamplerNames() {
				for _, sched := range append([]string{""}, scheduler.ScheduleNames()...) {
					req := ldm.Request{Prompt: "a red square", Sampler: name, Schedule: sched, Steps: 2, Width: m.size, Height: m.size, Seed: 3, GuidanceScale: 1}
					ch, err := scheduler.ParseSamplerSchedule(name, sched)
					if err != nil {
						// Refused by the names alone: validation must say so.
						_, verr := p.Generate(context.Background(), req, ldm.Options{})
						if field, ok := ldm.IsFieldError(verr); !ok || (field != "sampler" && field != "schedule") {
							t.Errorf("%q + %q: the scheduler refuses it (%v) but Generate answered %v, want a sampler/schedule field error", name, sched, err, verr)
						}
						refused++
						continue
					}
					// Each sampler and each schedule runs through the
					// pipeline at least once; every other pair runs its
					// scheduler with the model's config on a stand-in model.
					alg, kind := ch.Class+ch.Sampler, ch.Schedule
					if ch.Class != "" {
						kind = fmt.Sprint(ch.Karras, ch.Exponential)
					}
					if ran[alg] && ran[kind] {
						if err := stepScheduler(ch, p.SchedulerConfig, 2); err != nil {
							t.Errorf("%q + %q: %v", name, sched, err)
						}
						stepped++
						continue
					}
					ran[alg], ran[kind] = true, true
					res, err := p.Generate(context.Background(), req, ldm.Options{})
					if field, ok := ldm.IsFieldError(err); ok && field == "steps" {
						// Too few steps for this sampler (PNDM's PRK warm-up
						// needs 4): refused up front; it must run with 4.
						req.Steps = 4
						res, err = p.Generate(context.Background(), req, ldm.Options{})
					}
					if err != nil {
						t.Errorf("%q + %q: %v", name, sched, err)
						continue
					}
					runs++
					if b := res[0].Image.Bounds(); b.Dx() != m.size || b.Dy() != m.size {
						t.Errorf("%q + %q: image %v", name, sched, b)
					}
				}
			}
			t.Logf("%d pipeline runs, %d scheduler-only runs, %d name pairs refused at validation", runs, stepped, refused)
		})
	}
}

// stepScheduler runs a sampler choice with a model's scheduler config on
// a stand-in model (ε = x_in/2) and checks that the sample stays finite.
func stepScheduler(ch scheduler.Choice, config []byte, steps int) error {
	s, err := scheduler.NewChoice(ch, config)
	if err != nil {
		return err
	}
	if err := s.SetTimesteps(steps); errors.Is(err, scheduler.ErrSteps) {
		err = s.SetTimesteps(4)
	}
	if err != nil {
		return err
	}
	x := s.InitLatents([]float32{0.5, -1, 1.5, 0.25})
	noise := scheduler.NoiseFunc(func(dst []float32) {
		for i := range dst {
			dst[i] = float32(i%3) - 1
		}
	})
	for i := 0; i < s.Calls(); i++ { // Calls grows as DPM adaptive runs
		in := s.ScaleModelInput(x, i)
		eps := make([]float32, len(in))
		for k, v := range in {
			eps[k] = v / 2
		}
		if x, err = s.Step(eps, i, x, noise); err != nil {
			return err
		}
	}
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("sample %v is not finite", x)
		}
	}
	return nil
}

// trainTinyLDM trains a tiny LDM for two steps on four 16² images with the
// given frozen VAE and returns the exported model folder.
func trainTinyLDM(t *testing.T, vaeDir string) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	meta, err := os.Create(filepath.Join(data, "metadata.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []color.RGBA{{255, 0, 0, 255}, {0, 200, 0, 255}, {0, 0, 255, 255}, {255, 220, 0, 255}} {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for y := 4; y < 12; y++ {
			for x := 4; x < 12; x++ {
				img.Set(x, y, c)
			}
		}
		name := fmt.Sprintf("%d.png", i)
		f, err := os.Create(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		b, _ := json.Marshal(map[string]string{"file_name": name, "text": fmt.Sprintf("a square number %d", i), "split": "train"})
		fmt.Fprintf(meta, "%s\n", b)
	}
	meta.Close()

	run := train.LDMRun{Data: data, VAE: vaeDir, Size: 16, Batch: 2, Seed: 1, TokenizerMerges: 20, MaxLength: 8,
		Prediction: "epsilon", SchedulerClass: scheduler.ClassEuler, Train: train.DefaultConfig()}
	run.Train.Steps, run.Train.WarmupSteps = 2, 1
	run.UNet = train.SmallUNetConfig(16)
	run.UNet.BlockOutChannels = []int{16, 16, 16}
	run.Text = train.SmallTextConfig(0, 16, 1, run.MaxLength)
	if run.Scheduler, err = train.SDSchedulerConfig(run.SchedulerClass, run.Prediction); err != nil {
		t.Fatal(err)
	}
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	tr, err := train.NewLDMTrainer(b, run, out, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Loop(context.Background(), run.Train.Steps, tr.Batch, train.LoopOptions{}); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model")
	if err := tr.Export(model); err != nil {
		t.Fatal(err)
	}
	return model
}
