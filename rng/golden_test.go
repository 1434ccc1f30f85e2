package rng

import (
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
)

type torchIndex struct {
	Cases []struct {
		Seed   json.Number `json:"seed"`
		Shape  []int       `json:"shape"`
		First  string      `json:"first"`
		Second string      `json:"second"`
	} `json:"cases"`
}

// TestGoldenTorchRandn checks torch.randn parity bit for bit: for every seed
// and shape in the index, a fresh generator's first and second draws.
func TestGoldenTorchRandn(t *testing.T) {
	golden.ForKind(t, "torch_randn", func(t *testing.T, c golden.Case) {
		raw, err := os.ReadFile(c.Path("index"))
		if err != nil {
			t.Fatal(err)
		}
		var idx torchIndex
		if err := json.Unmarshal(raw, &idx); err != nil {
			t.Fatalf("%s: %v", c.Path("index"), err)
		}
		if len(idx.Cases) == 0 {
			t.Fatal("index lists no cases")
		}
		data := c.Tensors(t, "data")
		draws, values := 0, 0
		for _, tc := range idx.Cases {
			n := 1
			for _, d := range tc.Shape {
				n *= d
			}
			seed, err := parseSeed(tc.Seed)
			if err != nil {
				t.Fatalf("seed %q: %v", tc.Seed, err)
			}
			g := NewTorchCPU(seed)
			for _, draw := range []string{tc.First, tc.Second} {
				if draw == "" {
					continue
				}
				got := g.Randn(n) // drawn even if the check below fails, so the stream stays aligned
				want, shape := golden.Float32(t, data, draw)
				draws, values = draws+1, values+n
				if len(want) != n {
					t.Errorf("%s: tensor has %d values (shape %v), index shape %v", draw, len(want), shape, tc.Shape)
					continue
				}
				bad, first := 0, -1
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						if first < 0 {
							first = i
						}
						bad++
					}
				}
				if bad > 0 {
					t.Errorf("seed %s shape %v %s: %d of %d values differ; first at %d: got %v (%#08x) want %v (%#08x)",
						tc.Seed, tc.Shape, draw, bad, n, first, got[first], math.Float32bits(got[first]), want[first], math.Float32bits(want[first]))
				}
			}
		}
		t.Logf("%d seed/shape cases, %d draws, %d values compared bit for bit", len(idx.Cases), draws, values)
	})
}

// parseSeed reads a torch seed: an integer in [−2^63, 2^64); negative seeds
// wrap to uint64 as torch.Generator.manual_seed does.
func parseSeed(n json.Number) (uint64, error) {
	if u, err := strconv.ParseUint(n.String(), 10, 64); err == nil {
		return u, nil
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	return uint64(i), err
}
