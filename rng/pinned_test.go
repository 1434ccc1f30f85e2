package rng

import (
	"hash/fnv"
	"math"
	"testing"
)

// Pinned first normals of the Philox stream (float32 bits). They are the
// stability promise and must never change. Seed 0's first pair was also
// checked by hand from the published block (6627e8d5 e169c58d bc57ac4c
// 9b00dbd8) with Python's libm.
var (
	pinnedSeed0   = []uint32{0xbdb949f0, 0xbf80a829, 0xbf6c805b, 0xc020d43c, 0x3e006f6f, 0x3e1d2533, 0xbfb24a80, 0xbf89a29c}
	pinnedSeed42  = []uint32{0x3f9e0577, 0x3f1ca233, 0xc03d1f98, 0xbe8488d9, 0xbfbf29f1, 0xbf8ffd15, 0xbfb140d9, 0xbf55e30a}
	pinnedSeedBig = []uint32{0x3f27e67d, 0xbdeba97c, 0x3d65e058, 0xbe7ece59, 0xbfa94d64, 0x3cf4c7bd, 0x3ece486d, 0x3f6341b2}
)

// pinnedLatentFNV is the FNV-1a 64 hash of the little-endian float32 bits of
// the first 4×64×64 normals of seed 1 (a 512×512 latent), cross-checked
// against an independent Python implementation using its libm.
const pinnedLatentFNV = 0x1765b8cfb5b74b50

func TestPhiloxPinnedLatent(t *testing.T) {
	x := make([]float32, 4*64*64)
	NewPhilox(1).Normal(x)
	h := fnv.New64a()
	var b [4]byte
	for _, v := range x {
		u := math.Float32bits(v)
		b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		h.Write(b[:])
	}
	if got := h.Sum64(); got != pinnedLatentFNV {
		t.Errorf("seed 1 latent hash %#016x, want %#016x", got, uint64(pinnedLatentFNV))
	}
}
