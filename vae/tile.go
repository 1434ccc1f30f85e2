package vae

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// Tiled decoding and encoding bound the memory of a VAE pass for any image
// size. The parts at the latent resolution that hold the global attention
// (decoder: conv_in, mid block, first up block's resnets; encoder: last
// down block, mid block, conv_out) run on the whole image: they are small.
// The high-resolution part, which is local, runs tile by tile: each tile
// is a core plus a halo at least as wide as that part's receptive field, so
// a core's values are what the whole-image pass computes, except for the
// GroupNorms. Those take statistics of the whole image, never of the tile,
// so every tile is normalised alike and no seam shows. Up to StatsSize
// latent pixels a side they are exact, from one whole-image pass of the
// tiled part; above, a first pass over the tiles, each GroupNorm
// normalising by its own tile, estimates them from the cores, and each
// Refine pass recomputes them over all tiles from the previous estimate
// (the k-th makes the first k GroupNorms exact). Overlapping tiles are
// cross-faded over Blend latent pixels on each side of a core boundary.

// TileOptions tune DecodeTiled and EncodeTiled; zero values take defaults.
type TileOptions struct {
	// Tile is a tile's core size in latent pixels (default 32).
	Tile int
	// Halo is the overlap added on each side of a core, in latent pixels
	// (default: the receptive field of the tiled part, rounded up, plus 1).
	Halo int
	// Blend is the cross-fade half-width at core boundaries, in latent
	// pixels (default 1; at most Halo).
	Blend float64
	// StatsSize is the largest side, in latent pixels, for which the
	// GroupNorm statistics come from one whole-image pass, exactly (default
	// 32); larger inputs estimate them over the tiles.
	StatsSize int
	// Refine is the number of full-resolution passes over the tiles that
	// recompute the GroupNorm statistics before the final pass (default 0).
	Refine int
}

func (o TileOptions) withDefaults(halo int) TileOptions {
	if o.Tile <= 0 {
		o.Tile = 32
	}
	if o.Halo <= 0 {
		o.Halo = halo
	}
	if o.Blend <= 0 {
		o.Blend = 1
	}
	o.Blend = math.Min(o.Blend, float64(o.Halo))
	if o.StatsSize <= 0 {
		o.StatsSize = 32
	}
	return o
}

// decoderTailReach is the receptive-field radius of decoderTail in latent
// pixels: every 3×3 convolution reaches one pixel at its own resolution.
func (c Config) decoderTailReach() float64 {
	n, r := len(c.BlockOutChannels), 0.0
	for i := range n {
		s := float64(int(1) << i)
		if i > 0 {
			r += float64(2*(c.LayersPerBlock+1)) / s
		}
		if i < n-1 {
			r += 1 / (2 * s) // the upsampler's conv, at the next resolution
		}
	}
	return r + 1/float64(c.DownsampleFactor()) // conv_out
}

// encoderTailReach is encoderTail's radius in latent pixels: conv_in, two
// convolutions per resnet and the stride-2 downsampler (which reaches two
// pixels) per level.
func (c Config) encoderTailReach() float64 {
	px := 1.0
	for i := range len(c.BlockOutChannels) - 1 {
		px += float64(2*c.LayersPerBlock+2) * float64(int(1)<<i)
	}
	return px / float64(c.DownsampleFactor())
}

func haloFor(reach float64) int { return int(math.Ceil(reach)) + 1 }

// normPlan makes the GroupNorms of a tiled stage use given statistics (or,
// with stats nil, each input's own) and records, for each, the count, mean
// and M2 (sum of squared deviations) per sample and group over the tile's
// core, which mask marks at the latent resolution.
type normPlan struct {
	stats *Node // [K, 2, B, G]: mean and variance of each GroupNorm, or nil
	mask  *Node // [1, h, w] latent-resolution core mask (1 in the core)
	out   []*Node
}

