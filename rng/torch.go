package rng

import "math"

// TorchCPU reproduces PyTorch's CPU generator, torch.Generator() seeded with
// manual_seed, and the float32 results of torch.randn and torch.rand drawn
// from it. See the package documentation for the exact algorithm.
//
// A TorchCPU is not safe for concurrent use.
type TorchCPU struct {
	mt   mt19937
	seed uint64
	// PyTorch's generator caches the second Box–Muller output of its scalar
	// (double precision) normal sampler; size ≥ 16 float draws bypass it.
	cached    float64
	hasCached bool
}

// NewTorchCPU returns a generator in the state of
// torch.Generator().manual_seed(seed). Only the low 32 bits of the seed reach
// the Mersenne Twister, as in PyTorch.
func NewTorchCPU(seed uint64) *TorchCPU {
	g := &TorchCPU{}
	g.Seed(seed)
	return g
}

// Seed resets the generator as manual_seed(seed) does, dropping any cached
// normal value.
func (g *TorchCPU) Seed(seed uint64) {
	g.mt.seed(seed)
	g.seed = seed
	g.hasCached = false
	g.cached = 0
}

// InitialSeed returns the seed last given (torch.Generator.initial_seed).
func (g *TorchCPU) InitialSeed() uint64 { return g.seed }

// torchFillThreshold is the element count from which PyTorch's CPU normal_
// kernel switches from the scalar sampler to the vectorised 16-wide fill.
const torchFillThreshold = 16

// Randn returns torch.randn(n) as float32: one torch.randn call of n
// elements, whatever the shape (only the element count matters).
func (g *TorchCPU) Randn(n int) []float32 {
	dst := make([]float32, n)
	g.Normal(dst)
	return dst
}

// Normal fills dst with the values of one torch.randn call of len(dst)
// elements (any shape with that many elements, contiguous float32), then
// leaves the generator where PyTorch's would be. The call boundary matters:
// PyTorch picks its algorithm from the element count of each call, so
// drawing n values as two calls gives the same numbers as one call only when
// both sizes are multiples of 16 (see the package documentation).
func (g *TorchCPU) Normal(dst []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	if n < torchFillThreshold {
		for i := range dst {
			dst[i] = float32(g.normal64())
		}
		return
	}
	g.fillUniform24(dst)
	for i := 0; i+16 <= n; i += 16 {
		boxMuller16(dst[i : i+16])
	}
	if n%16 != 0 {
		tail := dst[n-16:]
		g.fillUniform24(tail)
		boxMuller16(tail)
	}
}

// Uniform fills dst with the values of one torch.rand call of len(dst)
// elements: U[0,1) float32 with 24 random bits each.
func (g *TorchCPU) Uniform(dst []float32) { g.fillUniform24(dst) }

// Float64 returns one U[0,1) double as torch draws it (53 random bits from two
// 32-bit outputs).
func (g *TorchCPU) Float64() float64 { return g.uniform53() }

// Uint32 returns the next raw Mersenne Twister output (generator.random()).
func (g *TorchCPU) Uint32() uint32 { return g.mt.next() }

func (g *TorchCPU) fillUniform24(dst []float32) {
	g.mt.fill24(dst)
}

func (g *TorchCPU) uniform53() float64 {
	return float64(float64(g.mt.next64()&(1<<53-1)) * (1.0 / (1 << 53)))
}

// normal64 is PyTorch's scalar normal_distribution<double>: Box–Muller on two
// 53-bit uniforms, returning r·cos θ and caching r·sin θ for the next call.
func (g *TorchCPU) normal64() float64 {
	if g.hasCached {
		g.hasCached = false
		return g.cached
	}
	u1 := g.uniform53()
	u2 := g.uniform53()
	r := math.Sqrt(-2 * math.Log(1-u2)) // 1−u2 is exact; torch 1.13 writes log(1−u2), later log1p(−u2)
	theta := 2 * math.Pi * u1
	s, c := math.Sincos(theta)
	g.cached, g.hasCached = r*s, true
	return r * c
}
