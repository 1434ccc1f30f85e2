package vae

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkDecode decodes one latent with random weights: the tiny golden
// config (8×8 → 64² image) and the SD 1.5 VAE (32×32 → 256² image; slow on
// the pure-Go backend, run it with -benchtime=1x). The first, compiling
// call is outside the timer.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name   string
		cfg    Config
		latent int
	}{
		{"tiny_64px", tinyConfig(), 8},
		{"sd15_256px", sd15Config(), 32},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := randomModel(b, bc.cfg, 1)
			shape := []int{1, bc.cfg.LatentChannels, bc.latent, bc.latent}
			z := randn(rand.New(rand.NewPCG(1, 2)), shape[1]*bc.latent*bc.latent)
			if _, _, err := m.DecodeRun(z, shape); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, _, err := m.DecodeRun(z, shape); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
