package app

import (
	"fmt"
	"image"
	"image/draw"
	"math"

	"github.com/disintegration/imaging"
	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

// A model draws well near the size it was trained at (its native size:
// the U-Net's sample size × the VAE factor) and badly, and slowly, far
// above it: the embedded model is 64×64 and a 512×512 request from an
// AUTOMATIC1111 or Open WebUI client costs 64× the work for noise. What a
// user of such a client expects is a usable picture of the size asked
// for: so a request whose width or height exceeds Config.UpscaleAbove ×
// the native size is drawn at about the native area, keeping its aspect
// ratio, and each image is resized to the size asked for with a plain
// Lanczos filter. The infotext says so ("Upscaled: 64x64 to 512x512
// (Lanczos)"), as does the X-Ldm-Upscaled header of synchronous answers.

// defaultUpscaleAbove is Config.UpscaleAbove's default.
const defaultUpscaleAbove = 2.0

// nativeSize is a model's native width (= height) in pixels.
func nativeSize(m Model) int { return m.SampleSize() }

// upscale is a job's resize after drawing: the size asked for.
type upscale struct{ W, H int }

// fitNative lowers an oversized request to about the native area; the
// returned upscale is the size to resize to (zero: none).
func (s *Server) fitNative(m Model, req ldm.Request) (ldm.Request, upscale) {
	above := s.cfg.UpscaleAbove
	if above < 0 || req.Width <= 0 && req.Height <= 0 || req.Hires != nil { // a hires fix is the client's own upscale
		return req, upscale{}
	}
	n, f := nativeSize(m), m.Factor()
	w, h := req.Width, req.Height
	if w <= 0 {
		w = n
	}
	if h <= 0 {
		h = n
	}
	if float64(max(w, h)) <= above*float64(n) || w%f != 0 || h%f != 0 ||
		w > s.cfg.Limits.MaxWidth || h > s.cfg.Limits.MaxHeight {
		// Small enough, or a size Prepare refuses as asked.
		return req, upscale{}
	}
	if pl, err := m.Prepare(req, s.cfg.Limits); err != nil || s.checkMemory(m, pl.Request()) != nil {
		// Refused as asked (the limits, the memory budget): Prepare and
		// the budget say why, as for any request.
		return req, upscale{}
	}
	k := math.Sqrt(float64(n*n) / float64(w*h))
	round := func(x float64) int { return max(f, int(math.Round(x/float64(f)))*f) }
	req.Width, req.Height = round(float64(w)*k), round(float64(h)*k)
	return req, upscale{w, h}
}

// upscaleResults resizes each image to the size asked for and says so in
// its infotext.
func upscaleResults(results []ldm.Result, to upscale) []ldm.Result {
	if to.W == 0 {
		return results
	}
	out := make([]ldm.Result, len(results))
	for i, r := range results {
		b := r.Image.Bounds()
		r.Infotext.Params = append(append([]ldm.KV(nil), r.Infotext.Params...),
			ldm.KV{Key: "Upscaled", Value: fmt.Sprintf("%dx%d to %dx%d (Lanczos)", b.Dx(), b.Dy(), to.W, to.H)})
		big := imaging.Resize(r.Image, to.W, to.H, imaging.Lanczos)
		r.Image = image.NewRGBA(big.Bounds())
		draw.Draw(r.Image, big.Bounds(), big, image.Point{}, draw.Src)
		out[i] = r
	}
	return out
}

// upscaledHeader tells a synchronous client its images were drawn
// smaller and resized.
func upscaledHeader(c *gin.Context, j *Job) {
	if j.upscale.W != 0 {
		c.Header("X-Ldm-Upscaled", fmt.Sprintf("%dx%d to %dx%d (Lanczos): drawn at the model's native size", j.Req.Width, j.Req.Height, j.upscale.W, j.upscale.H))
	}
}
