package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

func randn(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// run executes fn on one NHWC input with the variables of src loaded.
func run(t *testing.T, src MapSource, x []float32, dims []int, fn func(ctx *context.Context, x *Node) *Node) []float32 {
	t.Helper()
	b, err := NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := Load(ctx, src); err != nil {
		t.Fatal(err)
	}
	var out []float32
	err = Try(func() {
		e := context.MustNewExec(b, ctx.Reuse(), fn)
		out = Values(e.MustExec(tensors.FromFlatDataAndDimensions(x, dims...))[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// conv2dRef is a direct NCHW convolution, the definition torch.nn.Conv2d follows.
func conv2dRef(x []float32, b, cin, h, w int, wt []float32, bias []float32, cout, k, stride, pad int) ([]float32, int, int) {
	ho, wo := (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
	out := make([]float32, b*cout*ho*wo)
	for n := 0; n < b; n++ {
		for o := 0; o < cout; o++ {
			for i := 0; i < ho; i++ {
				for j := 0; j < wo; j++ {
					s := float64(bias[o])
					for c := 0; c < cin; c++ {
						for dy := 0; dy < k; dy++ {
							for dx := 0; dx < k; dx++ {
								y, xx := i*stride+dy-pad, j*stride+dx-pad
								if y < 0 || y >= h || xx < 0 || xx >= w {
									continue
								}
								s += float64(x[((n*cin+c)*h+y)*w+xx]) * float64(wt[((o*cin+c)*k+dy)*k+dx])
							}
						}
					}
					out[((n*cout+o)*ho+i)*wo+j] = float32(s)
				}
			}
		}
	}
	return out, ho, wo
}

func TestConv2DMatchesDirectConvolution(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name                               string
		b, cin, h, w, cout, k, stride, pad int
	}{
		{"3x3 same", 2, 5, 7, 6, 4, 3, 1, 1},
		{"3x3 stride2 pad1", 1, 3, 8, 8, 6, 3, 2, 1},
		{"3x3 stride2 pad0", 1, 3, 9, 8, 2, 3, 2, 0},
		{"1x1", 2, 6, 4, 5, 3, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randn(r, tc.b*tc.cin*tc.h*tc.w)
			wt := randn(r, tc.cout*tc.cin*tc.k*tc.k)
			bias := randn(r, tc.cout)
			want, ho, wo := conv2dRef(x, tc.b, tc.cin, tc.h, tc.w, wt, bias, tc.cout, tc.k, tc.stride, tc.pad)
			src := MapSource{
				"conv.weight": {wt, []int{tc.cout, tc.cin, tc.k, tc.k}},
				"conv.bias":   {bias, []int{tc.cout}},
			}
			got := run(t, src, NCHWToNHWC(x, tc.b, tc.cin, tc.h, tc.w), []int{tc.b, tc.h, tc.w, tc.cin},
				func(ctx *context.Context, x *Node) *Node {
					return Conv2D(ctx.In("conv"), x, Conv2DOpts{Out: tc.cout, Kernel: tc.k, Stride: tc.stride, Pad: tc.pad})
				})
			got = NHWCToNCHW(got, tc.b, ho, wo, tc.cout)
			assertClose(t, got, want, 1e-4)
		})
	}
}

func TestGroupNormMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b, h, w, c, groups := 2, 3, 4, 8, 4
	x := randn(r, b*h*w*c)
	gamma, beta := randn(r, c), randn(r, c)
	got := run(t, MapSource{"gn.weight": {gamma, []int{c}}, "gn.bias": {beta, []int{c}}}, x, []int{b, h, w, c},
		func(ctx *context.Context, x *Node) *Node { return GroupNorm(ctx.In("gn"), x, groups, 1e-5) })
	want := make([]float32, len(x))
	cg := c / groups
	for n := 0; n < b; n++ {
		for gi := 0; gi < groups; gi++ {
			var sum, sq float64
			cnt := float64(h * w * cg)
			for i := 0; i < h*w; i++ {
				for j := 0; j < cg; j++ {
					sum += float64(x[(n*h*w+i)*c+gi*cg+j])
				}
			}
			mean := sum / cnt
			for i := 0; i < h*w; i++ {
				for j := 0; j < cg; j++ {
					d := float64(x[(n*h*w+i)*c+gi*cg+j]) - mean
					sq += d * d
				}
			}
			std := math.Sqrt(sq/cnt + 1e-5)
			for i := 0; i < h*w; i++ {
				for j := 0; j < cg; j++ {
					ch := gi*cg + j
					idx := (n*h*w+i)*c + ch
					want[idx] = float32((float64(x[idx])-mean)/std*float64(gamma[ch]) + float64(beta[ch]))
				}
			}
		}
	}
	assertClose(t, got, want, 1e-5)
}

func TestKeyScopeRoundTrip(t *testing.T) {
	for _, k := range []string{"down_blocks.0.resnets.1.conv1.weight", "conv_in.bias", "x"} {
		s, n := KeyToScope(k)
		if got := ScopeToKey(s, n); got != k {
			t.Errorf("%q → (%q,%q) → %q", k, s, n, got)
		}
	}
}

func TestNewBackendRejectsUnknownNameWithoutPanicking(t *testing.T) {
	if _, err := NewBackend("nosuch"); err == nil {
		t.Fatal("want an error for an unknown backend")
	}
	b, err := NewBackend("auto")
	if err != nil {
		t.Fatalf("auto must fall back to the pure-Go backend: %v", err)
	}
	t.Logf("auto selected %s", b.Name())
	// Without a plugin, XLA fails at once: GoMLX must not try to download one.
	if _, err := NewBackend("xla"); err != nil && strings.Contains(err.Error(), "auto-install") {
		t.Errorf("the XLA backend tried to install a plugin: %v", err)
	}
}

func assertClose(t *testing.T, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		d := math.Abs(float64(got[i] - want[i]))
		if d > worst || math.IsNaN(d) {
			worst = d
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("max abs error %g > %g", worst, tol)
	}
}

func TestLayerNormMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	b, tk, c := 2, 3, 10
	x := randn(r, b*tk*c)
	gamma, beta := randn(r, c), randn(r, c)
	got := run(t, MapSource{"ln.weight": {gamma, []int{c}}, "ln.bias": {beta, []int{c}}}, x, []int{b, tk, c},
		func(ctx *context.Context, x *Node) *Node { return LayerNorm(ctx.In("ln"), x, 1e-5) })
	want := make([]float32, len(x))
	for row := 0; row < b*tk; row++ {
		var mean, sq float64
		for j := 0; j < c; j++ {
			mean += float64(x[row*c+j])
		}
		mean /= float64(c)
		for j := 0; j < c; j++ {
			d := float64(x[row*c+j]) - mean
			sq += d * d
		}
		std := math.Sqrt(sq/float64(c) + 1e-5)
		for j := 0; j < c; j++ {
			want[row*c+j] = float32((float64(x[row*c+j])-mean)/std*float64(gamma[j]) + float64(beta[j]))
		}
	}
	assertClose(t, got, want, 1e-5)
}
