package rng

import (
	"math"
	"math/bits"
)

// Philox4x32-10 constants (Salmon et al., SC'11).
const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9 // golden ratio
	philoxW1 = 0xBB67AE85 // sqrt(3) − 1
)

// philox4x32 is the Philox4x32 bijection with 10 rounds: it maps a 128-bit
// counter to 128 random bits under a 64-bit key.
func philox4x32(ctr [4]uint32, key [2]uint32) [4]uint32 {
	c0, c1, c2, c3 := ctr[0], ctr[1], ctr[2], ctr[3]
	k0, k1 := key[0], key[1]
	for r := 0; r < 10; r++ {
		if r > 0 {
			k0 += philoxW0
			k1 += philoxW1
		}
		hi0, lo0 := bits.Mul32(philoxM0, c0)
		hi1, lo1 := bits.Mul32(philoxM1, c2)
		c0, c1, c2, c3 = hi1^c1^k0, lo1, hi0^c3^k1, lo0
	}
	return [4]uint32{c0, c1, c2, c3}
}

// Philox is the project's own documented, portable noise generator:
// Philox4x32-10 keyed by the seed, and Box–Muller in float64. The exact
// definition is in the package documentation; its output is a promise kept
// across versions, platforms and backends.
//
// Normals come in pairs from one 128-bit block and uniforms in fours; a value
// left over when a call ends is kept for the next call of the same kind, so
// the sequence of normals (or of uniforms) does not depend on how it is split
// into calls. Both kinds take fresh blocks from one counter.
//
// A Philox is not safe for concurrent use.
type Philox struct {
	key   [2]uint32
	seed  uint64
	block uint64 // next block index

	spareNormal float32
	hasNormal   bool
	spareUni    [3]float32
	nUni        int // pending uniforms, used from spareUni[3-nUni:]
}

// NewPhilox returns a Philox generator at the start of the stream for seed.
func NewPhilox(seed uint64) *Philox {
	return &Philox{key: [2]uint32{uint32(seed), uint32(seed >> 32)}, seed: seed}
}

// InitialSeed returns the seed the generator was made with.
func (p *Philox) InitialSeed() uint64 { return p.seed }

// Block returns the index of the next 128-bit block the generator will use.
func (p *Philox) Block() uint64 { return p.block }

func (p *Philox) next() [4]uint32 {
	n := p.block
	p.block++
	return philox4x32([4]uint32{uint32(n), uint32(n >> 32), 0, 0}, p.key)
}

// normalPair turns one block into two standard normals.
func normalPair(x [4]uint32) (z0, z1 float32) {
	a := uint64(x[0])<<32 | uint64(x[1])
	b := uint64(x[2])<<32 | uint64(x[3])
	u1 := float64(1<<53-(a>>11)) * (1.0 / (1 << 53)) // (0, 1], exact
	r := math.Sqrt(-2 * stableLog(u1))               // IEEE sqrt: correctly rounded everywhere
	s, c := sincosTurn(b >> 11)
	return float32(r * c), float32(r * s)
}

// Normal fills dst with standard normal draws, continuing the stream.
func (p *Philox) Normal(dst []float32) {
	i := 0
	if p.hasNormal && len(dst) > 0 {
		dst[0] = p.spareNormal
		p.hasNormal = false
		i = 1
	}
	for ; i+2 <= len(dst); i += 2 {
		dst[i], dst[i+1] = normalPair(p.next())
	}
	if i < len(dst) {
		dst[i], p.spareNormal = normalPair(p.next())
		p.hasNormal = true
	}
}

// Uniform fills dst with float32 draws in [0, 1), each the top 24 bits of one
// 32-bit output word, continuing the stream.
func (p *Philox) Uniform(dst []float32) {
	i := 0
	for ; i < len(dst) && p.nUni > 0; i++ {
		dst[i] = p.spareUni[3-p.nUni]
		p.nUni--
	}
	for i < len(dst) {
		x := p.next()
		for j := 0; j < 4; j++ {
			u := float32(x[j]>>8) * (1.0 / (1 << 24))
			if i < len(dst) {
				dst[i] = u
				i++
			} else {
				p.spareUni[j-1] = u
				p.nUni++
			}
		}
	}
}
