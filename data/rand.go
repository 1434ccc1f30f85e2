package data

import "math/bits"

// The loader's randomness is counter-based: every draw is a pure function of
// (seed, epoch, item, purpose). A saved position (epoch, index) therefore
// restores the random state exactly, prefetching workers need no shared
// generator, and the results do not depend on the Go version (math/rand makes
// no such promise for Shuffle).

// splitmix64 is Steele, Lea & Flood's SplitMix64 finaliser (Java 8's
// SplittableRandom), a full-period 64-bit generator.
type splitmix64 struct{ s uint64 }

func (r *splitmix64) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a uniform integer in [0, n) (Lemire's multiply-shift with
// rejection, so there is no modulo bias).
func (r *splitmix64) intn(n int) int {
	if n <= 1 {
		return 0
	}
	bound := uint64(n)
	threshold := -bound % bound
	for {
		hi, lo := bits.Mul64(r.next(), bound)
		if lo >= threshold {
			return int(hi)
		}
	}
}

// float64 returns a uniform number in [0, 1) with 53 random bits.
func (r *splitmix64) float64() float64 { return float64(r.next()>>11) / (1 << 53) }

// newRand seeds a generator from a tuple of integers.
func newRand(keys ...uint64) *splitmix64 {
	r := &splitmix64{s: 0x6c646d2d64617461} // "ldm-data"
	for _, k := range keys {
		r.s ^= k
		r.s = r.next()
	}
	return r
}

// Purposes keep the streams of different decisions apart.
const (
	purposeShuffle uint64 = iota + 1
	purposeSample
	purposeShapes
	purposeSplit
)

// permutation is epoch's visiting order of n items (Fisher–Yates).
func permutation(n int, seed uint64, epoch int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r := newRand(purposeShuffle, seed, uint64(epoch))
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
