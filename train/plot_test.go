package train

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The loss curve has axes: tick labels and axis titles on the left and at
// the bottom (dark text pixels where the old curve had none), and the moving
// average in blue. Zeros, NaN, a constant run and no losses at all still
// draw (a log scale cannot show them as they are).
func TestLossCurveHasAxesAndLabels(t *testing.T) {
	decay := make([]float32, 300)
	for i := range decay {
		decay[i] = float32(0.5*math.Exp(-float64(i)/60) + 0.01)
	}
	decay[10], decay[20] = 0, float32(math.NaN())
	for name, losses := range map[string][]float32{"decay": decay, "constant": {0.2, 0.2, 0.2}, "empty": nil} {
		path := filepath.Join(t.TempDir(), name+".png")
		if err := WriteLossCurve(path, "train ldm", "loss (MSE)", losses, 50); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		dark := func(x0, y0, x1, y1 int) int {
			n := 0
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					r, g, bl, _ := img.At(x, y).RGBA()
					if r < 0x5000 && g < 0x5000 && bl < 0x5000 {
						n++
					}
				}
			}
			return n
		}
		left := dark(b.Min.X, b.Min.Y, b.Min.X+b.Dx()/10, b.Max.Y)
		bottom := dark(b.Min.X, b.Max.Y-b.Dy()/8, b.Max.X, b.Max.Y)
		if left < 100 || bottom < 100 {
			t.Errorf("%s: %d dark pixels in the left strip, %d in the bottom one: want axis labels in both", name, left, bottom)
		}
		if name != "empty" {
			blue := 0
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					r, g, bl, _ := img.At(x, y).RGBA()
					if bl > 0xa000 && r < 0x6000 && g < 0x8000 {
						blue++
					}
				}
			}
			if blue < 50 {
				t.Errorf("%s: %d blue pixels: want the moving average", name, blue)
			}
		}
	}
}
