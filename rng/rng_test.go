package rng

import (
	"math"
	"strings"
	"testing"
)

// Random123's published known-answer vectors for Philox4x32-10
// (Random123 distribution, tests/kat_vectors: counter, key → output).
func TestPhiloxKnownAnswers(t *testing.T) {
	cases := []struct {
		ctr  [4]uint32
		key  [2]uint32
		want [4]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0},
			[4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff},
			[4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0},
			[4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	}
	for _, c := range cases {
		if got := philox4x32(c.ctr, c.key); got != c.want {
			t.Errorf("philox4x32(%08x, %08x) = %08x, want %08x", c.ctr, c.key, got, c.want)
		}
	}
}

// The Philox stream is pinned: these values are part of the stability
// promise and must never change.
func TestPhiloxPinnedStream(t *testing.T) {
	g := NewPhilox(0)
	// Block 0 of seed 0 is the first known-answer vector above.
	x := g.next()
	if x != [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8} {
		t.Fatalf("block 0 of seed 0 = %08x", x)
	}
	for _, tc := range []struct {
		seed uint64
		want []uint32 // float32 bits of the first normals
	}{
		{0, pinnedSeed0},
		{42, pinnedSeed42},
		{1<<63 - 1, pinnedSeedBig},
	} {
		got := make([]float32, len(tc.want))
		NewPhilox(tc.seed).Normal(got)
		for i := range got {
			if math.Float32bits(got[i]) != tc.want[i] {
				t.Errorf("seed %d normal %d = %v (%#08x), want %#08x", tc.seed, i, got[i], math.Float32bits(got[i]), tc.want[i])
			}
		}
	}
}

// Mean and variance of 10^6 draws within 4σ of N(0,1) (and U[0,1)).
func TestMoments(t *testing.T) {
	const n = 1 << 20
	buf := make([]float32, n)
	check := func(t *testing.T, x []float32, mean, variance, fourth float64) {
		t.Helper()
		var s, s2 float64
		for _, v := range x {
			s += float64(v)
		}
		m := s / float64(len(x))
		for _, v := range x {
			d := float64(v) - m
			s2 += d * d
		}
		vr := s2 / float64(len(x)-1)
		seMean := math.Sqrt(variance / float64(len(x)))
		seVar := math.Sqrt((fourth - variance*variance) / float64(len(x)))
		if math.Abs(m-mean) > 4*seMean {
			t.Errorf("mean %.5f, want %.5f ± %.5f", m, mean, 4*seMean)
		}
		if math.Abs(vr-variance) > 4*seVar {
			t.Errorf("variance %.5f, want %.5f ± %.5f", vr, variance, 4*seVar)
		}
	}
	// N(0,1): E x^4 = 3. U[0,1): var 1/12, central 4th moment 1/80.
	t.Run("philox/normal", func(t *testing.T) { NewPhilox(7).Normal(buf); check(t, buf, 0, 1, 3) })
	t.Run("philox/uniform", func(t *testing.T) { NewPhilox(7).Uniform(buf); check(t, buf, 0.5, 1.0/12, 1.0/80) })
	t.Run("torch/normal-vectorised", func(t *testing.T) { NewTorchCPU(7).Normal(buf); check(t, buf, 0, 1, 3) })
	t.Run("torch/normal-scalar", func(t *testing.T) {
		g := NewTorchCPU(7)
		x := buf[:15*(n/15)]
		for i := 0; i < len(x); i += 15 {
			g.Normal(x[i : i+15])
		}
		check(t, x, 0, 1, 3)
	})
	t.Run("torch/uniform", func(t *testing.T) { NewTorchCPU(7).Uniform(buf); check(t, buf, 0.5, 1.0/12, 1.0/80) })
}

func TestSameSeedSameStream(t *testing.T) {
	for _, kind := range []string{"philox", "torch"} {
		a, _ := New(kind, 1234)
		b, _ := New(kind, 1234)
		c, _ := New(kind, 1235)
		for _, n := range []int{1, 7, 16, 100, 4096} {
			x, y, z := make([]float32, n), make([]float32, n), make([]float32, n)
			a.Normal(x)
			b.Normal(y)
			c.Normal(z)
			if !equalBits(x, y) {
				t.Errorf("%s: same seed, call of %d differs", kind, n)
			}
			if n >= 7 && equalBits(x, z) {
				t.Errorf("%s: seeds 1234 and 1235 gave the same %d values", kind, n)
			}
		}
	}
}

// Philox: the normal (and uniform) sequence is independent of call sizes.
func TestPhiloxSplitInvariant(t *testing.T) {
	const n = 101
	one := make([]float32, n)
	NewPhilox(9).Normal(one)
	for _, cut := range [][]int{{50, 51}, {1, 1, 99}, {3, 0, 7, 91}, {100, 1}} {
		g := NewPhilox(9)
		got := make([]float32, 0, n)
		for _, k := range cut {
			part := make([]float32, k)
			g.Normal(part)
			got = append(got, part...)
		}
		if !equalBits(got, one) {
			t.Errorf("normals split as %v differ from one call", cut)
		}
	}
	uOne := make([]float32, n)
	NewPhilox(9).Uniform(uOne)
	g := NewPhilox(9)
	var got []float32
	for _, k := range []int{1, 2, 5, 3, 90} {
		part := make([]float32, k)
		g.Uniform(part)
		got = append(got, part...)
	}
	if !equalBits(got, uOne) {
		t.Error("uniforms split into calls differ from one call")
	}
}

