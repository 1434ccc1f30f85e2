package data

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func colourOf(list []NamedColor, name string) color.NRGBA {
	for _, c := range list {
		if c.Name == name {
			return c.Color
		}
	}
	panic(name)
}

func TestShapesCaptionsMatchThePixels(t *testing.T) {
	o := ShapesOptions{Size: 64, Seed: 11}
	seen := map[string]map[string]bool{"shape": {}, "color": {}, "size": {}, "position": {}, "background": {}}
	for i := range 300 {
		img, s, err := Shape(o, i)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("a %s %s %s on a %s background, %s", s.Size, s.Color, s.Shape, s.Background, s.Position)
		if s.Caption != want {
			t.Fatalf("image %d: caption %q, want %q", i, s.Caption, want)
		}
		if s.Color == s.Background {
			t.Fatalf("image %d: %s on %s", i, s.Color, s.Background)
		}
		if got, want := img.NRGBAAt(s.CenterX, s.CenterY), colourOf(ShapeColors, s.Color); got != want {
			t.Fatalf("image %d (%s): centre pixel %v, want %s %v", i, s.Caption, got, s.Color, want)
		}
		// The corner farthest from the shape is background.
		cx, cy := 0, 0
		if s.CenterX < 32 {
			cx = 63
		}
		if s.CenterY < 32 {
			cy = 63
		}
		if got, want := img.NRGBAAt(cx, cy), colourOf(ShapeBackgrounds, s.Background); got != want {
			t.Fatalf("image %d: corner pixel %v, want %s %v", i, got, s.Background, want)
		}
		// The centre lies in the captioned cell of a 3×3 grid.
		p := indexOf(ShapePositions, s.Position)
		if col, row := s.CenterX*3/64, s.CenterY*3/64; col != p%3 || row != p/3 {
			t.Fatalf("image %d: centre (%d,%d) is in cell %d,%d, caption says %q", i, s.CenterX, s.CenterY, col, row, s.Position)
		}
		for k, v := range map[string]string{"shape": s.Shape, "color": s.Color, "size": s.Size, "position": s.Position, "background": s.Background} {
			seen[k][v] = true
		}
	}
	for k, n := range map[string]int{"shape": len(ShapeNames), "color": len(ShapeColors), "size": 3, "position": 9, "background": len(ShapeBackgrounds)} {
		if len(seen[k]) != n {
			t.Errorf("300 images use %d values of %s, want all %d", len(seen[k]), k, n)
		}
	}
}

func TestShapeSizesCoverTheirArea(t *testing.T) {
	// A circle of radius r covers about πr² pixels: check the sizes differ
	// as captioned.
	area := map[string]float64{}
	for i := 0; len(area) < 3; i++ {
		img, s, _ := Shape(ShapesOptions{Seed: 5}, i)
		if s.Shape != "circle" || area[s.Size] != 0 {
			continue
		}
		fg := colourOf(ShapeColors, s.Color)
		n := 0
		for y := range 64 {
			for x := range 64 {
				if img.NRGBAAt(x, y) == fg {
					n++
				}
			}
		}
		area[s.Size] = float64(n)
	}
	for size, frac := range shapeRadius {
		r := frac * 64
		want := 3.14159 * r * r
		if a := area[size]; a < 0.85*want || a > 1.05*want {
			t.Errorf("%s circle covers %.0f pixels fully, want about %.0f", size, a, want)
		}
	}
}

func TestShapesAreDeterministic(t *testing.T) {
	a, sa, _ := Shape(ShapesOptions{Seed: 3}, 17)
	b, sb, _ := Shape(ShapesOptions{Seed: 3, N: 5000}, 17) // N does not matter
	c, _, _ := Shape(ShapesOptions{Seed: 4}, 17)
	if !bytes.Equal(a.Pix, b.Pix) || sa != sb {
		t.Error("same seed and index, different image")
	}
	if bytes.Equal(a.Pix, c.Pix) {
		t.Error("seeds 3 and 4 give the same image")
	}

	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		if err := GenerateShapes(context.Background(), d, ShapesOptions{N: 12, Size: 32, Seed: 9, Holdout: 0.25}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"metadata.jsonl", "images/00000.png", "images/00011.png"} {
		x, err1 := os.ReadFile(filepath.Join(dirs[0], name))
		y, err2 := os.ReadFile(filepath.Join(dirs[1], name))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs (%v %v)", name, err1, err2)
		}
	}
	// The written set reads back as an imagefolder with its fields.
	d, err := Open(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	_, s0, _ := Shape(ShapesOptions{Size: 32, Seed: 9, Holdout: 0.25}, 0)
	it := d.Items[0]
	want := map[string]string{
		"shape": s0.Shape, "color": s0.Color, "size": s0.Size, "position": s0.Position, "background": s0.Background,
		"center_x": strconv.Itoa(s0.CenterX), "center_y": strconv.Itoa(s0.CenterY),
		"radius": strconv.FormatFloat(s0.Radius, 'f', -1, 64), "split": s0.Split,
	}
	if d.Len() != 12 || it.Caption != s0.Caption || !reflect.DeepEqual(it.Fields, want) {
		t.Errorf("read back %d items; first %q %v, want %q %v", d.Len(), it.Caption, it.Fields, s0.Caption, want)
	}
	if n := d.Split("test").Len(); n < 1 || n > 6 {
		t.Errorf("%d of 12 images held out at 0.25", n)
	}
}

func TestShapesOptionsAreValidated(t *testing.T) {
	for _, o := range []ShapesOptions{{Size: 8}, {N: -1}, {Holdout: 1}} {
		if _, _, err := Shape(o, 0); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
