package ldm

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/textenc"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/vae"
	"github.com/ldm-project/ldm/weights"
)

// TestWriteRandomSD15 writes a full-size SD1.5 single file (F16, about
// 2 GB) with random weights to $LDM_WRITE_SD15, for the end-to-end
// measurements of docs/PERFORMANCE.md:
//
//	LDM_WRITE_SD15=/tmp/sd15-random.safetensors go test ./ldm -run TestWriteRandomSD15 -v
//
// The architecture is weights.Preset("sd15"); the key sets come from the
// model packages themselves, so the file loads exactly as a real one.
func TestWriteRandomSD15(t *testing.T) {
	path := os.Getenv("LDM_WRITE_SD15")
	if path == "" {
		t.Skip("set LDM_WRITE_SD15 to the .safetensors file to write (about 2 GB)")
	}
	configs, err := weights.Preset("sd15")
	if err != nil {
		t.Fatal(err)
	}
	expected := map[string]func([]byte) (map[string][]int, error){
		weights.UNet: func(c []byte) (map[string][]int, error) {
			cfg, err := unet.ParseConfig(c)
			if err != nil {
				return nil, err
			}
			m, err := unet.New(cfg)
			if err != nil {
				return nil, err
			}
			return m.ExpectedKeys()
		},
		weights.VAE: func(c []byte) (map[string][]int, error) {
			cfg, err := vae.ParseConfig(c)
			if err != nil {
				return nil, err
			}
			m, err := vae.New(cfg)
			if err != nil {
				return nil, err
			}
			return m.ExpectedKeys()
		},
		weights.TextEncoder: func(c []byte) (map[string][]int, error) {
			cfg, err := textenc.ParseCLIPConfig(c)
			if err != nil {
				return nil, err
			}
			m, err := textenc.NewCLIPTextModel(cfg)
			if err != nil {
				return nil, err
			}
			return m.ExpectedKeys()
		},
	}
	m := &weights.Model{Format: "random", Components: map[string]*weights.Component{}}
	var params int64
	for name, keys := range expected {
		shapes, err := keys(configs[name])
		if err != nil {
			t.Fatal(err)
		}
		src := randomWeights{shapes: shapes, seed: 1}
		params += weights.CountParameters(src)
		m.Components[name] = &weights.Component{Name: name, Config: configs[name], Source: src}
	}
	start := time.Now()
	if err := weights.WriteSingleFile(path, m, weights.F16, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	t.Logf("wrote %s: %d parameters, %d bytes, in %v", path, params, st.Size(), time.Since(start).Round(time.Millisecond))
}

// randomWeights is PyTorch-like initialisation drawn on demand: matrices
// and kernels uniform in ±1/√fan_in, norm scales 1, biases 0.
type randomWeights struct {
	shapes map[string][]int
	seed   uint64
}

var _ weights.Source = randomWeights{}

func (r randomWeights) Keys() []string {
	keys := make([]string, 0, len(r.shapes))
	for k := range r.shapes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (r randomWeights) Info(key string) (weights.DType, []int, bool) {
	s, ok := r.shapes[key]
	return weights.F32, s, ok
}

func (r randomWeights) Float32(key string) ([]float32, []int, error) {
	dims := r.shapes[key]
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	_, name := nn.KeyToScope(key)
	switch {
	case len(dims) >= 2:
		bound := 1 / math.Sqrt(float64(n/dims[0]))
		var h uint64
		for _, c := range key {
			h = h*1099511628211 + uint64(c)
		}
		g := rand.New(rand.NewPCG(r.seed, h))
		for i := range data {
			data[i] = float32((2*g.Float64() - 1) * bound)
		}
	case name == "weight" || strings.HasSuffix(key, "norm.weight"):
		for i := range data {
			data[i] = 1
		}
	}
	return data, dims, nil
}
