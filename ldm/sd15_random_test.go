package ldm

import (
	"os"
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
		src := randomWeights{Source: nn.RandomSource(shapes, 1), shapes: shapes}
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

// randomWeights is nn.RandomSource (PyTorch-like initialisation drawn on
// demand) with the dtype information a weights.Source also gives.
type randomWeights struct {
	nn.Source
	shapes map[string][]int
}

var _ weights.Source = randomWeights{}

func (r randomWeights) Info(key string) (weights.DType, []int, bool) {
	s, ok := r.shapes[key]
	return weights.F32, s, ok
}