func (p *normPlan) apply(ctx *context.Context, x *Node, groups int) *Node {
	g := x.Graph()
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]
	cg := c / groups
	mh, mw := p.mask.Shape().Dim(1), p.mask.Shape().Dim(2)
	s := h / mh
	// The mask at x's resolution, broadcast over channels.
	m := Reshape(p.mask, 1, mh, 1, mw, 1, 1)
	m = Reshape(BroadcastToDims(m, 1, mh, s, mw, s, 1), 1, h*w, 1, 1)
	xs := Reshape(x, b, h*w, groups, cg)
	sum := func(t *Node) *Node { return ReduceSum(ReduceSum(t, 3), 1) } // [b, groups]
	count := MulScalar(ReduceAllSum(m), float64(cg))
	mean := Div(sum(Mul(xs, m)), count)
	dev := Sub(xs, Reshape(mean, b, 1, groups, 1))
	m2 := sum(Mul(Square(dev), m))
	p.out = append(p.out, Stack([]*Node{BroadcastToDims(count, b, groups), mean, m2}, 0))
	if p.stats == nil {
		return nn.GroupNorm(ctx, x, groups, normEps)
	}
	k := len(p.out) - 1
	at := func(j int) *Node {
		return Reshape(Slice(p.stats, AxisElem(k), AxisElem(j), AxisRange(), AxisRange()), b, 1, groups, 1)
	}
	weight := nn.Param(ctx, g, "weight", c)
	bias := nn.Param(ctx, g, "bias", c)
	scale := Mul(Reciprocal(Sqrt(AddScalar(at(1), normEps))), Reshape(weight, 1, 1, groups, cg))
	y := Add(Mul(Sub(xs, at(0)), scale), Reshape(bias, 1, 1, groups, cg))
	return Reshape(y, d...)
}

// gathered returns the recorded statistics as one [K, 3, B, G] node.
func (p *normPlan) gathered() *Node { return Stack(p.out, 0) }

// groupStats accumulates GroupNorm statistics over tiles (Chan et al.'s
// pairwise update), per GroupNorm, sample and group.
type groupStats struct {
	k, b, g     int
	n, mean, m2 []float64
	have        bool
}

func (s *groupStats) add(v []float32, shape []int) {
	k, b, g := shape[0], shape[2], shape[3]
	if !s.have {
		*s = groupStats{k: k, b: b, g: g, n: make([]float64, k*b*g), mean: make([]float64, k*b*g), m2: make([]float64, k*b*g), have: true}
	}
	per := b * g
	for ki := range k {
		for j := range per {
			i := ki*per + j
			n2 := float64(v[(ki*3+0)*per+j])
			if n2 == 0 {
				continue
			}
			m2 := float64(v[(ki*3+1)*per+j])
			q2 := float64(v[(ki*3+2)*per+j])
			n1 := s.n[i]
			n := n1 + n2
			delta := m2 - s.mean[i]
			s.mean[i] += delta * n2 / n
			s.m2[i] += q2 + delta*delta*n1*n2/n
			s.n[i] = n
		}
	}
}

