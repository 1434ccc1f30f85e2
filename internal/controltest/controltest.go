// Package controltest builds hand-made ControlNets for tests: models whose
// effect is known, where random golden weights show nothing.
package controltest

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/weights"
)

// EdgeControlNet writes a ControlNet with the tensors of the diffusers
// ControlNet folder dir (names and shapes) whose only effect is
// to add gain × (the control map, box-filtered to the latent size) to the
// U-Net's first skip connection: every weight is zero except the
// conditioning embedding (channel averages and box filters) and the first
// zero convolution (the identity). The random golden ControlNet responds
// too weakly to its image (its embedding's output is ~0.03) to show where a
// map steers; this one steers exactly there, so the test checks the
// pipeline puts a unit's map where it belongs. It returns the file.
func EdgeControlNet(t testing.TB, dir string, gain float64) string {
	t.Helper()
	f, err := weights.Open(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]int{}
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		keys[name] = info.Shape
	}
	var ts []weights.WriteTensor
	for key, shape := range keys {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		conv := func(centreOnly bool, scale float64) { // [o, i, 3, 3]
			o, in := shape[0], shape[1]
			for a := range o {
				for b := range in {
					for k := range 9 {
						if centreOnly && k != 4 {
							continue
						}
						w := scale / float64(in)
						if !centreOnly {
							w /= 9
						}
						v[((a*in+b)*9)+k] = float32(w)
					}
				}
			}
		}
		switch {
		case key == "controlnet_cond_embedding.conv_in.weight":
			conv(true, 1)
		case key == "controlnet_cond_embedding.conv_out.weight":
			conv(true, gain)
		case strings.HasPrefix(key, "controlnet_cond_embedding.blocks.") && strings.HasSuffix(key, ".weight"):
			var i int
			fmt.Sscanf(key, "controlnet_cond_embedding.blocks.%d.weight", &i)
			conv(i%2 == 0, 1) // the stride-2 ones average their 3×3 window
		case key == "controlnet_down_blocks.0.weight":
			for a := range shape[0] {
				v[a*shape[1]+a] = 1
			}
		}
		ts = append(ts, weights.WriteTensor{Name: key, DType: weights.F32, Shape: shape, Float32: v})
	}
	path := filepath.Join(t.TempDir(), "edges.safetensors")
	if err := weights.WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

// Square is an n×n white square on black, covering [lo, hi) on both axes.
func Square(n, lo, hi int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			c := uint8(0)
			if x >= lo && x < hi && y >= lo && y < hi {
				c = 255
			}
			img.SetRGBA(x, y, color.RGBA{c, c, c, 255})
		}
	}
	return img
}

// EdgeChange is the mean change (levels, summed over RGB) from blank to
// edges within 4 pixels of the outline of Square's [lo, hi) square, and 10
// or more pixels away from it.
func EdgeChange(edges, blank image.Image, lo, hi int) (near, far float64) {
	b := edges.Bounds()
	var nNear, nFar int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r1, g1, b1, _ := edges.At(x, y).RGBA()
			r0, g0, b0, _ := blank.At(x, y).RGBA()
			d := (math.Abs(float64(r1)-float64(r0)) + math.Abs(float64(g1)-float64(g0)) + math.Abs(float64(b1)-float64(b0))) / 257
			// Chebyshev distance to the square's outline
			dx := math.Max(float64(lo-x), float64(x-(hi-1)))
			dy := math.Max(float64(lo-y), float64(y-(hi-1)))
			switch dist := math.Abs(math.Max(dx, dy)); {
			case dist <= 4:
				near, nNear = near+d, nNear+1
			case dist >= 10:
				far, nFar = far+d, nFar+1
			}
		}
	}
	return near / float64(nNear), far / float64(nFar)
}
