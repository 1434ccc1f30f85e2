package ldm

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/taesd"
	"github.com/ldm-project/ldm/vae"
)

// VAEDecodeTiled is VAEDecode in tiles of tile² latent pixels (vae.DecodeTiled).
func (ps *Parts) VAEDecodeTiled(b backends.Backend, size, tile int, r *rand.Rand) (Part, error) {
	m, err := ps.loadVAE(b)
	if err != nil {
		return Part{}, err
	}
	h := size / ps.Factor()
	shape := []int{1, ps.vae.LatentChannels, h, h}
	z := normal(r, ps.vae.LatentChannels*h*h)
	return Part{What: fmt.Sprintf("VAE decode in tiles of %d² latents + halo: 1 × %d×%d×%d → %d²", tile, ps.vae.LatentChannels, h, h, size), Run: func() error {
		_, _, err := m.DecodeTiled(z, shape, vae.TileOptions{Tile: tile})
		return err
	}}, nil
}

// TAESDDecode is a TAESD decode (AutoencoderTiny's default config with the
// model's latent channels, random weights) of one latent of size² pixels.
func (ps *Parts) TAESDDecode(b backends.Backend, size int, r *rand.Rand) (Part, error) {
	cfg := taesd.DefaultConfig()
	cfg.LatentChannels = ps.vae.LatentChannels
	m, err := taesd.New(cfg)
	if err != nil {
		return Part{}, err
	}
	m.Backend = b
	keys, err := m.ExpectedKeys()
	if err != nil {
		return Part{}, err
	}
	if err := m.LoadWeights(nn.RandomSource(keys, ps.seed+3)); err != nil {
		return Part{}, err
	}
	h := size / cfg.UpsampleFactor()
	shape := []int{1, cfg.LatentChannels, h, h}
	z := normal(r, cfg.LatentChannels*h*h)
	return Part{What: fmt.Sprintf("TAESD decode: 1 × %d×%d×%d → %d²", cfg.LatentChannels, h, h, size), Run: func() error {
		_, _, err := m.DecodeRun(z, shape)
		return err
	}}, nil
}
