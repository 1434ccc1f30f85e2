package ldm

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/textenc"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/vae"
	"github.com/ldm-project/ldm/weights"
)

// Parts are a model's three networks, each built only when it is measured
// (ldm bench), so that one at a time is in memory: a preset's architecture
// with random weights ("sd15", "sd21"), or a model folder or file.
type Parts struct {
	Name   string
	Preset string // "sd15" or "sd21"; "" for a model's own weights
	unet   unet.Config
	text   textenc.CLIPConfig
	vae    vae.Config
	src    map[string]nn.Source // nil: random weights
	seed   uint64
	close  func()
}

// Part is one network ready to run on fixed random inputs.
type Part struct {
	What   string       // e.g. "one CFG step: batch 2 × 4×32×32 latents, 77 tokens"
	GFLOPs float64      // per run, counted analytically (the U-Net only)
	Run    func() error // one forward pass
}

// OpenParts reads the configs of a preset (random weights drawn from seed)
// or of the model at path (its weights kept in weightsDType, see
// weights.OpenOptions). Close releases a model's files.
func OpenParts(model string, seed uint64, weightsDType string) (*Parts, error) {
	if cfgs, err := weights.Preset(model); err == nil {
		ps := &Parts{seed: seed}
		if err := ps.parse(cfgs[weights.UNet], cfgs[weights.TextEncoder], cfgs[weights.VAE]); err != nil {
			return nil, err
		}
		ps.Preset, ps.Name = "sd15", "SD1.5 architecture, random weights"
		if ps.text.HiddenSize != 768 {
			ps.Preset, ps.Name = "sd21", "SD2 architecture, random weights"
		}
		return ps, nil
	}
	m, err := weights.OpenModel(model, weights.OpenOptions{WeightsDType: weightsDType})
	if err != nil {
		return nil, err
	}
	ps := &Parts{Name: model, src: map[string]nn.Source{}, seed: seed, close: func() { m.Close() }}
	for _, c := range []string{weights.UNet, weights.TextEncoder, weights.VAE} {
		if m.Components[c] == nil {
			m.Close()
			return nil, fmt.Errorf("%s has no %s", model, c)
		}
		ps.src[c] = m.Components[c].Source
	}
	if err := ps.parse(m.Components[weights.UNet].Config, m.Components[weights.TextEncoder].Config, m.Components[weights.VAE].Config); err != nil {
		m.Close()
		return nil, err
	}
	return ps, nil
}

func (ps *Parts) parse(u, t, v []byte) error {
	var err error
	if ps.unet, err = unet.ParseConfig(u); err != nil {
		return fmt.Errorf("unet config: %w", err)
	}
	if ps.text, err = textenc.ParseCLIPConfig(t); err != nil {
		return fmt.Errorf("text encoder config: %w", err)
	}
	if ps.vae, err = vae.ParseConfig(v); err != nil {
		return fmt.Errorf("vae config: %w", err)
	}
	return nil
}

// Close releases the model's files (nothing for a preset).
func (ps *Parts) Close() {
	if ps.close != nil {
		ps.close()
	}
}

// Factor is the VAE's downsampling factor.
func (ps *Parts) Factor() int { return ps.vae.DownsampleFactor() }

// weightsOrRandom returns the model's weights, or random ones of the
// expected shapes for a preset.
func (ps *Parts) weightsOrRandom(component string, expected func() (map[string][]int, error), seed uint64) (nn.Source, error) {
	if src := ps.src[component]; src != nil {
		return src, nil
	}
	keys, err := expected()
	if err != nil {
		return nil, err
	}
	return nn.RandomSource(keys, seed), nil
}

// UNetStep is one classifier-free-guidance U-Net step: a batch of 2
// latents of an image of size² pixels and a full context of tokens.
func (ps *Parts) UNetStep(b backends.Backend, size int, r *rand.Rand) (Part, error) {
	m, err := unet.New(ps.unet)
	if err != nil {
		return Part{}, err
	}
	if src := ps.src[weights.UNet]; src != nil {
		err = m.LoadWeights(src)
	} else {
		err = m.InitWeights(ps.seed)
	}
	if err == nil {
		err = nn.MaterializeWeights(b, m.Ctx) // as Load does
	}
	if err != nil {
		return Part{}, err
	}
	f := ps.Factor()
	if size%f != 0 || (size/f)%m.Config.DownFactor() != 0 {
		return Part{}, fmt.Errorf("size %d: the latents (size/%d) must be a multiple of %d", size, f, m.Config.DownFactor())
	}
	h := size / f
	cross := ps.text.HiddenSize
	if len(ps.unet.CrossAttentionDim) > 0 {
		cross = ps.unet.CrossAttentionDim[0]
	}
	tokens := ps.text.MaxPositionEmbeddings
	shape, ehsShape := []int{2, ps.unet.InChannels, h, h}, []int{2, tokens, cross}
	sample, ehs := normal(r, 2*ps.unet.InChannels*h*h), normal(r, 2*tokens*cross)
	flops, err := unet.FLOPs(ps.unet, 2, h, h, tokens)
	if err != nil {
		return Part{}, err
	}
	return Part{What: fmt.Sprintf("one CFG step: batch 2 × %d×%d×%d latents, %d tokens", ps.unet.InChannels, h, h, tokens),
		GFLOPs: float64(flops) / 1e9, Run: func() error {
			_, err := m.Run(b, sample, shape, []float32{981, 981}, ehs, ehsShape)
			return err
		}}, nil
}

// TextEncode is the text encoder on 2 full windows of tokens.
func (ps *Parts) TextEncode(b backends.Backend) (Part, error) {
	m, err := textenc.NewCLIPTextModel(ps.text)
	if err != nil {
		return Part{}, err
	}
	src, err := ps.weightsOrRandom(weights.TextEncoder, m.ExpectedKeys, ps.seed+1)
	if err != nil {
		return Part{}, err
	}
	if err := m.LoadWeights(src); err != nil {
		return Part{}, err
	}
	n := ps.text.MaxPositionEmbeddings
	ids := make([]int32, 2*n)
	for i := range ids {
		ids[i] = int32(i % ps.text.VocabSize)
	}
	return Part{What: fmt.Sprintf("text encoder: 2 × %d tokens", n), Run: func() error {
		_, _, err := m.Encode(b, ids, 2, n, 0)
		return err
	}}, nil
}

// VAEDecode is the VAE decode of one latent of an image of size² pixels.
func (ps *Parts) VAEDecode(b backends.Backend, size int, r *rand.Rand) (Part, error) {
	m, err := ps.loadVAE(b)
	if err != nil {
		return Part{}, err
	}
	h := size / ps.Factor()
	shape := []int{1, ps.vae.LatentChannels, h, h}
	z := normal(r, ps.vae.LatentChannels*h*h)
	return Part{What: fmt.Sprintf("VAE decode: 1 × %d×%d×%d → %d²", ps.vae.LatentChannels, h, h, size), Run: func() error {
		_, _, err := m.DecodeRun(z, shape)
		return err
	}}, nil
}

// loadVAE builds the VAE with the model's weights or random ones.
func (ps *Parts) loadVAE(b backends.Backend) (*vae.AutoencoderKL, error) {
	m, err := vae.New(ps.vae)
	if err != nil {
		return nil, err
	}
	m.Backend = b
	src, err := ps.weightsOrRandom(weights.VAE, m.ExpectedKeys, ps.seed+2)
	if err != nil {
		return nil, err
	}
	return m, m.LoadWeights(src)
}

// normal draws n standard normal values.
func normal(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}
