package ldm

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/vae"
)

// MemoryEstimate is a request's predicted peak memory in bytes, by part,
// from the model's configs and the request's shapes, before it runs. The
// activation terms are scaled by factors measured on the pure-Go backend
// (TestMemoryEstimateBoundsMeasuredPeak; docs/SERVER.md); they bound the
// peak resident memory the generation adds to the loaded model.
type MemoryEstimate struct {
	// Weights is what the loaded model's variables take.
	Weights int64
	// UNet is the peak of one denoising step: feature maps, the skip
	// connections, attention scores (chunked on the pure-Go backend as
	// nn.Attention does) and the feed-forward, for the batch and its
	// unconditional half.
	UNet int64
	// Decode is the VAE decode (and, for img2img, encode) of one batch,
	// whole; DecodeTiled the same with vae.DecodeTiled.
	Decode, DecodeTiled int64
	// Results are the finished images of every batch, held until returned.
	Results int64
	// Overhead is the measured rest: per output pixel and fixed.
	Overhead int64
	// Tiled tells that the pipeline will decode in tiles (LoadOptions.
	// VAETiling: "on", or "auto" with a whole decode above its budget).
	Tiled bool
}

// Peak is the estimate of the whole generation: the weights, the larger of
// a U-Net step and the decode the pipeline will run (it releases the
// U-Net's buffers before decoding), the results and the rest.
func (e MemoryEstimate) Peak() int64 {
	dec := e.Decode
	if e.Tiled {
		dec = e.DecodeTiled
	}
	return e.Weights + max(e.UNet, dec) + e.Results + e.Overhead
}

// Factors measured on the pure-Go backend with
// LDM_MEMORY_CALIBRATE=1 go test ./ldm -run TestMemoryEstimateBoundsMeasuredPeak
// (peak resident memory over the resident memory before, each shape's
// first run, on the tiny golden model and the embedded model, 64² to 512²,
// batches 1 to 4): the measured peaks grow about linearly with the output
// pixels (4.4 KB/px on the tiny model, 7–8 KB/px on the embedded one, whose
// VAE attention runs at a quarter of the image side), plus 30–80 MiB for a
// first run. The pure-Go executor pools a step's intermediates, so the
// U-Net's sum of its largest tensors is scaled by unetActFactor. With these
// the estimate is 1.2–4.2× the measured peak on every calibrated shape (the
// fixed part dominates the smallest). For SD1.5 at 512² (f32 weights,
// computed from its configs, not run here) it gives 7.3 GiB = 7.8 GB, against
// the 7.7 GB peak measured for U-Net and decode (docs/PERFORMANCE.md).
const (
	unetActFactor = 6
	perPixelBytes = 6 << 10
	fixedBytes    = 96 << 20
	// attentionChunk is nn.Attention's bound on one chunk of scores on the
	// pure-Go backend (nn.attentionChunkBytes).
	attentionChunk = 256 << 20
)

// EstimateMemory predicts the memory req takes on this pipeline; req must
// be defaulted (Defaults). It is cheap: configs and arithmetic, and the
// tokenizer for the prompts' chunk counts.
func (p *Pipeline) EstimateMemory(req Request) MemoryEstimate {
	var e MemoryEstimate
	// Counted once: later the variables change under generations (LoRA
	// merges replace values, of the same sizes).
	p.weightsOnce.Do(func() {
		for _, c := range []*context.Context{p.ctxOf("text"), p.ctxOf("unet"), p.ctxOf("vae")} {
			if c != nil {
				p.weightsBytes += int64(c.Memory())
			}
		}
	})
	e.Weights = p.weightsBytes
	f := int64(p.Factor())
	h, w := int64(req.Height)/max(f, 1), int64(req.Width)/max(f, 1)
	b := int64(req.BatchSize)
	if req.GuidanceScale > 1 {
		b *= 2 // classifier-free guidance runs the unconditional half in the same batch
	}
	chunks := len(p.promptChunks(req.Prompt))
	if req.GuidanceScale > 1 {
		chunks = max(chunks, len(p.promptChunks(req.NegativePrompt)))
	}
	tokens := int64(77 * max(1, chunks))
	if p.UNet != nil {
		e.UNet = unetPeak(p.UNet.Config, b, h, w, tokens)
	}
	// The VAE that Load made: a request's own VAE (swapped in while it
	// runs) has the same architecture, and this one is never swapped.
	if v := p.vaes.own; v != nil {
		bb := int64(max(1, req.BatchSize))
		// The mid block's single-head attention over every latent pixel,
		// chunked as nn.Attention chunks it, with softmax's copies; it runs
		// whole in a tiled decode too.
		q := h * w
		attn := int64(0)
		if v.Config.MidBlockAddAttention {
			attn = 3 * min(bb*q*q*4, attentionChunk+bb*q*4)
		}
		e.Decode = v.DecodePeakBytes(int(bb), int(h), int(w), false) - v.DecodePeakBytes(0, int(h), int(w), false) + attn
		e.DecodeTiled = v.DecodePeakBytes(int(bb), int(h), int(w), true) - v.DecodePeakBytes(0, int(h), int(w), true) + attn
		e.Tiled = p.willTile(v, int(bb), int(h), int(w))
	}
	// What else grows with the image (noise, latents, float and 8-bit
	// images, the executors' per-shape buffers), and what a first run of a
	// shape adds (compilation): measured, see the factors' comment.
	e.Overhead = perPixelBytes*int64(req.BatchSize)*int64(req.Width)*int64(req.Height) + fixedBytes
	// Each result is an RGBA image; the float image of a batch is counted
	// in the decode.
	e.Results = int64(req.BatchSize) * int64(req.BatchCount) * int64(req.Width) * int64(req.Height) * 4
	return e
}

