package rng

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
)

// Source is a seeded stream of random numbers.
type Source interface {
	// Normal fills dst with N(0, 1) draws in order; consecutive calls
	// continue the stream.
	Normal(dst []float32)
	// Uniform fills dst with U[0, 1) draws in order, continuing the stream.
	Uniform(dst []float32)
}

// Generator kinds accepted by New.
const (
	KindPhilox = "philox" // the default: Philox4x32-10, portable and stable
	KindTorch  = "torch"  // PyTorch CPU generator, bit-exact torch.randn
)

// DefaultKind is the generator New picks for an empty kind.
const DefaultKind = KindPhilox

var (
	_ Source = (*Philox)(nil)
	_ Source = (*TorchCPU)(nil)
)

// New returns a generator of the given kind seeded with seed. Kinds (case
// insensitive): "philox" (also "" for the default) and "torch" (alias "cpu").
func New(kind string, seed uint64) (Source, error) {
	switch strings.ToLower(strings.TrimSpace(kind)) {
	case "", KindPhilox:
		return NewPhilox(seed), nil
	case KindTorch, "cpu":
		return NewTorchCPU(seed), nil
	}
	return nil, fmt.Errorf("rng: unknown generator %q: want %q (default, portable) or %q (alias %q, PyTorch CPU compatible)",
		kind, KindPhilox, KindTorch, "cpu")
}

// MaxRandomSeed is the largest seed RandomSeed returns (AUTOMATIC1111's seed
// range is 32-bit).
const MaxRandomSeed = 1<<32 - 1

// RandomSeed returns a fresh seed in [0, 2^32−1] from crypto/rand, for the
// "seed −1" (random) convention.
func RandomSeed() uint64 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("rng: crypto/rand: " + err.Error()) // crypto/rand.Read does not fail on supported platforms
	}
	return uint64(binary.LittleEndian.Uint32(b[:]))
}

// SeedForImage returns the seed of image i of a batch seeded with seed,
// following AUTOMATIC1111: seed+i (wrapping at 2^64).
func SeedForImage(seed uint64, i int) uint64 { return seed + uint64(i) }
