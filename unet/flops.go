package unet

import "fmt"

// FLOPs returns the floating-point operations of one forward pass on a
// [b,in_channels,h,w] sample with t context tokens, counted as 2 per
// multiply-add of every convolution, linear layer and attention product
// (q·kᵀ and p·v). Normalisations, activations, softmax and additions are
// left out: they are a few percent at Stable Diffusion sizes.
func FLOPs(cfg Config, b, h, w, t int) (int64, error) {
	p, err := cfg.plan()
	if err != nil {
		return 0, err
	}
	if f := cfg.DownFactor(); b <= 0 || t <= 0 || h <= 0 || w <= 0 || h%f != 0 || w%f != 0 {
		return 0, fmt.Errorf("unet: FLOPs of a [%d,%d,%d,%d] sample with %d tokens: sizes must be positive and h, w multiples of %d",
			b, cfg.InChannels, h, w, t, f)
	}
	var macs int64 // per sample
	conv := func(px, in, out, k int) { macs += int64(px) * int64(in) * int64(out) * int64(k*k) }
	resnet := func(px, in, out int) {
		conv(px, in, out, 3)
		conv(px, out, out, 3)
		if in != out {
			conv(px, in, out, 1)
		}
		macs += int64(p.timeEmbedDim) * int64(out) // time_emb_proj
	}
	attend := func(n, c int, a *attnPlan) {
		inner := int64(a.heads * (c / a.heads))
		n64, t64, d64 := int64(n), int64(t), int64(a.crossDim)
		cross := n64*inner*inner*2 + 2*t64*d64*inner + 2*n64*t64*inner // q, out; k, v; q·kᵀ, p·v
		self := 4*n64*inner*inner + 2*n64*n64*inner
		if a.onlyCross {
			self = cross
		}
		macs += 2 * int64(n) * int64(c) * inner // proj_in, proj_out
		macs += int64(a.layers) * (self + cross + 12*n64*inner*inner)
	}
	block := func(blk blockPlan, px int) {
		for _, r := range blk.resnets {
			resnet(px, r.in+r.skip, r.out)
			if blk.attn != nil {
				attend(px, r.out, blk.attn)
			}
		}
	}
	ted := int64(p.timeEmbedDim)
	macs += int64(p.c0)*ted + ted*ted
	px := h * w
	conv(px, cfg.InChannels, p.c0, cfg.ConvInKernel)
	for i, blk := range p.down {
		block(blk, px)
		if blk.sampler {
			px /= 4
			c := cfg.BlockOutChannels[i]
			conv(px, c, c, 3)
		}
	}
	if m := p.mid; m != nil { // resnet, transformer, resnet
		resnet(px, m.resnets[0].in, m.resnets[0].out)
		attend(px, m.resnets[0].out, m.attn)
		resnet(px, m.resnets[1].in, m.resnets[1].out)
	}
	for _, blk := range p.up {
		block(blk, px)
		if blk.sampler {
			px *= 4
			c := blk.resnets[len(blk.resnets)-1].out
			conv(px, c, c, 3)
		}
	}
	conv(px, p.c0, cfg.OutChannels, cfg.ConvOutKernel)
	return 2 * int64(b) * macs, nil
}
