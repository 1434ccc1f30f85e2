package data

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
)

// ShapesOptions configures GenerateShapes.
type ShapesOptions struct {
	// N is the number of images (default 1000).
	N int
	// Size is the image side in pixels (default 64, at least 16).
	Size int
	// Seed fixes every choice; image i depends only on (Seed, i, Size), so
	// a larger N extends a smaller set.
	Seed uint64
	// Holdout is the fraction of images marked split "test" (default 0: all
	// "train").
	Holdout float64
}

// The vocabulary of the shapes set. Colours are named sRGB values.
var (
	ShapeNames = []string{"circle", "square", "triangle", "star", "diamond", "hexagon", "cross", "heart"}
	ShapeSizes = []string{"small", "medium", "large"}
	// ShapePositions are the cells of a 3×3 grid, row by row.
	ShapePositions = []string{"top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"}
	ShapeColors    = []NamedColor{
		{"red", color.NRGBA{220, 30, 30, 255}},
		{"green", color.NRGBA{30, 160, 50, 255}},
		{"blue", color.NRGBA{30, 70, 220, 255}},
		{"yellow", color.NRGBA{245, 205, 20, 255}},
		{"orange", color.NRGBA{245, 130, 20, 255}},
		{"purple", color.NRGBA{135, 50, 180, 255}},
		{"pink", color.NRGBA{245, 125, 185, 255}},
		{"brown", color.NRGBA{125, 75, 35, 255}},
		{"black", color.NRGBA{0, 0, 0, 255}},
		{"white", color.NRGBA{255, 255, 255, 255}},
		{"gray", color.NRGBA{128, 128, 128, 255}},
	}
	ShapeBackgrounds = []NamedColor{
		{"white", color.NRGBA{255, 255, 255, 255}},
		{"black", color.NRGBA{0, 0, 0, 255}},
		{"gray", color.NRGBA{128, 128, 128, 255}},
	}
)

// NamedColor is a colour with the word the captions use for it.
type NamedColor struct {
	Name  string
	Color color.NRGBA
}

// shapeRadius is each size's circumradius as a fraction of the image side.
var shapeRadius = map[string]float64{"small": 0.12, "medium": 0.2, "large": 0.3}

// ShapeSample describes one generated image.
type ShapeSample struct {
	Caption    string
	Shape      string
	Color      string
	Size       string
	Position   string
	Background string
	// CenterX, CenterY is the pixel at the shape's centre; Radius its
	// circumradius in pixels.
	CenterX, CenterY int
	Radius           float64
	Split            string
}

func (o ShapesOptions) withDefaults() (ShapesOptions, error) {
	if o.N == 0 {
		o.N = 1000
	}
	if o.Size == 0 {
		o.Size = 64
	}
	switch {
	case o.N < 1:
		return o, fmt.Errorf("n %d: want at least 1", o.N)
	case o.Size < 16 || o.Size > 4096:
		return o, fmt.Errorf("size %d: want 16 to 4096", o.Size)
	case o.Holdout < 0 || o.Holdout >= 1:
		return o, fmt.Errorf("holdout %g: want a fraction in [0, 1)", o.Holdout)
	}
	return o, nil
}

// Shape draws image i of the set described by o.
func Shape(o ShapesOptions, i int) (*image.NRGBA, ShapeSample, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, ShapeSample{}, err
	}
	r := newRand(purposeShapes, o.Seed, uint64(i))
	s := ShapeSample{
		Shape:    ShapeNames[r.intn(len(ShapeNames))],
		Size:     ShapeSizes[r.intn(len(ShapeSizes))],
		Position: ShapePositions[r.intn(len(ShapePositions))],
	}
	bg := ShapeBackgrounds[r.intn(len(ShapeBackgrounds))]
	var fgs []NamedColor
	for _, c := range ShapeColors {
		if c.Name != bg.Name {
			fgs = append(fgs, c)
		}
	}
	fg := fgs[r.intn(len(fgs))]
	s.Color, s.Background = fg.Name, bg.Name

	size := float64(o.Size)
	s.Radius = shapeRadius[s.Size] * size
	cell := [3]float64{0.22, 0.5, 0.78}
	pi := indexOf(ShapePositions, s.Position)
	place := func(frac float64) int {
		jitter := (r.float64()*2 - 1) * 0.04 * size
		c := frac*size + jitter
		lo, hi := math.Ceil(s.Radius), size-1-math.Ceil(s.Radius)
		return int(math.Max(lo, math.Min(hi, c)))
	}
	s.CenterX, s.CenterY = place(cell[pi%3]), place(cell[pi/3])
	s.Split = "train"
	if newRand(purposeSplit, o.Seed, uint64(i)).float64() < o.Holdout {
		s.Split = "test"
	}
	s.Caption = fmt.Sprintf("a %s %s %s on a %s background, %s", s.Size, s.Color, s.Shape, s.Background, s.Position)

	img := image.NewNRGBA(image.Rect(0, 0, o.Size, o.Size))
	inside := shapeTest(s.Shape)
	// The pixel (cx, cy) covers [cx, cx+1), so its centre is the shape's.
	cx, cy := float64(s.CenterX)+0.5, float64(s.CenterY)+0.5
	const ss = 4 // supersampling per axis for anti-aliased edges
	for y := 0; y < o.Size; y++ {
		for x := 0; x < o.Size; x++ {
			hits := 0
			for sy := range ss {
				for sx := range ss {
					u := (float64(x) + (float64(sx)+0.5)/ss - cx) / s.Radius
					v := (float64(y) + (float64(sy)+0.5)/ss - cy) / s.Radius
					if inside(u, v) {
						hits++
					}
				}
			}
			cov := float64(hits) / (ss * ss)
			mix := func(a, b uint8) uint8 { return uint8(math.Round(float64(a) + (float64(b)-float64(a))*cov)) }
			p := img.PixOffset(x, y)
			img.Pix[p+0] = mix(bg.Color.R, fg.Color.R)
			img.Pix[p+1] = mix(bg.Color.G, fg.Color.G)
			img.Pix[p+2] = mix(bg.Color.B, fg.Color.B)
			img.Pix[p+3] = 255
		}
	}
	return img, s, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// shapeTest returns the inside test of a shape in coordinates scaled by its
