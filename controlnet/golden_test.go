package controlnet

import (
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/weights"
)

func openUNet(t *testing.T, dir string) (*unet.Model, []byte) {
	t.Helper()
	wm, err := weights.OpenModel(dir, weights.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wm.Close()
	c := wm.Components[weights.UNet]
	cfg, err := unet.ParseConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	m, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadWeights(c.Source); err != nil {
		t.Fatal(err)
	}
	return m, c.Config
}

func int64sToFloat32(v []int64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// TestGoldenControlNet compares ControlNetModel's residuals, its
// conditioning embedding and the U-Net's output with the residuals at the
// case's conditioning scale with diffusers v0.29.2, for the diffusers folder
// and for the same weights saved in the original (AUTOMATIC1111 extension)
// layout as a single file.
func TestGoldenControlNet(t *testing.T) {
	backend, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	golden.ForKind(t, "controlnet", func(t *testing.T, c golden.Case) {
		data := c.Tensors(t, "data")
		u, unetConfig := openUNet(t, c.Path("unet"))
		sample, sampleShape := golden.Float32(t, data, "sample")
		ehs, ehsShape := golden.Float32(t, data, "encoder_hidden_states")
		ts64, _ := golden.Int64(t, data, "timesteps")
		ts := int64sToFloat32(ts64)
		cond, condShape := golden.Float32(t, data, "controlnet_cond")

		// The control image file reads as the reference's controlnet_cond.
		f, err := os.Open(c.Path("control_image"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		one, _ := ImageTensor(img)
		if d, _ := golden.MaxAbsDiff(slices.Concat(one, one), cond); d != 0 {
			t.Errorf("control image as [0,1] NCHW differs from controlnet_cond by %g", d)
		}

		folder, err := Open(c.Path("model"), nil)
		if err != nil {
			t.Fatal(err)
		}
		single := writeOriginalLayout(t, c.Path("model"), u.Config)
		sf, err := Open(single, unetConfig)
		if err != nil {
			t.Fatal(err)
		}
		scale := c.Float("conditioning_scale")
		for _, v := range []struct {
			name string
			m    *Model
		}{{"folder", folder}, {"original_single_file", sf}} {
			t.Run(v.name, func(t *testing.T) {
				res, err := v.m.Run(backend, sample, sampleShape, ts, ehs, ehsShape, cond, condShape)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Values) != 7 {
					t.Fatalf("%d residuals, want 6 down + mid", len(res.Values))
				}
				check := func(name string, got []float32) {
					want, _ := golden.Float32(t, data, name)
					golden.AssertClose(t, name, got, want, c.Tol(golden.MaxAbs(want)))
				}
				for i := range 6 {
					check("down_block_res_samples."+strconv.Itoa(i), res.Values[i])
				}
				check("mid_block_res_sample", res.Values[6])

				var emb []float32
				err = nn.Try(func() {
					e := context.MustNewExec(backend, v.m.Ctx.Reuse(), func(ctx *context.Context, x *Node) *Node { return v.m.Embed(ctx, x) })
					out := e.MustExec(tensors.FromFlatDataAndDimensions(cond, condShape...))
					emb = nn.Values(out[0])
				})
				if err != nil {
					t.Fatal(err)
				}
				check("cond_embedding", emb)

				scaled := make([][]float32, len(res.Values))
				for i, r := range res.Values {
					scaled[i] = make([]float32, len(r))
					for j, x := range r {
						scaled[i][j] = x * float32(scale)
					}
				}
				out, err := u.RunWithControl(backend, sample, sampleShape, ts, ehs, ehsShape, scaled, res.Shapes)
				if err != nil {
					t.Fatal(err)
				}
				check("unet_out_with_control", out)
			})
		}
	})
}

// writeOriginalLayout saves a diffusers ControlNet folder's weights under
// the original names (control_model.*), the inverse of weights' conversion
// written from diffusers' convert_controlnet_checkpoint.
func writeOriginalLayout(t *testing.T, dir string, ucfg unet.Config) string {
	t.Helper()
	wm, err := weights.OpenControlNet(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wm.Close()
	src := wm.Components[weights.ControlNet].Source
	cfg, err := ParseConfig(wm.Components[weights.ControlNet].Config)
	if err != nil {
		t.Fatal(err)
	}
	lastHint := 2 * (2*(len(cfg.ConditioningEmbeddingOutChannels)-1) + 1)
	layout := weights.Layout{LayersPerBlock: ucfg.LayersPerBlock[0]}
	var ts []weights.WriteTensor
	for _, key := range src.Keys() {
		var orig string
		mod, param := key[:strings.LastIndex(key, ".")], key[strings.LastIndex(key, ".")+1:]
		switch {
		case mod == "controlnet_cond_embedding.conv_in":
			orig = "input_hint_block.0." + param
		case mod == "controlnet_cond_embedding.conv_out":
			orig = "input_hint_block." + strconv.Itoa(lastHint) + "." + param
		case strings.HasPrefix(mod, "controlnet_cond_embedding.blocks."):
			i, _ := strconv.Atoi(strings.TrimPrefix(mod, "controlnet_cond_embedding.blocks."))
			orig = "input_hint_block." + strconv.Itoa(2*(i+1)) + "." + param
		case strings.HasPrefix(mod, "controlnet_down_blocks."):
			orig = "zero_convs." + strings.TrimPrefix(mod, "controlnet_down_blocks.") + ".0." + param
		case mod == "controlnet_mid_block":
			orig = "middle_block_out.0." + param
		default:
			o, _, err := weights.ToOriginalKey(weights.UNet, key, layout)
			if err != nil {
				t.Fatal(err)
			}
			orig = strings.TrimPrefix(o, "model.diffusion_model.")
		}
		v, shape, err := src.Float32(key)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, weights.WriteTensor{Name: "control_model." + orig, DType: weights.F32, Shape: shape, Float32: v})
	}
	path := filepath.Join(t.TempDir(), "control_tiny.safetensors")
	if err := weights.WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

// Files that are not ControlNets get errors saying what they are not.
func TestOpenRejectsFilesThatAreNotControlNets(t *testing.T) {
	m := golden.Load(t)
	var checkpoint, unetDir string
	var unetConfig []byte
	for _, c := range m.Cases {
		if c.Kind == "single_file" {
			checkpoint = c.Path("model")
		}
		if c.Kind == "controlnet" {
			unetDir = c.Path("unet")
		}
	}
	if checkpoint == "" || unetDir == "" {
		t.Skip("the manifest has no single_file or controlnet case")
	}
	b, err := os.ReadFile(filepath.Join(unetDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	unetConfig = b
	dir := t.TempDir()
	pickle := filepath.Join(dir, "control_sd15_canny.pth")
	if err := os.WriteFile(pickle, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{checkpoint, "not a ControlNet"},
		{unetDir, "not a ControlNetModel"},
		{pickle, "pickle"},
		{filepath.Join(dir, "missing.safetensors"), "no such file"},
	} {
		_, err := Open(c.path, unetConfig)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", filepath.Base(c.path), err, c.want)
		}
	}
}
