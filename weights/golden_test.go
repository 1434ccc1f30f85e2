package weights_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/weights"
)

type keymapEntry struct {
	Original       string `json:"original"`
	DiffusersShape []int  `json:"diffusers_shape"`
	OriginalShape  []int  `json:"original_shape"`
}

func readKeymap(t *testing.T, path string) map[string]keymapEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var km struct {
		Map map[string]keymapEntry `json:"map"`
	}
	if err := json.Unmarshal(b, &km); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(km.Map) == 0 {
		t.Fatalf("%s: empty map", path)
	}
	return km.Map
}

func openModel(t *testing.T, path string, opts weights.OpenOptions) *weights.Model {
	t.Helper()
	m, err := weights.OpenModel(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// halfRound is fp16(x) as PyTorch's .half() computes it, back in float32.
func halfRound(x float32) float32 { return weights.HalfToFloat32(weights.Float32ToHalf(x)) }

func TestGoldenSingleFile(t *testing.T) {
	golden.ForKind(t, "single_file", func(t *testing.T, c golden.Case) {
		file, refDir := c.Path("model"), c.Path("reference")
		km := readKeymap(t, c.Path("keymap"))

		t.Run("every key maps by rule", func(t *testing.T) {
			f, err := weights.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := map[string]string{} // original → component/key
			for ck, e := range km {
				want[e.Original] = ck
			}
			layout := weights.OriginalLayout(f.Names())
			mapped, ignored := 0, 0
			for _, name := range f.Names() {
				targets, ign := weights.ToDiffusersKey(name, layout)
				w, inMap := want[name]
				switch {
				case !inMap && ign:
					ignored++
				case !inMap:
					t.Errorf("%s: not in the keymap, so it should be ignored; got targets %v", name, targets)
				case len(targets) != 1 || targets[0].Component+"/"+targets[0].Key != w:
					t.Errorf("%s: maps to %v, want %s", name, targets, w)
				default:
					mapped++
				}
			}
			if mapped != len(km) || ignored != 4 {
				t.Errorf("mapped %d of %d keymap entries, ignored %d (want 4 extras)", mapped, len(km), ignored)
			}
			// And back, with the layout taken from the reference configs.
			cfg := func(name string) []byte {
				b, err := os.ReadFile(filepath.Join(refDir, name, "config.json"))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			back, err := weights.LayoutFromConfigs(cfg("unet"), cfg("vae"), cfg("text_encoder"))
			if err != nil {
				t.Fatal(err)
			}
			for ck, e := range km {
				comp, key, _ := strings.Cut(ck, "/")
				orig, part, err := weights.ToOriginalKey(comp, key, back)
				if err != nil || orig != e.Original || part.Of != 1 {
					t.Errorf("ToOriginalKey(%s, %s) = %q %v %v, want %q", comp, key, orig, part, err, e.Original)
				}
			}
		})

		sf := openModel(t, file, weights.OpenOptions{ConfigFrom: refDir})
		ref := openModel(t, refDir, weights.OpenOptions{})

		t.Run("values are fp16 of the reference", func(t *testing.T) {
			checked := 0
			for ck, e := range km {
				comp, key, _ := strings.Cut(ck, "/")
				got, shape, err := sf.Components[comp].Source.Float32(key)
				if err != nil {
					t.Fatal(err)
				}
				want, wantShape, err := ref.Components[comp].Source.Float32(key)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(shape, e.DiffusersShape) || !slices.Equal(shape, wantShape) {
					t.Errorf("%s: shape %v, keymap says %v, reference %v", ck, shape, e.DiffusersShape, wantShape)
					continue
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(halfRound(want[i])) {
						t.Errorf("%s[%d] = %g, want fp16(%g) = %g", ck, i, got[i], want[i], halfRound(want[i]))
						break
					}
				}
				checked++
			}
			if checked != len(km) {
				t.Errorf("checked %d of %d tensors", checked, len(km))
			}
		})

		t.Run("single file with ConfigFrom equals the diffusers folder", func(t *testing.T) {
			if got, want := sortedKeys(sf.Components), sortedKeys(ref.Components); !slices.Equal(got, want) {
				t.Fatalf("components %v, want %v", got, want)
			}
			if len(sf.Unexpected) != 0 {
				t.Errorf("unexpected keys: %v", sf.Unexpected)
			}
			for name, rc := range ref.Components {
				sc := sf.Components[name]
				if string(sc.Config) != string(rc.Config) {
					t.Errorf("%s: config differs:\n%s\nwant\n%s", name, sc.Config, rc.Config)
				}
				if len(sc.Unexpected) != 0 {
					t.Errorf("%s: unexpected keys %v", name, sc.Unexpected)
				}
				if name == "tokenizer" && sc.Dir != rc.Dir {
					t.Errorf("tokenizer dir %q, want %q", sc.Dir, rc.Dir)
				}
				if (sc.Source == nil) != (rc.Source == nil) {
					t.Errorf("%s: source presence differs", name)
				}
				if rc.Source == nil {
					continue
				}
				if got, want := sc.Source.Keys(), rc.Source.Keys(); !slices.Equal(got, want) {
					t.Errorf("%s: %d keys, want %d", name, len(got), len(want))
					continue
				}
				var worst float64
				for _, k := range rc.Source.Keys() {
					dt, s1, _ := sc.Source.Info(k)
					_, s2, _ := rc.Source.Info(k)
					if dt != weights.F16 || !slices.Equal(s1, s2) {
						t.Errorf("%s/%s: %s %v, want F16 %v", name, k, dt, s1, s2)
					}
					a, _, _ := sc.Source.Float32(k)
					b, _, _ := rc.Source.Float32(k)
					for i := range b {
						// fp16 keeps 11 significant bits: half an ulp is 2^-11 relative (2^-25 absolute for subnormals).
						d := math.Abs(float64(a[i]) - float64(b[i]))
						if tol := math.Max(math.Abs(float64(b[i]))*0x1p-11, 0x1p-25); d > tol {
							t.Errorf("%s/%s[%d]: %g vs %g differ by more than fp16 rounding", name, k, i, a[i], b[i])
							break
						}
						worst = math.Max(worst, d)
					}
				}
				t.Logf("%s: %d tensors, max abs difference %.3g", name, len(rc.Source.Keys()), worst)
			}
		})

		t.Run("inferred configs match the reference", func(t *testing.T) {
			plain := openModel(t, file, weights.OpenOptions{})
			required := map[string][]string{
				"unet": {"in_channels", "out_channels", "block_out_channels", "layers_per_block", "cross_attention_dim",
					"use_linear_projection", "down_block_types", "up_block_types", "mid_block_type", "transformer_layers_per_block"},
				"vae":          {"in_channels", "out_channels", "block_out_channels", "latent_channels", "layers_per_block", "down_block_types", "up_block_types"},
				"text_encoder": {"hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size", "max_position_embeddings"},
			}
			for name, fields := range required {
				var want, full map[string]any
				if err := json.Unmarshal(ref.Components[name].Config, &want); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(plain.Components[name].Config, &full); err != nil {
					t.Fatal(err)
				}
				inferred, err := weights.InferConfig(name, plain.Components[name].Source)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range fields {
					if _, ok := inferred[k]; !ok {
						t.Errorf("%s: %s not inferred", name, k)
					}
				}
				for k, v := range inferred {
					if jsonOf(v) != jsonOf(want[k]) || jsonOf(full[k]) != jsonOf(want[k]) {
						t.Errorf("%s %s: inferred %s (config %s), reference %s", name, k, jsonOf(v), jsonOf(full[k]), jsonOf(want[k]))
					}
				}
			}
			// What shapes cannot tell comes from the SD1 family defaults.
			var u, te map[string]any
			json.Unmarshal(plain.Components["unet"].Config, &u)
			json.Unmarshal(plain.Components["text_encoder"].Config, &te)
			if u["attention_head_dim"] != 8.0 || te["hidden_act"] != "quick_gelu" || u["norm_num_groups"] != 32.0 {
				t.Errorf("family defaults: attention_head_dim %v, hidden_act %v, norm_num_groups %v", u["attention_head_dim"], te["hidden_act"], u["norm_num_groups"])
			}
			if got := plain.Ignored; len(got) != 4 {
				t.Errorf("ignored %v, want the 4 schedule/position_ids keys", got)
			}
		})
	})
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	var x any
	json.Unmarshal(b, &x)
	b, _ = json.Marshal(x)
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
