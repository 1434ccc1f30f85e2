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

// regenerate replaces the whole state block (the "twist").
func (m *mt19937) regenerate() {
	s := &m.state
	for i := 0; i < mtN; i++ {
		y := s[i]&mtUpper | s[(i+1)%mtN]&mtLower
		v := s[(i+mtM)%mtN] ^ y>>1
		if y&1 != 0 {
			v ^= mtMatrixA
		}
		s[i] = v
	}
	m.pos = 0
}

// next returns the next tempered 32-bit output.
func (m *mt19937) next() uint32 {
	if m.pos >= mtN {
		m.regenerate()
	}
	y := m.state[m.pos]
	m.pos++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// next64 returns two outputs joined, the first in the high half (PyTorch's
// random64).
func (m *mt19937) next64() uint64 {
	hi := uint64(m.next())
	return hi<<32 | uint64(m.next())
}
