package vae

import (
	"math/rand/v2"
	"testing"

	"github.com/ldm-project/ldm/nn"
)

// BenchmarkDecode decodes one latent with random weights: the tiny golden
// config (8×8 → 64² image) and the SD 1.5 VAE (32×32 → 256² image; slow on
// the pure-Go backend, run it with -benchtime=1x), each with the 3×3
// convolutions as im2col and as Winograd F(2×2,3×3) (nn's default
// threshold). The first, compiling call is outside the timer; cpu-s/op is
// the process's CPU time, less sensitive than wall time on a loaded machine.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name   string
		cfg    Config
		latent int
	}{
		{"tiny_64px", tinyConfig(), 8},
		{"sd15_256px", sd15Config(), 32},
	} {
		for _, path := range []struct {
			name string
			min  int
		}{{"im2col", 0}, {"winograd", -1}} {
			b.Run(bc.name+"/"+path.name, func(b *testing.B) {
				if path.min >= 0 {
					prev := nn.SetConvWinogradMinChannels(path.min)
					defer nn.SetConvWinogradMinChannels(prev)
				}
				m := randomModel(b, bc.cfg, 1)
				shape := []int{1, bc.cfg.LatentChannels, bc.latent, bc.latent}
				z := randn(rand.New(rand.NewPCG(1, 2)), shape[1]*bc.latent*bc.latent)
				if _, _, err := m.DecodeRun(z, shape); err != nil {
					b.Fatal(err)
				}
				cpu0 := cpuTime()
				for b.Loop() {
					if _, _, err := m.DecodeRun(z, shape); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			})
		}
	}
}
