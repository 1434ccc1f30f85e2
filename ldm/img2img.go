package ldm

import (
	"image"
	"image/color"
	"image/draw"
	"math"

	"github.com/disintegration/imaging"

	"github.com/ldm-project/ldm/rng"
	"github.com/ldm-project/ldm/scheduler"
	"github.com/ldm-project/ldm/vae"
)

// img2imgState carries what img2img and inpainting need through the loop
// (and what an inpainting U-Net needs for txt2img: unetMask, maskedLatents).
type img2imgState struct {
	latents []float32 // scaled init latents [B,C,h,w]
	noise   []float32 // the noise AddNoise used, reused for mask blending
	shape   []int

	original  *image.RGBA // init image at the output size
	pixelMask *image.Gray // blurred mask, white = repaint

	blendMask     []float32     // [B,1,h,w] for latent blending (4-channel U-Nets)
	unetMask      []float32     // [B,1,h,w] input of a 9-channel inpainting U-Net
	maskedLatents []float32     // [B,C,h,w] latents of the image with the hole blanked
	inpaint       *inpaintInput // until maskedLatents are made, after the noise draw
	fullRes       *fullRes      // "Only masked": where the result goes back
}

// joinInits stacks the init states of the plans sharing one batch (in
// batch order) into the batch's state of the given shape. The per-plan
// images and masks stay in the parts, for pasting back.
func joinInits(parts []*img2imgState, shape []int) *img2imgState {
	if len(parts) == 1 {
		return parts[0]
	}
	st := &img2imgState{shape: shape}
	for _, q := range parts {
		st.latents = append(st.latents, q.latents...)
		st.blendMask = append(st.blendMask, q.blendMask...)
		st.unetMask = append(st.unetMask, q.unetMask...)
		st.maskedLatents = append(st.maskedLatents, q.maskedLatents...)
	}
	return st
}

// ImageToTensor converts an image to NCHW floats in [-1, 1] (u8/255·2−1, as
// diffusers' preprocessing), compositing transparency onto white.
func ImageToTensor(img image.Image) ([]float32, int, int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float32, 3*h*w)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			a := float64(c.A) / 255
			for ch, v := range []uint8{c.R, c.G, c.B} {
				f := (float64(v)*a + 255*(1-a)) / 255
				if c.A == 255 {
					f = float64(v) / 255
				}
				out[ch*h*w+y*w+x] = float32(f*2 - 1)
			}
		}
	}
	return out, h, w
}

func resizeTo(img image.Image, w, h int) *image.RGBA {
	if img.Bounds().Dx() == w && img.Bounds().Dy() == h {
		out := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
		return out
	}
	n := imaging.Resize(img, w, h, imaging.Lanczos)
	out := image.NewRGBA(n.Bounds())
	draw.Draw(out, out.Bounds(), n, image.Point{}, draw.Src)
	return out
}

// prepareInit encodes the init image (posterior sample with each image's
// first draw, as diffusers does with a generator) and builds the masks.
func (p *Pipeline) prepareInit(req Request, gens []rng.Source, shape []int) (*img2imgState, error) {
	B, h, w := shape[0], shape[2], shape[3]
	st := &img2imgState{shape: shape}
	req, st.fullRes = prepareFullRes(req)
	st.original = resizeTo(req.InitImage, req.Width, req.Height)
	if req.Mask != nil {
		st.pixelMask = outputMask(req)
	}
	pix, H, W := ImageToTensor(filledInit(req, st.original, st.pixelMask))
	batch := make([]float32, 0, B*len(pix))
	for i := 0; i < B; i++ {
		batch = append(batch, pix...)
	}
	if req.initLatents != nil {
		for range B {
			st.latents = append(st.latents, req.initLatents...)
		}
	} else if p.needsInitLatents(req) {
		moments, mshape, err := p.encode(batch, []int{B, 3, H, W})
		if err != nil {
			return nil, err
		}
		lat := mshape[1] / 2 * mshape[2] * mshape[3]
		eps := drawEach(gens, lat)
		z, _, err := vae.PosteriorSample(moments, mshape, eps)
		if err != nil {
			return nil, err
		}
		st.latents = p.VAE.Config.ScaleValues(z)
	}
	var err error
	if req.Mask == nil {
		if p.isInpaintingUNet() {
			if st.unetMask, st.maskedLatents, err = p.fullMask(B, H, W); err != nil {
				return nil, err
			}
		}
		return st, nil
	}
	small := areaDownsample(st.pixelMask, w, h)
	if p.isInpaintingUNet() {
		// A 9-channel inpainting U-Net sees the binarised mask and the
		// latents of the image with the masked region set to 0 (grey),
		// made after the noise is drawn (inpaintLatents).
		st.inpaint = &inpaintInput{pix: pix, mask: st.pixelMask, H: H, W: W}
		return st, nil
	}
	for i := 0; i < B; i++ {
		st.blendMask = append(st.blendMask, small...)
	}
	return st, nil
}

