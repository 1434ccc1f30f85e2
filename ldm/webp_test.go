package ldm

import (
	"bytes"
	"image"
	"image/color"
	"testing"

	"golang.org/x/image/webp"
)

// TestWebPIsLosslessAndCarriesInfotext: golang.org/x/image/webp (an
// independent decoder) reads back every pixel, with and without alpha, and
// ReadParameters the infotext from the EXIF chunk.
func TestWebPIsLosslessAndCarriesInfotext(t *testing.T) {
	for _, alpha := range []bool{false, true} {
		img := image.NewNRGBA(image.Rect(0, 0, 13, 7)) // odd sizes: chunk padding
		for y := range 7 {
			for x := range 13 {
				a := uint8(255)
				if alpha && x < 4 {
					a = uint8(40 * y)
				}
				img.SetNRGBA(x, y, color.NRGBA{uint8(19 * x), uint8(37 * y), uint8(x * y), a})
			}
		}
		it := Infotext{Prompt: "🍎 pomme", Params: []KV{{"Steps", "3"}, {"Seed", "9"}}}
		var buf bytes.Buffer
		if err := EncodeImage(&buf, img, it, WebP, 0); err != nil {
			t.Fatal(err)
		}
		got, err := webp.Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("alpha %v: not a valid WebP: %v", alpha, err)
		}
		if got.Bounds() != img.Bounds() {
			t.Fatalf("bounds %v, want %v", got.Bounds(), img.Bounds())
		}
		for y := range 7 {
			for x := range 13 {
				w := img.NRGBAAt(x, y)
				g := color.NRGBAModel.Convert(got.At(x, y)).(color.NRGBA)
				if w.A != g.A || (w.A == 255 && w != g) {
					t.Fatalf("alpha %v: pixel %d,%d = %v, want %v", alpha, x, y, g, w)
				}
			}
		}
		text, err := ReadParameters(bytes.NewReader(buf.Bytes()))
		if err != nil || text != it.String() {
			t.Fatalf("infotext %q, %v; want %q", text, err, it.String())
		}
		if f, err := ParseFormat("WEBP"); err != nil || f != WebP || f.Ext() != ".webp" {
			t.Errorf("ParseFormat(WEBP) = %v, %v", f, err)
		}
	}
}