// circumradius (u right, v down, the centre at 0).
func shapeTest(name string) func(u, v float64) bool {
	switch name {
	case "circle":
		return func(u, v float64) bool { return u*u+v*v <= 1 }
	case "square":
		return func(u, v float64) bool { return math.Abs(u) <= 0.8 && math.Abs(v) <= 0.8 }
	case "diamond":
		return func(u, v float64) bool { return math.Abs(u)+math.Abs(v) <= 1 }
	case "cross":
		return func(u, v float64) bool {
			au, av := math.Abs(u), math.Abs(v)
			return (au <= 0.3 && av <= 0.95) || (av <= 0.3 && au <= 0.95)
		}
	case "heart":
		// (x²+y²−1)³ − x²y³ ≤ 0, y up, spans x ±1.14 and y −1…1.25.
		return func(u, v float64) bool {
			x, y := u*1.15, -v*1.15+0.125
			a := x*x + y*y - 1
			return a*a*a-x*x*y*y*y <= 0
		}
	case "triangle":
		return polygonTest(regularPolygon(3, 1, 0))
	case "hexagon":
		return polygonTest(regularPolygon(6, 1, math.Pi/6))
	case "star":
		outer := regularPolygon(5, 1, 0)
		inner := regularPolygon(5, 0.4, math.Pi/5)
		var pts [][2]float64
		for i := range outer {
			pts = append(pts, outer[i], inner[i])
		}
		return polygonTest(pts)
	}
	panic("unknown shape " + name) // unreachable: names come from ShapeNames
}

// regularPolygon has n vertices on a circle of radius r, the first at the top
// turned by rot radians.
func regularPolygon(n int, r, rot float64) [][2]float64 {
	pts := make([][2]float64, n)
	for i := range pts {
		a := -math.Pi/2 + rot + 2*math.Pi*float64(i)/float64(n)
		pts[i] = [2]float64{r * math.Cos(a), r * math.Sin(a)}
	}
	return pts
}

// polygonTest is the even–odd rule.
func polygonTest(pts [][2]float64) func(u, v float64) bool {
	return func(u, v float64) bool {
		in := false
		for i, j := 0, len(pts)-1; i < len(pts); j, i = i, i+1 {
			a, b := pts[i], pts[j]
			if (a[1] > v) != (b[1] > v) && u < (b[0]-a[0])*(v-a[1])/(b[1]-a[1])+a[0] {
				in = !in
			}
		}
		return in
	}
}

// GenerateShapes writes the shapes set into out: images/NNNNN.png and
// metadata.jsonl with the caption and the structured fields (shape, color,
// size, position, background, center_x, center_y, radius, split). progress,
// if not nil, is called after each image.
func GenerateShapes(ctx context.Context, out string, opts ShapesOptions, progress func(done, total int)) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "images"), 0o755); err != nil {
		return err
	}
	rows := make([]shapeRow, 0, o.N)
	for i := range o.N {
		if err := ctx.Err(); err != nil {
			return err
		}
		img, s, err := Shape(o, i)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("images/%05d.png", i)
		if err := writePNG(filepath.Join(out, filepath.FromSlash(name)), img); err != nil {
			return err
		}
		rows = append(rows, shapeRow{
			FileName: name, Text: s.Caption,
			Shape: s.Shape, Color: s.Color, Size: s.Size, Position: s.Position, Background: s.Background,
			CenterX: s.CenterX, CenterY: s.CenterY, Radius: math.Round(s.Radius*100) / 100, Split: s.Split,
		})
		if progress != nil {
			progress(i+1, o.N)
		}
	}
	return writeJSONL(filepath.Join(out, "metadata.jsonl"), rows)
}

// shapeRow is a metadata.jsonl line of the shapes set.
type shapeRow struct {
	FileName   string  `json:"file_name"`
	Text       string  `json:"text"`
	Shape      string  `json:"shape"`
	Color      string  `json:"color"`
	Size       string  `json:"size"`
	Position   string  `json:"position"`
	Background string  `json:"background"`
	CenterX    int     `json:"center_x"`
	CenterY    int     `json:"center_y"`
	Radius     float64 `json:"radius"`
	Split      string  `json:"split"`
}