// tensor returns [K, 2, B, G]: mean and (biased) variance.
func (s *groupStats) tensor() *tensors.Tensor {
	per := s.b * s.g
	out := make([]float32, s.k*2*per)
	for ki := range s.k {
		for j := range per {
			i := ki*per + j
			out[(ki*2+0)*per+j] = float32(s.mean[i])
			if s.n[i] > 0 {
				out[(ki*2+1)*per+j] = float32(s.m2[i] / s.n[i])
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(out, s.k, 2, s.b, s.g)
}

// span is one tile along an axis, in latent pixels: the core [c0, c1) and
// the window [a0, a0+size) that is computed.
type span struct{ c0, c1, a0 int }

// tiles splits n latent pixels into cores of at most tile, each in a window
// of one common size (shifted inward at the borders) that extends at least
// halo beyond every inner core edge.
func tiles(n, tile, halo int) (spans []span, size int) {
	k := (n + tile - 1) / tile
	core := (n + k - 1) / k
	size = min(core+2*halo, n)
	for c0 := 0; c0 < n; c0 += core {
		c1 := min(c0+core, n)
		a0 := min(max(c0-halo, 0), n-size)
		spans = append(spans, span{c0, c1, a0})
	}
	return spans, size
}

// weight is the cross-fade weight of a tile at latent coordinate u (a pixel
// centre): 1 inside the core, ramping to 0 over ±blend around each inner
// core edge.
func (sp span) weight(u, blend float64, n int) float64 {
	w := 1.0
	if sp.c0 > 0 {
		w *= math.Min(1, math.Max(0, (u-(float64(sp.c0)-blend))/(2*blend)))
	}
	if sp.c1 < n {
		w *= math.Min(1, math.Max(0, ((float64(sp.c1)+blend)-u)/(2*blend)))
	}
	return w
}

// mask is the window's core mask [1, h, w].
func coreMask(y, x span, h, w int) *tensors.Tensor {
	m := make([]float32, h*w)
	for i := y.c0 - y.a0; i < y.c1-y.a0; i++ {
		for j := x.c0 - x.a0; j < x.c1-x.a0; j++ {
			m[i*w+j] = 1
		}
	}
	return tensors.FromFlatDataAndDimensions(m, 1, h, w)
}

// window copies rows [y0, y0+h) and columns [x0, x0+w) of NHWC x, with the
// pixel coordinates scaled by s.
func window(x []float32, dims []int, y0, x0, h, w int) []float32 {
	b, H, W, c := dims[0], dims[1], dims[2], dims[3]
	out := make([]float32, 0, b*h*w*c)
	for n := range b {
		for i := y0; i < y0+h; i++ {
			row := ((n*H+i)*W + x0) * c
			out = append(out, x[row:row+w*c]...)
		}
	}
	return out
}

// tiledExec returns (building once) the executor of a tiled stage; given
// selects the variant that reads statistics.
func (m *AutoencoderKL) tiledExec(name string, build func() (*context.Exec, error)) (*context.Exec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.tiled[name]; e != nil {
		return e, nil
	}
	e, err := build()
	if err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	if m.tiled == nil {
		m.tiled = map[string]*context.Exec{}
	}
	m.tiled[name] = e
	return e, nil
}

func (m *AutoencoderKL) stageExecs(prefix string, stage func(mod module, x *Node) *Node) (local, given *context.Exec, err error) {
	b, err := m.backend()
	if err != nil {
		return nil, nil, err
	}
	cfg := m.Config
	mod := func(ctx *context.Context, p *normPlan) module {
		r := root(ctx, cfg, nil)
		r.norms = p
		return r
	}
	ctx := m.Ctx
	if m.loaded {
		ctx = ctx.Reuse()
	}
	if local, err = m.tiledExec(prefix+"/local", func() (*context.Exec, error) {
		return context.NewExec(b, ctx, func(ctx *context.Context, x, mask *Node) []*Node {
			p := &normPlan{mask: mask}
			return []*Node{stage(mod(ctx, p), x), p.gathered()}
		})
	}); err != nil {
		return nil, nil, err
	}
	given, err = m.tiledExec(prefix+"/given", func() (*context.Exec, error) {
		return context.NewExec(b, ctx, func(ctx *context.Context, x, mask, stats *Node) []*Node {
			p := &normPlan{mask: mask, stats: stats}
			return []*Node{stage(mod(ctx, p), x), p.gathered()}
		})
	})
	return local, given, err
}

// tiledStage runs a local stage over x (NHWC at scale in times the latent
// resolution; the latent grid is h×w) tile by tile and returns its output
// (NHWC, scale out times the latent resolution) with the cross-fade applied.
func (m *AutoencoderKL) tiledStage(prefix string, stage func(mod module, x *Node) *Node, x []float32, dims []int, in, out int, o TileOptions) ([]float32, []int, error) {
	local, given, err := m.stageExecs(prefix, stage)
	if err != nil {
		return nil, nil, err
	}
	h, w := dims[1]/in, dims[2]/in
	exec := func(e *context.Exec, args ...any) (res []*tensors.Tensor, err error) {
		err = nn.Try(func() { res = e.MustExec(args...) })
		return res, err
	}
	ys, hs := tiles(h, o.Tile, o.Halo)
	xs, ws := tiles(w, o.Tile, o.Halo)
	// The statistics: exact from one whole-image pass when the input is
	// small enough, else estimated by a pass over the tiles in which each
	// GroupNorm normalises by its own tile (diffusers' tiling), keeping the
	// statistics of the cores.
	var stats groupStats
	if max(h, w) <= o.StatsSize {
		res, err := exec(local, tensors.FromFlatDataAndDimensions(x, dims...), coreMask(span{0, h, 0}, span{0, w, 0}, h, w))
		if err != nil {
			return nil, nil, fmt.Errorf("vae tiled statistics: %w", err)
		}
		stats.add(nn.Values(res[1]), res[1].Shape().Dimensions)
	} else {
		for _, ty := range ys {
			for _, tx := range xs {
				win := window(x, dims, ty.a0*in, tx.a0*in, hs*in, ws*in)
				res, err := exec(local, tensors.FromFlatDataAndDimensions(win, dims[0], hs*in, ws*in, dims[3]), coreMask(ty, tx, hs, ws))
				if err != nil {
					return nil, nil, fmt.Errorf("vae tile at latent (%d, %d): %w", ty.a0, tx.a0, err)
				}
				stats.add(nn.Values(res[1]), res[1].Shape().Dimensions)
			}
		}
	}

	var acc, wsum []float32
	var odims []int
	for pass := 0; pass <= o.Refine; pass++ {
		final := pass == o.Refine
		st := stats.tensor()
		var next groupStats
		for _, ty := range ys {
			for _, tx := range xs {
				win := window(x, dims, ty.a0*in, tx.a0*in, hs*in, ws*in)
				res, err := exec(given, tensors.FromFlatDataAndDimensions(win, dims[0], hs*in, ws*in, dims[3]), coreMask(ty, tx, hs, ws), st)
				if err != nil {
					return nil, nil, fmt.Errorf("vae tile at latent (%d, %d): %w", ty.a0, tx.a0, err)
				}
				next.add(nn.Values(res[1]), res[1].Shape().Dimensions)
				if !final {
					continue
				}
				y := nn.Values(res[0])
				yd := res[0].Shape().Dimensions
				c := yd[3]
				if acc == nil {
					odims = []int{dims[0], h * out, w * out, c}
					acc = make([]float32, dims[0]*h*out*w*out*c)
					wsum = make([]float32, h*out*w*out)
				}
				for n := range dims[0] {
					for i := range yd[1] {
						gy := ty.a0*out + i
						wy := ty.weight((float64(gy)+0.5)/float64(out), o.Blend, h)
						if wy == 0 {
							continue
						}
						for j := range yd[2] {
							gx := tx.a0*out + j
							wt := wy * tx.weight((float64(gx)+0.5)/float64(out), o.Blend, w)
							if wt == 0 {
								continue
							}
							src := ((n*yd[1]+i)*yd[2] + j) * c
							dst := ((n*h*out+gy)*w*out + gx) * c
							for ch := range c {
								acc[dst+ch] += float32(wt) * y[src+ch]
							}
							if n == 0 {
								wsum[gy*w*out+gx] += float32(wt)
							}
						}
					}
				}
			}
		}
		stats = next
	}
	c := odims[3]
	for n := range odims[0] {
		for i, ws := range wsum {
			for ch := range c {
				acc[(n*len(wsum)+i)*c+ch] /= ws
			}
		}
	}
	return acc, odims, nil
}

// DecodeTiled is DecodeRun in tiles (see TileOptions): the same images
// within the GroupNorm statistics' estimate, with memory bounded by the tile
// size rather than the image size.
func (m *AutoencoderKL) DecodeTiled(z []float32, shape []int, o TileOptions) ([]float32, []int, error) {
	if err := checkInput("latents", z, shape, m.Config.LatentChannels); err != nil {
		return nil, nil, err
	}
	cfg := m.Config
	o = o.withDefaults(haloFor(cfg.decoderTailReach()))
	head, err := m.tiledExec("decode/head", func() (*context.Exec, error) {
		b, err := m.backend()
		if err != nil {
			return nil, err
		}
		ctx := m.Ctx
		if m.loaded {
			ctx = ctx.Reuse()
		}
		return context.NewExec(b, ctx, func(ctx *context.Context, z *Node) *Node {
			r := root(ctx, cfg, nil)
			x := TransposeAllDims(z, 0, 2, 3, 1)
			if cfg.UsePostQuantConv {
				x = nn.Conv2D(r.in("post_quant_conv").ctx, x, nn.Conv2DOpts{Out: cfg.LatentChannels, Kernel: 1})
			}
			return decoderHead(r.in("decoder"), cfg, x)
		})
	})
	if err != nil {
		return nil, nil, err
	}
	var feat []float32
	var fdims []int
	if err := nn.Try(func() {
		r := head.MustExec(tensors.FromFlatDataAndDimensions(z, shape...))[0]
		feat, fdims = nn.Values(r), r.Shape().Dimensions
	}); err != nil {
		return nil, nil, fmt.Errorf("vae tiled decode of %v: %w", shape, err)
	}
	f := cfg.DownsampleFactor()
	img, idims, err := m.tiledStage("decode/tail", func(mod module, x *Node) *Node {
		return decoderTail(mod.in("decoder"), cfg, x)
	}, feat, fdims, 1, f, o)
	if err != nil {
		return nil, nil, err
	}
	return nn.NHWCToNCHW(img, idims[0], idims[1], idims[2], idims[3]), []int{idims[0], idims[3], idims[1], idims[2]}, nil
}

// EncodeTiled is EncodeRun in tiles (see TileOptions). The image sides must
// be multiples of the downsampling factor.
func (m *AutoencoderKL) EncodeTiled(image []float32, shape []int, o TileOptions) ([]float32, []int, error) {
	if err := checkInput("image", image, shape, m.Config.InChannels); err != nil {
		return nil, nil, err
	}
	cfg := m.Config
	f := cfg.DownsampleFactor()
	if shape[2]%f != 0 || shape[3]%f != 0 {
		return nil, nil, fmt.Errorf("vae: tiled encoding needs sides that are multiples of %d, not %dx%d", f, shape[3], shape[2])
	}
	o = o.withDefaults(haloFor(cfg.encoderTailReach()))
	x := nn.NCHWToNHWC(image, shape[0], shape[1], shape[2], shape[3])
	feat, fdims, err := m.tiledStage("encode/tail", func(mod module, x *Node) *Node {
		return encoderTail(mod.in("encoder"), cfg, x)
	}, x, []int{shape[0], shape[2], shape[3], shape[1]}, f, 1, o)
	if err != nil {
		return nil, nil, err
	}
	head, err := m.tiledExec("encode/head", func() (*context.Exec, error) {
		b, err := m.backend()
		if err != nil {
			return nil, err
		}
		ctx := m.Ctx
		if m.loaded {
			ctx = ctx.Reuse()
		}
		return context.NewExec(b, ctx, func(ctx *context.Context, x *Node) *Node {
			r := root(ctx, cfg, nil)
			x = encoderHead(r.in("encoder"), cfg, x)
			if cfg.UseQuantConv {
				x = nn.Conv2D(r.in("quant_conv").ctx, x, nn.Conv2DOpts{Out: 2 * cfg.LatentChannels, Kernel: 1})
			}
			return TransposeAllDims(x, 0, 3, 1, 2)
		})
	})
	if err != nil {
		return nil, nil, err
	}
	var out []float32
	var odims []int
	if err := nn.Try(func() {
		r := head.MustExec(tensors.FromFlatDataAndDimensions(feat, fdims...))[0]
		out, odims = nn.Values(r), r.Shape().Dimensions
	}); err != nil {
		return nil, nil, fmt.Errorf("vae tiled encode of %v: %w", shape, err)
	}
	return out, odims, nil
}

// DecodePeakBytes estimates the memory a decode of b latents of h×w takes,
// whole or tiled (with default TileOptions), for callers that keep a memory
// budget. It scales the largest activation of the pass by a factor measured
// on the pure-Go backend (docs/PERFORMANCE.md).
func (m *AutoencoderKL) DecodePeakBytes(b, h, w int, tiled bool) int64 {
	cfg := m.Config
	if tiled {
		o := TileOptions{}.withDefaults(haloFor(cfg.decoderTailReach()))
		th, tw := min(h, o.Tile+2*o.Halo), min(w, o.Tile+2*o.Halo)
		head := peakFactor * int64(b*h*w*cfg.BlockOutChannels[len(cfg.BlockOutChannels)-1]*4)
		maps := int64(b*h*w*cfg.BlockOutChannels[len(cfg.BlockOutChannels)-1]*4) + 2*int64(b*h*w*cfg.DownsampleFactor()*cfg.DownsampleFactor()*cfg.OutChannels*4)
		return max(head, m.wholePeak(b, th, tw)) + maps + m.weightBytes()
	}
	return m.wholePeak(b, h, w) + m.weightBytes()
}

// peakFactor is the ratio of a decode's peak RSS to its largest activation
// on the pure-Go backend: SD's VAE at 512² peaks at 5.8 GB with Go's default
// GOGC (2.6 GB with GOGC=25) for a 268 MB largest activation
// (docs/PERFORMANCE.md, "VAE decode memory at 512²").
const peakFactor = 21

func (m *AutoencoderKL) wholePeak(b, h, w int) int64 {
	ch := m.Config.BlockOutChannels
	n := len(ch)
	largest := int64(0)
	for i := range n {
		s := int64(1) << i
		act := int64(b) * int64(h) * s * int64(w) * s * int64(ch[n-1-i]) * 4
		if i < n-1 { // the upsampler's output, at the next resolution
			act *= 4
		}
		largest = max(largest, act)
	}
	return peakFactor * largest
}

func (m *AutoencoderKL) weightBytes() int64 {
	var n int64
	for _, ch := range m.Config.BlockOutChannels {
		n += int64(ch) * int64(ch) * 9 * 2 * int64(2*m.Config.LayersPerBlock+1)
	}
	return n * 4
}
