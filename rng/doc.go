// Package rng holds the seeded noise generators of ldm: the initial latent
// noise, the VAE posterior sample and the per-step noise of ancestral and
// DDPM-style samplers all come from a Source seeded per image
// (AUTOMATIC1111's convention: image i of a batch seeded s gets seed s+i,
// see SeedForImage; seed −1 means RandomSeed).
//
// Two generators are provided; New picks one by name.
//
// # Philox ("philox", the default)
//
// Our own generator, defined exactly below so that any implementation (Go,
// Python, a GPU kernel) can reproduce it. Its output for a given seed is a
// stability promise: it will not change between ldm versions, and it does
// not depend on the platform, the Go version or the compute backend.
//
// Bits. Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random
// numbers: as easy as 1, 2, 3", SC'11; the Random123 library), with
// multipliers 0xD2511F53, 0xCD9E8D57 and key increments 0x9E3779B9,
// 0xBB67AE85, ten rounds, the key bumped before every round but the first.
// The key is (k0, k1) = (seed mod 2^32, seed div 2^32). Block n = 0, 1, 2, …
// is the output (x0, x1, x2, x3) of the bijection at counter
// (n mod 2^32, n div 2^32, 0, 0).
//
// Normals. Block n gives two normals. With a = 2^32·x0 + x1 and
// b = 2^32·x2 + x3 (64-bit), ma = a >> 11 and mb = b >> 11 (53 bits each):
//
//	u1 = (2^53 − ma) / 2^53          in (0, 1], exact in float64
//	r  = sqrt(−2·ln u1)              float64
//	θ  = 2π·mb / 2^53                (never formed: see below)
//	z0 = float32(r·cos θ), z1 = float32(r·sin θ)
//
// and the normal stream is z0, z1 of block 0, then of block 1, and so on.
// ln, sin and cos are evaluated in float64 by this package's own routines
// (stablemath.go) using only separately rounded +, −, ×, ÷ and IEEE sqrt:
// ln after fdlibm's e_log.c; sin and cos with the exact octant reduction
// o = mb >> 50, g = (mb mod 2^50)/2^50 (minus 1 for odd o), t = g·π/4,
// then fdlibm's k_sin.c/k_cos.c kernels on t and the quadrant rotation. So
// every platform produces the same bits. An implementation that uses a
// libm instead reproduces the float32 values except, very rarely (about
// one value in 10^8), a difference in the last bit.
//
// Uniforms. Block n gives four float32 uniforms in [0, 1):
// float32(xj >> 8)/2^24 for j = 0..3.
//
// Calls. Normal and Uniform take fresh blocks from one counter, in order;
// the unused second normal (or unused uniforms) of the last block are kept
// and returned first by the next call of the same kind. Hence the normal
// sequence does not depend on how it is split into Normal calls.
//
// # TorchCPU ("torch", alias "cpu")
//
// PyTorch's CPU generator, reproduced bit for bit: the values of
//
//	g = torch.Generator().manual_seed(seed)
//	torch.randn(shape, generator=g)            # float32, CPU
//
// and of further draws from the same g, so that a seed gives the same
// initial noise — hence the same image — as diffusers and ComfyUI (and
// AUTOMATIC1111's CPU RNG option) generating noise on the CPU. Checked
// against torch 1.13 (golden kind torch_randn); the kernel sources are the
// same in the PyTorch 2.x releases we read.
//
// The engine is the 32-bit Mersenne Twister, initialised with init_genrand
// on the low 32 bits of the seed (so seeds equal mod 2^32 coincide).
// A float uniform uses one output: (x mod 2^24)/2^24; a double uniform
// uses two, x1 first as the high word: ((2^32·x1 + x2) mod 2^53)/2^53.
//
// torch.randn picks its algorithm from the element count n of each call:
//
//   - n < 16: each value is PyTorch's scalar normal_distribution<double>:
//     u1, u2 double uniforms, r = sqrt(−2·ln(1−u2)), θ = 2π·u1, return
//     r·cos θ rounded to float32 and cache r·sin θ (in the generator, not
//     the call) to be returned by the next scalar draw. manual_seed clears
//     the cache; the n ≥ 16 path neither uses nor clears it.
//   - n ≥ 16: n float uniforms are drawn into the output; each full chunk of
//     16 is transformed in place by Box–Muller pairing elements j and j+8
//     (u1 = 1 − d[j], u2 = d[j+8], d[j] = r·cos θ, d[j+8] = r·sin θ) in
//     float32; if n is not a multiple of 16, 16 more uniforms are drawn
//     into the last 16 elements, overwriting them, and that chunk is
//     transformed again. The float32 log/sin/cos are the Cephes-derived
//     avx_mathfun approximations of PyTorch's AVX2 kernel (used on every
//     x86-64 CPU with AVX2, including AVX-512 ones), with the fused
//     multiply-adds GCC generates for them.
//
// Consequently TorchCPU.Normal treats each call as one torch.randn call of
// len(dst) elements: splitting a draw into calls whose sizes are multiples
// of 16 gives the same values as one call, but any other split (or any
// call below 16) gives different values, exactly as in PyTorch.
//
// PyTorch builds without AVX2 (e.g. aarch64, Apple silicon CPU) use a scalar
// float32 kernel and their libm for n ≥ 16; their values agree with these to
// within an ulp or so but not bit for bit.
package rng
