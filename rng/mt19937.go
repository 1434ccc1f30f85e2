package rng

// mt19937 is the 32-bit Mersenne Twister (Matsumoto & Nishimura, 1998) as
// seeded by PyTorch's CPU generator: the classic init_genrand recurrence on the
// low 32 bits of the seed. Its outputs are those of std::mt19937 for the same
// 32-bit seed.
type mt19937 struct {
	state [mtN]uint32
	pos   int // index of the next state word to temper; mtN means "regenerate first"
}

const (
	mtN       = 624
	mtM       = 397
	mtMatrixA = 0x9908b0df
	mtUpper   = 0x80000000
	mtLower   = 0x7fffffff
)

func (m *mt19937) seed(s uint64) {
	m.state[0] = uint32(s)
	for i := 1; i < mtN; i++ {
		prev := m.state[i-1]
		m.state[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	m.pos = mtN
}

// regenerate replaces the whole state block (the "twist"), in place: word i
// becomes state[i+M] ^ twist(state[i], state[i+1]) with indices mod N, where
// words below i are already new.
func (m *mt19937) regenerate() {
	s := &m.state
	twist := func(u, v uint32) uint32 {
		y := u&mtUpper | v&mtLower
		return y>>1 ^ -(v&1)&mtMatrixA
	}
	i := 0
	for ; i < mtN-mtM; i++ {
		s[i] = s[i+mtM] ^ twist(s[i], s[i+1])
	}
	for ; i < mtN-1; i++ {
		s[i] = s[i+mtM-mtN] ^ twist(s[i], s[i+1])
	}
	s[mtN-1] = s[mtM-1] ^ twist(s[mtN-1], s[0])
	m.pos = 0
}

// temper is MT19937's output transform.
func temper(y uint32) uint32 {
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	return y ^ y>>18
}

// next returns the next tempered 32-bit output.
func (m *mt19937) next() uint32 {
	if m.pos >= mtN {
		m.regenerate()
	}
	y := m.state[m.pos]
	m.pos++
	return temper(y)
}

// fill24 stores (x mod 2^24)/2^24 for successive outputs x into dst: the
// float32 uniforms of PyTorch.
func (m *mt19937) fill24(dst []float32) {
	for len(dst) > 0 {
		if m.pos >= mtN {
			m.regenerate()
		}
		words := m.state[m.pos:]
		k := min(len(words), len(dst))
		for i, w := range words[:k] {
			dst[i] = float32(temper(w)&(1<<24-1)) * (1.0 / (1 << 24))
		}
		m.pos += k
		dst = dst[k:]
	}
}

// next64 returns two outputs joined, the first in the high half (PyTorch's
// random64).
func (m *mt19937) next64() uint64 {
	hi := uint64(m.next())
	return hi<<32 | uint64(m.next())
}
