package ldm

import (
	"fmt"
	"image"
	"image/draw"
	"math"
	"slices"
	"strings"

	"github.com/disintegration/imaging"

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
	per := shape[1] * shape[2] * shape[3]
	for k, m := range ms {
		if fill := m.task.Plan.req.InpaintingFill; fill == FillNoise || fill == FillNothing {
			parts[k].noise = joined.noise[m.off*per : (m.off+m.n)*per]
			fillLatents(parts[k], fill)
			made = true
		}
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

// Masked content (AUTOMATIC1111's inpainting_fill): what the repainted
// region starts from.
const (
	FillColors    = "fill"           // the surrounding colours blurred in (A1111 0)
	FillOriginal  = "original"       // the image as it is (A1111 1; ldm's default)
	FillNoise     = "latent_noise"   // the image's noise in latent space (A1111 2)
	FillNothing   = "latent_nothing" // zero latents (A1111 3)
	defaultFill   = FillOriginal
	maxFullResPad = 256
)

// FillModes lists the inpainting_fill modes in AUTOMATIC1111's order.
var FillModes = []string{FillColors, FillOriginal, FillNoise, FillNothing}

// checkInpaint is the validation of the inpainting options.
func (r *Request) checkInpaint() error {
	bad := func(field, format string, a ...any) error {
		return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case r.InpaintingFill != "" && !slices.Contains(FillModes, r.InpaintingFill):
		return bad("inpainting_fill", "%q: want one of %s", r.InpaintingFill, strings.Join(FillModes, ", "))
	case r.InpaintingFill != "" && r.Mask == nil:
		return bad("inpainting_fill", "is only meaningful with a mask")
	case r.InpaintFullRes && r.Mask == nil:
		return bad("inpaint_full_res", "is only meaningful with a mask")
	case r.InpaintFullResPadding < 0 || r.InpaintFullResPadding > maxFullResPad:
		return bad("inpaint_full_res_padding", "%d must be between 0 and %d pixels", r.InpaintFullResPadding, maxFullResPad)
	case r.MaskInvert && r.Mask == nil:
		return bad("inpainting_mask_invert", "is only meaningful with a mask")
	}
	return nil
}

// processedMask is the request's mask at the init image's size, inverted
// if asked and blurred (A1111 blurs before anything else uses it).
func processedMask(req Request) *image.Gray {
	m := imageToGray(imaging.Resize(req.Mask, req.InitImage.Bounds().Dx(), req.InitImage.Bounds().Dy(), imaging.NearestNeighbor))
	if req.MaskInvert {
		for i := range m.Pix {
			m.Pix[i] = 255 - m.Pix[i]
		}
	}
	if px := req.maskBlur(); px > 0 {
		b := imaging.Blur(m, float64(px)/2)
		for i := range m.Pix {
			m.Pix[i] = b.Pix[4*i]
		}
	}
	return m
}

func imageToGray(img image.Image) *image.Gray {
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(g, g.Bounds(), img, b.Min, draw.Src)
	return g
}

// fullRes is an "Only masked" inpainting: the crop of the original that is
// processed at the request's size, and what to paste it back into.
type fullRes struct {
	region   image.Rectangle
	original *image.RGBA // the init image at its own size
	mask     *image.Gray // its processed mask (for the overlay)
}

// cropRegion is the mask's bounding box grown by pad pixels, then to the
// output's aspect ratio inside the image (A1111's get_crop_region and
// expand_crop_region); ok is false for an empty mask.
func cropRegion(m *image.Gray, pad, outW, outH int) (image.Rectangle, bool) {
	w, h := m.Bounds().Dx(), m.Bounds().Dy()
	x1, y1, x2, y2 := w, h, 0, 0
	for y := range h {
		for x := range w {
			if m.Pix[y*m.Stride+x] > 0 {
				x1, y1, x2, y2 = min(x1, x), min(y1, y), max(x2, x+1), max(y2, y+1)
			}
		}
	}
	if x2 <= x1 {
		return image.Rectangle{}, false
	}
	x1, y1, x2, y2 = max(x1-pad, 0), max(y1-pad, 0), min(x2+pad, w), min(y2+pad, h)
	grow := func(lo, hi, want, limit int) (int, int) {
		d := want - (hi - lo)
		lo -= d / 2
		hi += d - d/2
		if hi >= limit {
			lo, hi = lo-(hi-limit), limit
		}
		if lo < 0 {
			hi, lo = hi-lo, 0
		}
		return lo, min(hi, limit)
	}
	ratio := float64(outW) / float64(outH)
	if float64(x2-x1)/float64(y2-y1) > ratio {
		y1, y2 = grow(y1, y2, int(float64(x2-x1)/ratio), h)
	} else {
		x1, x2 = grow(x1, x2, int(float64(y2-y1)*ratio), w)
	}
	return image.Rect(x1, y1, x2, y2), true
}

// prepareFullRes crops an "Only masked" request to its mask's region,
// scaled to the output size; the mask it returns is already blurred.
func prepareFullRes(req Request) (Request, *fullRes) {
	if !req.InpaintFullRes || req.Mask == nil {
		return req, nil
	}
	m := processedMask(req)
	region, ok := cropRegion(m, req.InpaintFullResPadding, req.Width, req.Height)
	if !ok {
		return req, nil // an empty mask: nothing to crop to
	}
	fr := &fullRes{region: region, original: toRGBAImage(req.InitImage), mask: m}
	req.InitImage = imaging.Resize(imaging.Crop(req.InitImage, region.Add(req.InitImage.Bounds().Min)), req.Width, req.Height, imaging.Lanczos)
	req.Mask = imaging.Resize(m.SubImage(region), req.Width, req.Height, imaging.Lanczos)
	req.MaskBlur, req.MaskInvert = Blur(0), false
	return req, fr
}

func toRGBAImage(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out
}

// pasteBack puts a generated "Only masked" image into the original: scaled
// to the region, composited where the mask repaints.
func (fr *fullRes) pasteBack(img *image.RGBA) *image.RGBA {
	patch := imaging.Resize(img, fr.region.Dx(), fr.region.Dy(), imaging.Lanczos)
	canvas := image.NewRGBA(fr.original.Bounds())
	draw.Draw(canvas, canvas.Bounds(), fr.original, image.Point{}, draw.Src)
	draw.Draw(canvas, fr.region, patch, image.Point{}, draw.Src)
	pasteUnmasked(canvas, fr.original, fr.mask)
	return canvas
}

// fillMasked is A1111's masking.fill: the repainted region gets the colours
// around it, by compositing ever sharper blurs of the kept part (radii 256,
// 64, 16×2, 4×4, 2×2, 0) over each other.
func fillMasked(img *image.RGBA, mask *image.Gray) *image.RGBA {
	b := img.Bounds()
	keep := image.NewNRGBA(b)
	for i := range mask.Pix {
		a := 255 - mask.Pix[i]
		keep.Pix[4*i], keep.Pix[4*i+1], keep.Pix[4*i+2], keep.Pix[4*i+3] = img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], a
	}
	out := image.NewRGBA(b)
	for _, s := range []struct{ radius, repeats int }{{256, 1}, {64, 1}, {16, 2}, {4, 4}, {2, 2}, {0, 1}} {
		layer := image.Image(keep)
		if s.radius > 0 {
			layer = premultipliedBlur(keep, float64(s.radius))
		}
		for range s.repeats {
			draw.Draw(out, b, layer, b.Min, draw.Over)
		}
	}
	for i := 3; i < len(out.Pix); i += 4 {
		out.Pix[i] = 255
	}
	return out
}

// premultipliedBlur blurs colour weighted by alpha (PIL's "RGBa" mode), so
// transparent pixels do not darken their neighbours.
func premultipliedBlur(img *image.NRGBA, sigma float64) *image.NRGBA {
	pre := image.NewRGBA(img.Bounds()) // image.RGBA is premultiplied
	draw.Draw(pre, pre.Bounds(), img, img.Bounds().Min, draw.Src)
	bl := imaging.Blur(pre, sigma) // treats the premultiplied values as plain channels
	out := image.NewNRGBA(img.Bounds())
	for i := 0; i < len(bl.Pix); i += 4 {
		a := bl.Pix[i+3]
		out.Pix[i+3] = a
		if a == 0 {
			continue
		}
		for c := range 3 {
			out.Pix[i+c] = uint8(min(255, math.Round(float64(bl.Pix[i+c])*255/float64(a))))
		}
	}
	return out
}

// fillLatents applies latent_noise / latent_nothing to init latents:
// the repainted region (the mask rounded at latent size) becomes the
// image's noise or zero (A1111: init·(1−m) + noise·m).
func fillLatents(st *img2imgState, fill string) {
	if st.latents == nil || st.pixelMask == nil || (fill != FillNoise && fill != FillNothing) {
		return
	}
	B, C, h, w := st.shape[0], st.shape[1], st.shape[2], st.shape[3]
	m := areaDownsample(st.pixelMask, w, h)
	for b := range B {
		for c := range C {
			for i := range h * w {
				if m[i] < 0.5 {
					continue
				}
				k := (b*C+c)*h*w + i
				st.latents[k] = 0
				if fill == FillNoise && st.noise != nil {
					st.latents[k] = st.noise[k]
				}
			}
		}
	}
}

// outputMask is the request's mask at the output size: inverted if asked,
// then blurred (white = repaint).
func outputMask(req Request) *image.Gray {
	m := imaging.Grayscale(imaging.Resize(req.Mask, req.Width, req.Height, imaging.NearestNeighbor))
	g := image.NewGray(m.Bounds())
	for i := range g.Pix {
		g.Pix[i] = m.Pix[4*i]
	}
	if req.MaskInvert {
		for i := range g.Pix {
			g.Pix[i] = 255 - g.Pix[i]
		}
	}
	if px := req.maskBlur(); px > 0 {
		b := imaging.Blur(g, float64(px)/2)
		for i := range g.Pix {
			g.Pix[i] = b.Pix[4*i]
		}
	}
	return g
}

// filledInit is the image the init latents are encoded from: the init
// image, with the repainted region filled from its surroundings unless the
// masked content is "original" (A1111 fills for every other mode).
func filledInit(req Request, img *image.RGBA, mask *image.Gray) *image.RGBA {
	if mask == nil || req.InpaintingFill == "" || req.InpaintingFill == FillOriginal {
		return img
	}
	return fillMasked(img, mask)
}
