package vae

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
)

// TestTiledMatchesWhole decodes and encodes with the golden VAE's weights,
// whole and in tiles (3×3 tiles of 8 latent pixels with their halos, so
// every tile edge is inside the image), and asks for 1e-3: the halos cover
// the receptive field and the GroupNorms use whole-image statistics.
func TestTiledMatchesWhole(t *testing.T) {
	golden.ForKind(t, "vae", func(t *testing.T, c golden.Case) {
		m := loadGoldenModel(t, c.Path("model"))
		f := m.Config.DownsampleFactor()
		r := rand.New(rand.NewPCG(5, 6))
		const lat = 24
		zshape := []int{1, m.Config.LatentChannels, lat, lat}
		z := randn(r, m.Config.LatentChannels*lat*lat)
		whole, _, err := m.DecodeRun(z, zshape)
		if err != nil {
			t.Fatal(err)
		}
		ishape := []int{1, 3, lat * f, lat * f}
		image := make([]float32, 3*lat*f*lat*f)
		for i := range image { // a smooth image: neighbouring tiles see related content
			y, x := (i/(lat*f))%(lat*f), i%(lat*f)
			image[i] = float32(0.8 * math.Sin(float64(x)/17+float64(i/(lat*f*lat*f))) * math.Cos(float64(y)/23))
		}
		wholeEnc, _, err := m.EncodeRun(image, ishape)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			o    TileOptions
		}{
			{"exact statistics", TileOptions{Tile: 8}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tiled, shape, err := m.DecodeTiled(z, zshape, tc.o)
				if err != nil {
					t.Fatal(err)
				}
				if shape[2] != lat*f || shape[3] != lat*f {
					t.Fatalf("tiled decode shape %v", shape)
				}
				golden.AssertClose(t, "tiled decode", tiled, whole, 1e-3)
				enc, _, err := m.EncodeTiled(image, ishape, tc.o)
				if err != nil {
					t.Fatal(err)
				}
				golden.AssertClose(t, "tiled encode", enc, wholeEnc, 1e-3)
			})
		}
		// Above StatsSize the statistics are estimated over the tiles; with
		// random weights and white-noise latents the estimate is far from
		// exact (on a 32² latent: max abs error 1.27; 8 refining passes 0.38).
		est, _, err := m.DecodeTiled(z, zshape, TileOptions{Tile: 8, StatsSize: 8})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := golden.MaxAbsDiff(est, whole)
		t.Logf("statistics estimated over the tiles: max abs error %.3g", d)
	})
}