// TorchCPU: each Normal call is one torch.randn call. Splits into multiples
// of 16 match one call; other splits (and calls below 16) do not, as in
// PyTorch.
func TestTorchSplitBehaviour(t *testing.T) {
	split := func(seed uint64, parts ...int) []float32 {
		g := NewTorchCPU(seed)
		var out []float32
		for _, k := range parts {
			x := make([]float32, k)
			g.Normal(x)
			out = append(out, x...)
		}
		return out
	}
	if !equalBits(split(5, 64), split(5, 32, 32)) || !equalBits(split(5, 64), split(5, 16, 48)) {
		t.Error("splits into multiples of 16 should equal one call")
	}
	if equalBits(split(5, 40), split(5, 20, 20)) {
		t.Error("40 = 20+20 should differ from one call (tail recomputation)")
	}
	if equalBits(split(5, 20), split(5, 10, 10)) {
		t.Error("20 = 10+10 should differ from one call (scalar path below 16)")
	}
	// Scalar path: Box–Muller pairs span calls through the generator's cache,
	// so scalar draws are split-invariant among themselves.
	if !equalBits(split(5, 15), split(5, 4, 5, 6)) {
		t.Error("calls below 16 should continue the cached pair")
	}
	// A size-16+ call neither uses nor clears the cache.
	g := NewTorchCPU(5)
	a := make([]float32, 1)
	g.Normal(a) // leaves r·sin θ cached
	g.Normal(make([]float32, 32))
	b := make([]float32, 1)
	g.Normal(b)
	h := NewTorchCPU(5)
	ab := make([]float32, 2)
	h.Normal(ab)
	if math.Float32bits(b[0]) != math.Float32bits(ab[1]) {
		t.Error("cached normal did not survive a vectorised call")
	}
	// Randn is Normal into a new slice.
	if !equalBits(NewTorchCPU(3).Randn(50), split(3, 50)) {
		t.Error("Randn differs from Normal")
	}
}

// std::mt19937 (default seed 5489): the C++ standard fixes the 10000th output.
func TestMT19937(t *testing.T) {
	var m mt19937
	m.seed(5489)
	first := []uint32{3499211612, 581869302, 3890346734, 3586334585}
	for i, w := range first {
		if got := m.next(); got != w {
			t.Fatalf("output %d = %d, want %d", i, got, w)
		}
	}
	for i := len(first); i < 9999; i++ {
		m.next()
	}
	if got := m.next(); got != 4123659995 {
		t.Errorf("10000th output = %d, want 4123659995", got)
	}
	// PyTorch seeds with the low 32 bits only.
	a, b := NewTorchCPU(7), NewTorchCPU(7+1<<32)
	if a.Uint32() != b.Uint32() {
		t.Error("seeds equal mod 2^32 should coincide")
	}
	if NewTorchCPU(1<<63-1).InitialSeed() != 1<<63-1 {
		t.Error("InitialSeed")
	}
}

func TestNew(t *testing.T) {
	for kind, want := range map[string]string{"": "*rng.Philox", "philox": "*rng.Philox", "PHILOX": "*rng.Philox",
		"torch": "*rng.TorchCPU", "cpu": "*rng.TorchCPU", " Torch ": "*rng.TorchCPU"} {
		s, err := New(kind, 1)
		if err != nil {
			t.Fatalf("New(%q): %v", kind, err)
		}
		if got := typeName(s); got != want {
			t.Errorf("New(%q) = %s, want %s", kind, got, want)
		}
	}
	_, err := New("cuda", 1)
	if err == nil || !strings.Contains(err.Error(), `"philox"`) || !strings.Contains(err.Error(), `"torch"`) {
		t.Errorf("New(cuda) error %v should name both kinds", err)
	}
}

func TestRandomSeed(t *testing.T) {
	seen := map[uint64]bool{}
	for i := 0; i < 16; i++ {
		s := RandomSeed()
		if s > MaxRandomSeed {
			t.Fatalf("RandomSeed() = %d > 2^32−1", s)
		}
		seen[s] = true
	}
	if len(seen) < 2 {
		t.Error("RandomSeed returned the same value 16 times")
	}
	if SeedForImage(10, 3) != 13 || SeedForImage(math.MaxUint64, 1) != 0 {
		t.Error("SeedForImage")
	}
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func typeName(s Source) string {
	switch s.(type) {
	case *Philox:
		return "*rng.Philox"
	case *TorchCPU:
		return "*rng.TorchCPU"
	}
	return "?"
}

// Latent noise for a 512×512 image: 4×64×64 values per call.
func BenchmarkPhiloxNormal4x64x64(b *testing.B) {
	g := NewPhilox(1)
	x := make([]float32, 4*64*64)
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		g.Normal(x)
	}
}

func BenchmarkTorchNormal4x64x64(b *testing.B) {
	g := NewTorchCPU(1)
	x := make([]float32, 4*64*64)
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		g.Normal(x)
	}
}