func (p *Pipeline) ctxOf(part string) *context.Context {
	switch {
	case part == "text" && p.Text != nil:
		return p.Text.Ctx
	case part == "unet" && p.UNet != nil:
		return p.UNet.Ctx
	case part == "vae" && p.VAE != nil:
		return p.VAE.Ctx
	}
	return nil
}

// unetPeak is a U-Net step's peak for a batch of b latents of h×w and a
// conditioning of tokens tokens.
func unetPeak(cfg unet.Config, b, h, w, tokens int64) int64 {
	const f32 = 4
	levels := len(cfg.BlockOutChannels)
	var skips, largest int64
	for l := range levels {
		c := int64(cfg.BlockOutChannels[l])
		hl, wl := ceilShift(h, l), ceilShift(w, l)
		fm := b * c * hl * wl * f32
		layers := int64(perBlock(cfg.LayersPerBlock, l, 2))
		skips += (layers + 1) * fm
		step := 3 * fm // a resnet's input, its hidden map and the concatenated skip
		if strings.HasPrefix(cfg.DownBlockTypes[l], "CrossAttn") {
			heads := int64(perBlock(cfg.NumAttentionHeads, l, 0))
			if heads == 0 {
				heads = int64(perBlock(cfg.AttentionHeadDim, l, 8))
			}
			q := hl * wl
			self := min(b*heads*q*q*f32, attentionChunk+b*heads*q*f32)
			cross := min(b*heads*q*tokens*f32, attentionChunk+b*heads*tokens*f32)
			ff := 8 * fm // GEGLU: a 4c-wide hidden layer and its gate
			step += max(self, cross, ff)
		}
		largest = max(largest, step)
	}
	return unetActFactor*largest + skips
}

func (e MemoryEstimate) decode() int64 {
	if e.Tiled {
		return e.DecodeTiled
	}
	return e.Decode
}

// willTile is Pipeline.tiled's choice, made with the pipeline's own VAE.
func (p *Pipeline) willTile(v *vae.AutoencoderKL, b, h, w int) bool {
	switch p.vaes.tiling.Mode {
	case "on":
		return true
	case "off":
		return false
	}
	budget := p.vaes.tiling.MaxBytes
	if budget <= 0 {
		budget = 2 << 30
	}
	return v.DecodePeakBytes(b, h, w, false) > budget
}

func ceilShift(n int64, l int) int64 { return (n + (1 << l) - 1) >> l }

func perBlock(l unet.IntList, i, def int) int {
	switch {
	case len(l) == 0:
		return def
	case i < len(l):
		return l[i]
	}
	return l[len(l)-1]
}

// String is the estimate for messages: "3.2 GiB (weights 1.6 GiB, U-Net
// 1.1 GiB, decode 0.4 GiB, results 0.1 GiB)".
func (e MemoryEstimate) String() string {
	return fmt.Sprintf("%s (weights %s, U-Net step %s, VAE decode %s, images %s)",
		FormatBytes(e.Peak()), FormatBytes(e.Weights), FormatBytes(e.UNet), FormatBytes(e.decode()), FormatBytes(e.Results+e.Overhead))
}

// FormatBytes writes n in MiB or GiB.
func FormatBytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
