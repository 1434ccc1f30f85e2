package ldm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// loraKeymap is the golden keymap: per kohya module, the diffusers weight it
// adapts, its rank and alpha, and the weight's original (CompVis) key.
type loraKeymap struct {
	NAdapters int `json:"n_adapters"`
	Map       map[string]struct {
		Component string  `json:"component"`
		Weight    string  `json:"weight"`
		Rank      int     `json:"rank"`
		Alpha     float64 `json:"alpha"`
		LDMWeight string  `json:"ldm_weight"`
	} `json:"map"`
}

// TestGoldenLoRA applies the kohya and the PEFT file of each lora case at
// each of its scales and compares the text encoder's and the U-Net's outputs,
// and the fused weights, with diffusers' load_lora_weights + fuse_lora. The
// kohya file renamed to the original checkpoint layout (as LoRAs trained on
// single files name the U-Net) must give the same adapters.
func TestGoldenLoRA(t *testing.T) {
	golden.ForKind(t, "lora", func(t *testing.T, c golden.Case) {
		p, err := Load(c.Path("model"), LoadOptions{Backend: "go"})
		if err != nil {
			t.Fatal(err)
		}
		data := c.Tensors(t, "data")
		var km loraKeymap
		b, err := os.ReadFile(c.Path("keymap"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &km); err != nil {
			t.Fatal(err)
		}
		var scales []float64
		if err := c.Decode("lora_scales", &scales); err != nil {
			t.Fatal(err)
		}

		kohya, err := p.LoadLoRA(c.Path("lora_kohya"))
		if err != nil {
			t.Fatal(err)
		}
		if len(kohya.Adapters) != km.NAdapters || len(kohya.Skipped) != 0 {
			t.Fatalf("kohya file: %d adapters (%d skipped), the keymap lists %d", len(kohya.Adapters), len(kohya.Skipped), km.NAdapters)
		}
		byKey := map[string]LoRAAdapter{}
		for _, a := range kohya.Adapters {
			byKey[a.Component+"/"+a.Key] = a
		}
		for name, m := range km.Map {
			a, ok := byKey[m.Component+"/"+m.Weight]
			if !ok || a.Rank != m.Rank || a.Scale != m.Alpha/float64(m.Rank) {
				t.Errorf("%s: adapter %+v, want %s %s rank %d scale %g", name, a.Key, m.Component, m.Weight, m.Rank, m.Alpha/float64(m.Rank))
			}
		}
		orig := writeOriginalLayoutKohya(t, c.Path("lora_kohya"), km)
		ol, err := p.LoadLoRA(orig)
		if err != nil {
			t.Fatal(err)
		}
		if len(ol.Adapters) != len(kohya.Adapters) {
			t.Fatalf("original-layout names: %d adapters, diffusers names %d", len(ol.Adapters), len(kohya.Adapters))
		}
		for i, a := range ol.Adapters {
			k := kohya.Adapters[i]
			if a.Key != k.Key || a.Scale != k.Scale || !slices.Equal(a.Down, k.Down) || !slices.Equal(a.Up, k.Up) {
				t.Fatalf("original-layout adapter %d is %s, diffusers-named %s", i, a.Key, k.Key)
			}
		}

		ids64, idShape := golden.Int64(t, data, "input_ids")
		ids := make([]int32, len(ids64))
		for i, v := range ids64 {
			ids[i] = int32(v)
		}
		sample, sampleShape := golden.Float32(t, data, "sample")
		ehs, ehsShape := golden.Float32(t, data, "encoder_hidden_states")
		ts64, _ := golden.Int64(t, data, "timesteps")
		ts := make([]float32, len(ts64))
		for i, v := range ts64 {
			ts[i] = float32(v)
		}
		check := func(suffix string, tol float64) {
			t.Helper()
			te, err := p.Text.EncodeAll(p.Backend, ids, idShape[0], idShape[1])
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.UNet.Run(p.Backend, sample, sampleShape, ts, ehs, ehsShape)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range []struct {
				name string
				got  []float32
				tol  float64
			}{
				{"te_last_hidden_state", te.LastHiddenState, 1e-5},
				{"te_pooler_output", te.PoolerOutput, 1e-5},
				{"te_penultimate_hidden_state", te.HiddenStates[len(te.HiddenStates)-2], 1e-5},
				{"unet_out", out, tol},
			} {
				want, _ := golden.Float32(t, data, x.name+suffix)
				golden.AssertClose(t, x.name+suffix, x.got, want, x.tol)
			}
		}
		check(".base", c.ATol)
		for _, format := range []string{"kohya", "peft"} {
			for j, s := range scales {
				suffix := "." + format + ".s" + string(rune('0'+j))
				t.Run(strings.TrimPrefix(suffix, "."), func(t *testing.T) {
					if err := p.applyLoRAs(Request{LoRAs: []LoRASpec{{Path: c.Path("lora_" + format), Weight: s}}}); err != nil {
						t.Fatal(err)
					}
					check(suffix, c.ATol)
					if j != 0 {
						return
					}
					for _, name := range data.Names() {
						rest, ok := strings.CutPrefix(name, "fused_weight.s0.")
						if !ok {
							continue
						}
						component, key, _ := strings.Cut(rest, ".")
						v, err := p.loraVariable(loraTarget{component, key})
						if err != nil {
							t.Fatal(err)
						}
						want, _ := golden.Float32(t, data, name)
						golden.AssertClose(t, name, nn.Values(v.MustValue()), want, 1e-5)
					}
				})
			}
		}
		// Back to no LoRA: the base weights, bit for bit.
		if err := p.applyLoRAs(Request{}); err != nil {
			t.Fatal(err)
		}
		check(".base", c.ATol)
	})
}

// writeOriginalLayoutKohya rewrites a kohya file with the U-Net's module
// names of the original checkpoint layout (the keymap's ldm_weight).
func writeOriginalLayoutKohya(t *testing.T, path string, km loraKeymap) string {
	t.Helper()
	f, err := weights.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []weights.WriteTensor
	for _, name := range f.Names() {
		mod, part, _ := strings.Cut(name, ".")
		m, ok := km.Map[mod]
		if !ok {
			t.Fatalf("%s: not in the keymap", name)
		}
		if m.Component == weights.UNet {
			o := strings.TrimSuffix(strings.TrimPrefix(m.LDMWeight, "model.diffusion_model."), ".weight")
			mod = "lora_unet_" + strings.ReplaceAll(o, ".", "_")
		}
		v, shape, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, weights.WriteTensor{Name: mod + "." + part, DType: weights.F32, Shape: shape, Float32: v})
	}
	out := filepath.Join(t.TempDir(), "original_layout.safetensors")
	if err := weights.WriteFile(out, ts, nil); err != nil {
		t.Fatal(err)
	}
	return out
}
