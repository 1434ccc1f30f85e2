package weights

import (
	"math"
	"testing"
)

func TestFloat32ToHalfIsExactOnHalves(t *testing.T) {
	for h := range 1 << 16 {
		f := HalfToFloat32(uint16(h))
		if f != f { // NaN: any NaN back is fine
			if g := Float32ToHalf(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x → %#04x, not a NaN", h, g)
			}
			continue
		}
		if g := Float32ToHalf(f); g != uint16(h) {
			t.Fatalf("%#04x → %g → %#04x", h, f, g)
		}
	}
}

// Every midpoint between two neighbouring halves rounds to the even one, and
// anything off the midpoint to the nearer one.
func TestFloat32ToHalfRoundsToNearestEven(t *testing.T) {
	for h := range 0x7c00 - 1 { // positive finite halves and their successor
		lo, hi := HalfToFloat32(uint16(h)), HalfToFloat32(uint16(h+1))
		mid := float32((float64(lo) + float64(hi)) / 2) // exact in float32
		even := uint16(h)
		if h&1 == 1 {
			even = uint16(h + 1)
		}
		if got := Float32ToHalf(mid); got != even {
			t.Fatalf("midpoint of %#04x and %#04x → %#04x, want %#04x", h, h+1, got, even)
		}
		if got := Float32ToHalf(math.Nextafter32(mid, 0)); got != uint16(h) {
			t.Fatalf("just below the midpoint of %#04x → %#04x", h, got)
		}
		if got := Float32ToHalf(math.Nextafter32(mid, float32(math.Inf(1)))); got != uint16(h+1) {
			t.Fatalf("just above the midpoint of %#04x → %#04x", h, got)
		}
		if got := Float32ToHalf(-mid); got != even|0x8000 {
			t.Fatalf("negative midpoint of %#04x → %#04x", h, got)
		}
	}
}

func TestFloat32ToHalfEdges(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},                 // largest half
		{65519.996, 0x7bff},             // below the rounding boundary
		{65520, 0x7c00},                 // the midpoint to 2^16 rounds to even: Inf
		{1e10, 0x7c00},                  // overflow
		{float32(math.Inf(-1)), 0xfc00}, // -Inf
		{0x1p-24, 0x0001},               // smallest subnormal
		{0x1p-25, 0x0000},               // its half: ties to even (zero)
		{0x1.000002p-25, 0x0001},        // just above that half
		{0x1p-14, 0x0400},               // smallest normal
		{0x1.ffcp-15, 0x0400},           // tie above the largest subnormal rounds up into the smallest normal
		{1e-10, 0x0000},
	}
	for _, tt := range tests {
		if got := Float32ToHalf(tt.in); got != tt.want {
			t.Errorf("Float32ToHalf(%g) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
}

func TestFloat32ToBF16RoundsToNearestEven(t *testing.T) {
	tests := []struct {
		in   uint32 // float32 bits
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0x7f7fffff, 0x7f80}, // max float rounds to Inf
		{0x7fc00001, 0x7fc0}, // NaN stays NaN
		{0x7f800001, 0x7fc0}, // signalling NaN does not become Inf
	}
	for _, tt := range tests {
		if got := Float32ToBF16(math.Float32frombits(tt.in)); got != tt.want {
			t.Errorf("Float32ToBF16(%#08x) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
}

func TestFloat8Conversions(t *testing.T) {
	tests := []struct {
		dt   DType
		in   byte
		want float32
	}{
		{"F8_E4M3", 0x38, 1},
		{"F8_E4M3", 0xb8, -1},
		{"F8_E4M3", 0x7e, 448}, // largest finite E4M3FN
		{"F8_E4M3", 0x01, 0x1p-9},
		{"F8_E5M2", 0x3c, 1},
		{"F8_E5M2", 0x7b, 57344},
		{"F8_E5M2", 0x7c, float32(math.Inf(1))},
	}
	for _, tt := range tests {
		got, err := ToFloat32([]byte{tt.in}, tt.dt)
		if err != nil || got[0] != tt.want {
			t.Errorf("%s %#02x = %v %v, want %g", tt.dt, tt.in, got, err, tt.want)
		}
	}
	if got, _ := ToFloat32([]byte{0x7f}, "F8_E4M3"); got[0] == got[0] {
		t.Errorf("E4M3 0x7f = %g, want NaN", got[0])
	}
}