// isInpaintingUNet reports a 9-channel inpainting U-Net: it takes the
// latents, the mask and the masked image's latents.
func (p *Pipeline) isInpaintingUNet() bool {
	return p.UNet.Config.InChannels == 2*p.UNet.Config.OutChannels+1
}

// fullMask is an inpainting U-Net's conditioning without a mask: everything
// masked, the masked image all grey (0), as AUTOMATIC1111 runs inpainting
// models for txt2img and unmasked img2img.
func (p *Pipeline) fullMask(B, H, W int) (mask, masked []float32, err error) {
	mm, mshape, err := p.encode(make([]float32, 3*H*W), []int{1, 3, H, W})
	if err != nil {
		return nil, nil, err
	}
	hw := mshape[2] * mshape[3]
	ml := p.VAE.Config.ScaleValues(mm[:mshape[1]/2*hw]) // the posterior mean (mode)
	ones := make([]float32, hw)
	for i := range ones {
		ones[i] = 1
	}
	for range B {
		mask = append(mask, ones...)
		masked = append(masked, ml...)
	}
	return mask, masked, nil
}

// blend keeps the unmasked region on the init image's noise trajectory:
// x = m·x + (1−m)·add_noise(init, noise, t_next) (diffusers' inpainting with
// a 4-channel U-Net); after the last step the init latents are used as is.
func (st *img2imgState) blend(s *scheduler.Scheduler, x []float32, next int) ([]float32, error) {
	ref := st.latents
	if next < len(s.Timesteps()) {
		var err error
		if ref, err = s.AddNoiseAt(st.latents, st.noise, next); err != nil {
			return nil, err
		}
	}
	B, C, h, w := st.shape[0], st.shape[1], st.shape[2], st.shape[3]
	out := make([]float32, len(x))
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			for i := 0; i < h*w; i++ {
				m := st.blendMask[b*h*w+i]
				k := ((b*C)+c)*h*w + i
				out[k] = m*x[k] + (1-m)*ref[k]
			}
		}
	}
	return out, nil
}

// areaDownsample averages the mask over each latent cell, in [0,1].
func areaDownsample(m *image.Gray, w, h int) []float32 {
	W, H := m.Bounds().Dx(), m.Bounds().Dy()
	out := make([]float32, w*h)
	fy, fx := H/h, W/w
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			s := 0.0
			for dy := 0; dy < fy; dy++ {
				for dx := 0; dx < fx; dx++ {
					s += float64(m.Pix[(y*fy+dy)*m.Stride+x*fx+dx])
				}
			}
			out[y*w+x] = float32(s / float64(fy*fx) / 255)
		}
	}
	return out
}

// concatChannels joins per-image [C1], [C2], [C3] channel blocks into one
// [B, C1+C2+C3, h, w] input.
func concatChannels(shape []int, parts ...[]float32) []float32 {
	B, hw := shape[0], shape[2]*shape[3]
	var out []float32
	for b := 0; b < B; b++ {
		for _, p := range parts {
			per := len(p) / B
			out = append(out, p[b*per:(b+1)*per]...)
		}
	}
	_ = hw
	return out
}

// pasteUnmasked puts the original pixels back where the mask keeps them,
// using the blurred mask as alpha (AUTOMATIC1111's overlay).
func pasteUnmasked(dst, orig *image.RGBA, mask *image.Gray) {
	for i := 0; i < len(mask.Pix); i++ {
		a := float64(mask.Pix[i]) / 255
		for c := 0; c < 3; c++ {
			v := a*float64(dst.Pix[4*i+c]) + (1-a)*float64(orig.Pix[4*i+c])
			dst.Pix[4*i+c] = uint8(math.Round(v))
		}
	}
}

// latentRGB approximates SD's VAE decoder with one linear map per latent
// channel (the coefficients AUTOMATIC1111's "Approx cheap" preview uses).
var latentRGB = [4][3]float32{
	{0.298, 0.207, 0.208},
	{0.187, 0.286, 0.173},
	{-0.158, 0.189, 0.264},
	{-0.184, -0.271, -0.473},
}

// LatentPreview is a cheap RGB view of the first image's latents, at latent
// resolution.
func LatentPreview(x []float32, shape []int) image.Image {
	C, h, w := shape[1], shape[2], shape[3]
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < h*w; i++ {
		var rgb [3]float32
		for c := 0; c < C && c < 4; c++ {
			for k := 0; k < 3; k++ {
				if C == 4 {
					rgb[k] += x[c*h*w+i] * latentRGB[c][k]
				} else if c == 0 {
					rgb[k] = x[i] * 0.5
				}
			}
		}
		for k := 0; k < 3; k++ {
			img.Pix[4*i+k] = uint8(math.Max(0, math.Min(255, float64((rgb[k]+1)*127.5))))
		}
		img.Pix[4*i+3] = 255
	}
	return img
}
