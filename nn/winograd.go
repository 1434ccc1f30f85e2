package nn

import (
	"log/slog"
	"os"
	"strconv"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// convWinogradMinChannels is the fewest input and output channels for which a
// 3×3 stride-1 convolution is computed with Winograd F(2×2,3×3) instead of
// im2col; 0 disables it. Measured on the SD VAE decoder's shapes (32²×512,
// 128²×256, 256²×128: 1.3–1.7× fewer CPU-seconds, docs/PERFORMANCE.md).
var convWinogradMinChannels = 128

// EnvConvWinograd overrides convWinogradMinChannels at start-up: "0" makes
// every convolution im2col, a positive integer sets the threshold (for A/B
// measurements such as `LDM_CONV_WINOGRAD=0 ldm bench --parts vae`).
const EnvConvWinograd = "LDM_CONV_WINOGRAD"

func init() {
	if v := os.Getenv(EnvConvWinograd); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			convWinogradMinChannels = n
		} else {
			slog.Warn("ignoring "+EnvConvWinograd+": want 0 (off) or a channel count", "value", v)
		}
	}
}

// SetConvWinogradMinChannels sets the fewest input and output channels for
// which graphs built afterwards compute 3×3 stride-1 convolutions with
// Winograd F(2×2,3×3) (0: always im2col) and returns the previous value; for
// benchmarks and comparisons of the two paths. Not safe to call while graphs
// are being built.
func SetConvWinogradMinChannels(n int) (prev int) {
	prev, convWinogradMinChannels = convWinogradMinChannels, n
	return prev
}

// useWinograd says whether convRows computes this convolution with Winograd.
func useWinograd(k, stride, in, out, ho, wo int) bool {
	return convWinogradMinChannels > 0 && k == 3 && stride == 1 &&
		in >= convWinogradMinChannels && out >= convWinogradMinChannels && ho >= 2 && wo >= 2
}

// winogradG is F(2×2,3×3)'s weight transform G (Lavin & Gray 2015): the 4×4
// transformed kernel is G·g·Gᵀ for a 3×3 kernel g.
var winogradG = [4][3]float32{{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}}

// convWinograd is the unpadded 3×3 stride-1 convolution of x [B,H,W,I] with
// weight [O,I,3,3], giving ho×wo output rows, as Winograd F(2×2,3×3): the
// output is cut in 2×2 tiles, each computed from a 4×4 input tile d as
// Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A. The 16 element-wise products over channels are
// 16 matrix products [tiles, I]×[I, O], 16·I·O multiply-adds a tile where
// im2col does 36·I·O. The input and output transforms are slices and
// additions over quarter-size planes; the weight transform is one small
// product with a constant [16, 9] matrix, inside the graph.
func convWinograd(x, weight, bias *Node, ho, wo int) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	b, h, w, in := dims[0], dims[1], dims[2], dims[3]
	out := weight.Shape().Dim(0)
	th, tw := (ho+1)/2, (wo+1)/2
	// The tiles read 2·th+2 rows and 2·tw+2 columns: odd outputs read one
	// zero row or column beyond the input.
	if extra := 2*th + 2 - h; extra > 0 {
		x = Concatenate([]*Node{x, Zeros(g, shapes.Make(x.DType(), b, extra, w, in))}, 1)
		h += extra
	}
	if extra := 2*tw + 2 - w; extra > 0 {
		x = Concatenate([]*Node{x, Zeros(g, shapes.Make(x.DType(), b, h, extra, in))}, 2)
		w += extra
	}
	// Bᵀ·d·B, columns first: dB's column j of tile t reads input columns
	// 2t..2t+3, with Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]].
	cols := func(v *Node, axis, j, n int) *Node {
		r := []SliceAxisSpec{AxisRange(), AxisRange(), AxisRange(), AxisRange()}
		r[axis] = AxisRange(j, j+2*(n-1)+1).Stride(2)
		return Slice(v, r...)
	}
	transform := func(d0, d1, d2, d3 *Node) [4]*Node {
		return [4]*Node{Sub(d0, d2), Add(d1, d2), Sub(d2, d1), Sub(d1, d3)}
	}
	wb := transform(cols(x, 2, 0, tw), cols(x, 2, 1, tw), cols(x, 2, 2, tw), cols(x, 2, 3, tw))
	p := b * th * tw
	var v [4][4]*Node // v[a][c]: tile row a, column c: [tiles, I]
	for c := range 4 {
		col := transform(cols(wb[c], 1, 0, th), cols(wb[c], 1, 1, th), cols(wb[c], 1, 2, th), cols(wb[c], 1, 3, th))
		for a := range 4 {
			v[a][c] = Reshape(col[a], p, in)
		}
	}
	// G·g·Gᵀ for every (O, I): one product of the [16, 9] matrix of G[a][i]·G[c][j]
	// with the weight's 9 taps: [16, O, I].
	var tm [16 * 9]float32
	for a := range 4 {
		for c := range 4 {
			for i := range 3 {
				for j := range 3 {
					tm[(a*4+c)*9+i*3+j] = winogradG[a][i] * winogradG[c][j]
				}
			}
		}
	}
	t := ConvertDType(Reshape(Const(g, tm[:]), 16, 9), weight.DType())
	u := DotGeneral(t, []int{1}, nil, Reshape(weight, out, in, 9), []int{2}, nil)
	var m [4][4]*Node // m[a][c] = v[a][c]·u[a][c]ᵀ: [tiles, O]
	for a := range 4 {
		for c := range 4 {
			uac := Reshape(Slice(u, AxisElem(a*4+c), AxisRange(), AxisRange()), out, in)
			m[a][c] = productT(v[a][c], uac)
		}
	}
	// Aᵀ·m·A with Aᵀ = [[1,1,1,0],[0,1,-1,-1]], columns first.
	var mc [4][2]*Node
	for a := range 4 {
		mc[a][0] = Add(Add(m[a][0], m[a][1]), m[a][2])
		mc[a][1] = Sub(Sub(m[a][1], m[a][2]), m[a][3])
	}
	var y [2][2]*Node
	for c := range 2 {
		y[0][c] = Add(Add(mc[0][c], mc[1][c]), mc[2][c])
		y[1][c] = Sub(Sub(mc[1][c], mc[2][c]), mc[3][c])
	}
	// Interleave the four [tiles, O] planes into [B, 2·th, 2·tw, O].
	rows := make([]*Node, 2)
	for r := range 2 {
		rows[r] = Reshape(Concatenate([]*Node{
			Reshape(y[r][0], b, th, tw, 1, out), Reshape(y[r][1], b, th, tw, 1, out)}, 3), b, th, 1, 2*tw, out)
	}
	res := Reshape(Concatenate(rows, 2), b, 2*th, 2*tw, out)
	if 2*th != ho || 2*tw != wo {
		res = Slice(res, AxisRange(), AxisRange(0, ho), AxisRange(0, wo), AxisRange())
	}
	if bias != nil {
		res = Add(res, ExpandLeftToRank(bias, 4))
	}
	return res
}
