package train_test

import (
	stdctx "context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

// BenchmarkVAELossTerms is the cost of one optimiser step of the default
// model's VAE (16/32/32, batch 8 of 32² crops) with L1+KL alone, with the
// perceptual term (a classifier of the embedded emoji one's shape, random
// weights: the cost does not depend on them) and with the adversarial term
// (default discriminator, which also takes its own step). The three run in
// interleaved rounds so that a shared, loaded CPU slows them alike; the
// reported ms/step are the medians.
func BenchmarkVAELossTerms(b *testing.B) {
	backend, err := nn.NewBackend("go")
	if err != nil {
		b.Fatal(err)
	}
	ccfg := classify.Config{Task: "emoji", Size: 64, Channels: []int{32, 64, 128, 128}, Groups: 8,
		Heads: []classify.Head{{Field: "f", Labels: []string{"a", "b"}}}}
	exp, err := classify.ExpectedKeys(backend, ccfg)
	if err != nil {
		b.Fatal(err)
	}
	clf, err := classify.New(backend, ccfg, nn.RandomSource(exp, 1))
	if err != nil {
		b.Fatal(err)
	}
	nets := func(name string) (*train.FeatureNet, error) { return clf.PerceptualNet(name) }
	dir := b.TempDir()
	if err := data.GenerateShapes(stdctx.Background(), dir, data.ShapesOptions{N: 16, Size: 64, Seed: 1}, nil); err != nil {
		b.Fatal(err)
	}
	vcfg := train.SmallVAEConfig()
	vcfg.BlockOutChannels, vcfg.NormNumGroups = []int{16, 32, 32}, 8
	base := train.VAELossOpts{L1: 1, KL: 1e-6}
	perc, adv := base, base
	perc.Perceptual, perc.PerceptualNet = 0.25, "emoji"
	adv.Adversarial, adv.Disc = 0.1, train.DefaultDiscConfig()
	names := []string{"L1+KL", "+perceptual", "+adversarial"}
	var trainers []*train.VAETrainer
	for _, l := range []train.VAELossOpts{base, perc, adv} {
		c := train.DefaultConfig()
		c.Steps = 1 << 20
		v, err := train.NewVAETrainer(backend, train.VAERun{Data: dir, Size: 64, Crop: 32, Batch: 8, Seed: 1, VAE: vcfg, Loss: l, Train: c}, "", nets)
		if err != nil {
			b.Fatal(err)
		}
		trainers = append(trainers, v)
	}
	step := func(v *train.VAETrainer) time.Duration {
		micro, err := v.Batch(v.Step)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := v.TrainStep(micro); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for _, v := range trainers {
		step(v) // compile
	}
	times := make([][]time.Duration, len(trainers))
	b.ResetTimer()
	for range b.N {
		for i, v := range trainers {
			times[i] = append(times[i], step(v))
		}
	}
	for i, ts := range times {
		b.ReportMetric(float64(median(ts).Microseconds())/1000, fmt.Sprintf("ms/step_%s", names[i]))
	}
}

func median(ts []time.Duration) time.Duration {
	s := slices.Clone(ts)
	slices.Sort(s)
	return s[len(s)/2]
}
