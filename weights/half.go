package weights

import "math"

// HalfToFloat32 converts an IEEE 754 binary16 value (exact).
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise the mantissa
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToHalf converts to IEEE 754 binary16 with round-to-nearest-even, as
// PyTorch's tensor.half() does: values beyond the half range become ±Inf,
// tiny ones become subnormals or ±0, NaN stays NaN.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13) // quiet NaN, keep payload bits
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign // below half of the smallest subnormal
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		h := m >> shift
		rem, halfway := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > halfway || (rem == halfway && h&1 == 1) {
			h++ // may carry into the smallest normal, which is the right encoding
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is correct, up to Inf
	}
	return sign | uint16(h)
}

// BF16ToFloat32 converts a bfloat16 value (exact).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 converts to bfloat16 with round-to-nearest-even.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: truncating could make it Inf
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// f8e4m3ToFloat32 converts float8 E4M3FN (no infinities; S.1111.111 is NaN).
func f8e4m3ToFloat32(v byte) float32 {
	sign := float32(1)
	if v&0x80 != 0 {
		sign = -1
	}
	exp, mant := int(v>>3)&0xf, float64(v&7)
	switch {
	case exp == 0xf && v&7 == 7:
		return float32(math.NaN())
	case exp == 0:
		return sign * float32(math.Ldexp(mant/8, -6))
	}
	return sign * float32(math.Ldexp(1+mant/8, exp-7))
}

// f8e5m2ToFloat32 converts float8 E5M2, which is the top byte of a binary16.
func f8e5m2ToFloat32(v byte) float32 { return HalfToFloat32(uint16(v) << 8) }
