package ldm

import (
	"image"
	"math"

	"github.com/ldm-project/ldm/rng"
	"github.com/ldm-project/ldm/vae"
)

// inpaintInput is what a 9-channel inpainting U-Net's conditioning is made
// from, kept until the latent noise is drawn: the masked image's posterior
// draw comes after it, as in diffusers' StableDiffusionInpaintPipeline
// (init image encode, then the noise, then the masked image).
type inpaintInput struct {
	pix  []float32   // the init image at the output size, NCHW [1,3,H,W] in [-1,1]
	mask *image.Gray // white = repaint (after any blur)
	H, W int
}

// needsInitLatents reports whether the init image is encoded: a 9-channel
// inpainting U-Net at full strength starts from pure noise and reads the
// image only through its masked-image latents (diffusers encodes it only
// for a 4-channel U-Net or a strength below 1).
func (p *Pipeline) needsInitLatents(req Request) bool {
	return !(p.isInpaintingUNet() && req.Mask != nil && req.Strength >= 1)
}

// fullStrengthInpaint reports diffusers' is_strength_max case of
// inpainting: the loop starts from noise·init_noise_sigma, not from the
// noised init latents.
func fullStrengthInpaint(req Request) bool { return req.Mask != nil && req.Strength >= 1 }

// nearestMask samples a mask to the latent size as torch's
// F.interpolate(mode="nearest") (source index floor(i·in/out), the scale in
// float32), after binarising it at 0.5 (diffusers' mask processor; A1111's
// torch.round of the blurred mask).
func nearestMask(m *image.Gray, w, h int) []float32 {
	W, H := m.Bounds().Dx(), m.Bounds().Dy()
	sx, sy := float32(W)/float32(w), float32(H)/float32(h)
	out := make([]float32, w*h)
	for y := range h {
		yy := min(int(math.Floor(float64(float32(y)*sy))), H-1)
		for x := range w {
			xx := min(int(math.Floor(float64(float32(x)*sx))), W-1)
			if m.Pix[yy*m.Stride+xx] >= 128 {
				out[y*w+x] = 1
			}
		}
	}
	return out
}

// inpaintLatents makes a 9-channel U-Net's extra input: the nearest-sampled
// binary mask and the scaled posterior sample of the init image with the
// repainted region set to 0 (grey), each image's draw from its generator
// (eps, when given, replaces the draws: tests replay a reference's).
func (p *Pipeline) inpaintLatents(st *img2imgState, gens []rng.Source, eps []float32) error {
	in := st.inpaint
	if in == nil {
		return nil
	}
	B, h, w := st.shape[0], st.shape[2], st.shape[3]
	bin := nearestMask(in.mask, w, h)
	hw := in.H * in.W
	masked := make([]float32, len(in.pix))
	for ch := range 3 {
		for i := range hw {
			if in.mask.Pix[(i/in.W)*in.mask.Stride+i%in.W] < 128 {
				masked[ch*hw+i] = in.pix[ch*hw+i]
			}
		}
	}
	batch := make([]float32, 0, B*len(masked))
	for range B {
		batch = append(batch, masked...)
	}
	moments, mshape, err := p.VAE.EncodeRun(batch, []int{B, 3, in.H, in.W})
	if err != nil {
		return err
	}
	if eps == nil {
		eps = drawEach(gens, mshape[1]/2*mshape[2]*mshape[3])
	}
	z, _, err := vae.PosteriorSample(moments, mshape, eps)
	if err != nil {
		return err
	}
	st.maskedLatents = p.VAE.Config.ScaleValues(z)
	st.unetMask = nil
	for range B {
		st.unetMask = append(st.unetMask, bin...)
	}
	st.inpaint = nil
	return nil
}

// inpaintAfterNoise makes the members' masked-image latents once the noise
// is drawn, and joins their states again.
func (p *Pipeline) inpaintAfterNoise(ms []*member, parts []*img2imgState, joined *img2imgState, gens []rng.Source, shape []int) (*img2imgState, error) {
	made := false
	for k, m := range ms {
		if parts[k].inpaint == nil {
			continue
		}
		if err := p.inpaintLatents(parts[k], gens[m.off:m.off+m.n], m.task.Opts.inpaintEps); err != nil {
			return nil, err
		}
		made = true
	}
	if !made {
		return joined, nil
	}
	st := joinInits(parts, shape)
	st.noise = joined.noise
	return st, nil
}
