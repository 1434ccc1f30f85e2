package controlnet

import (
	"image"
	"image/color"
	"testing"
)

func squareImage(n, lo, hi int, fg, bg uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			c := bg
			if x >= lo && x < hi && y >= lo && y < hi {
				c = fg
			}
			img.SetRGBA(x, y, color.RGBA{c, c, c, 255})
		}
	}
	return img
}

func white(img image.Image, x, y int) bool {
	r, _, _, _ := img.At(x, y).RGBA()
	return r > 0x8000
}

// Canny finds a square's outline, one pixel wide, and nothing else; pixels
// whose gradient is below the low threshold are never edges.
func TestCannyFindsTheOutlineOfASquare(t *testing.T) {
	const n, lo, hi = 32, 8, 24
	m := Canny(squareImage(n, lo, hi, 255, 0), 100, 200)
	count := 0
	for y := range n {
		for x := range n {
			if !white(m, x, y) {
				continue
			}
			count++
			// within a pixel of the boundary between lo-1|lo and hi-1|hi
			in := func(v int) bool { return v >= lo-1 && v <= hi }
			near := func(v int) bool { return v == lo-1 || v == lo || v == hi-1 || v == hi }
			onOutline := in(x) && in(y) && (near(x) || near(y))
			if !onOutline {
				t.Fatalf("edge pixel at (%d,%d), off the outline", x, y)
			}
		}
	}
	if count < 4*(hi-lo)-4 {
		t.Errorf("%d edge pixels, want the whole outline (≥ %d)", count, 4*(hi-lo)-4)
	}
	faint := Canny(squareImage(n, lo, hi, 20, 0), 100, 200) // Sobel magnitude 80 < low
	for y := range n {
		for x := range n {
			if white(faint, x, y) {
				t.Fatalf("a step of 20 levels gives an edge at (%d,%d) with low threshold 100", x, y)
			}
		}
	}
}

func TestThresholdInvertAndScribble(t *testing.T) {
	img := squareImage(16, 4, 12, 200, 50)
	th := Threshold(img, 127)
	if !white(th, 8, 8) || white(th, 1, 1) {
		t.Errorf("threshold 127: inside %v, outside %v; want white, black", white(th, 8, 8), white(th, 1, 1))
	}
	inv := Invert(img)
	if r, _, _, _ := inv.At(8, 8).RGBA(); r>>8 != 55 {
		t.Errorf("invert of 200 gives %d, want 55", r>>8)
	}
	// A black line on white: scribble_xdog marks it, and not the background.
	line := squareImage(32, 0, 32, 255, 255)
	for y := range 32 {
		line.SetRGBA(16, y, color.RGBA{0, 0, 0, 255})
	}
	sc := ScribbleXDoG(line, 32)
	if !white(sc, 16, 10) || white(sc, 4, 10) {
		t.Errorf("scribble_xdog: on the line %v, away %v; want white, black", white(sc, 16, 10), white(sc, 4, 10))
	}
}

func TestPreprocessorsAndResizeModesByName(t *testing.T) {
	for _, name := range []string{"none", "Canny", "scribble", "invert (from white bg & black line)", "threshold", ""} {
		if _, err := FindPreprocessor(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	if _, err := FindPreprocessor("depth_midas"); err == nil {
		t.Error("depth_midas (needs a model) was accepted")
	}
	img := squareImage(40, 0, 20, 255, 0) // 40×40
	wide := image.NewRGBA(image.Rect(0, 0, 80, 40))
	for _, c := range []struct {
		mode      string
		src       image.Image
		w, h      int
		blackAt   image.Point // a pixel that must be black (padding)
		wantBlack bool
	}{
		{"Just Resize", wide, 64, 64, image.Point{}, false},
		{"1", wide, 64, 32, image.Point{}, false},
		{"resize_fill", img, 64, 32, image.Point{2, 16}, true}, // 32×32 centred: columns 0..15 are padding
	} {
		mode, err := ParseResizeMode(c.mode)
		if err != nil {
			t.Fatal(err)
		}
		out := Resize(c.src, c.w, c.h, mode)
		if out.Bounds().Dx() != c.w || out.Bounds().Dy() != c.h {
			t.Errorf("%s: %v, want %dx%d", c.mode, out.Bounds(), c.w, c.h)
		}
		if c.wantBlack && white(out, c.blackAt.X, c.blackAt.Y) {
			t.Errorf("%s: %v is not padding", c.mode, c.blackAt)
		}
	}
	if _, err := ParseResizeMode("zoom"); err == nil {
		t.Error("resize mode zoom accepted")
	}
}
