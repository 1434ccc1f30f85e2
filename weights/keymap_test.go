package weights

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var (
	sd1Layout = Layout{LayersPerBlock: 2, UpBlockAttention: []bool{false, true, true, true}, VAELevels: 4}
	sd2Layout = Layout{LayersPerBlock: 2, UpBlockAttention: []bool{false, true, true, true}, VAELevels: 4, OpenCLIP: true, TextLayers: 23}
)

func TestToDiffusersKeyMapsOriginalNames(t *testing.T) {
	tests := []struct {
		layout Layout
		orig   string
		want   string // component/key; "" for unexpected, "ignored"
	}{
		{sd1Layout, "model.diffusion_model.input_blocks.0.0.weight", "unet/conv_in.weight"},
		{sd1Layout, "model.diffusion_model.time_embed.2.bias", "unet/time_embedding.linear_2.bias"},
		{sd1Layout, "model.diffusion_model.input_blocks.3.0.op.bias", "unet/down_blocks.0.downsamplers.0.conv.bias"},
		{sd1Layout, "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", "unet/down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"},
		{sd1Layout, "model.diffusion_model.input_blocks.11.0.in_layers.2.weight", "unet/down_blocks.3.resnets.1.conv1.weight"},
		{sd1Layout, "model.diffusion_model.input_blocks.4.0.skip_connection.bias", "unet/down_blocks.1.resnets.0.conv_shortcut.bias"},
		{sd1Layout, "model.diffusion_model.middle_block.2.emb_layers.1.weight", "unet/mid_block.resnets.1.time_emb_proj.weight"},
		{sd1Layout, "model.diffusion_model.middle_block.1.transformer_blocks.0.ff.net.0.proj.weight", "unet/mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"},
		{sd1Layout, "model.diffusion_model.output_blocks.2.1.conv.weight", "unet/up_blocks.0.upsamplers.0.conv.weight"},
		{sd1Layout, "model.diffusion_model.output_blocks.5.2.conv.bias", "unet/up_blocks.1.upsamplers.0.conv.bias"},
		{sd1Layout, "model.diffusion_model.output_blocks.11.1.proj_out.weight", "unet/up_blocks.3.attentions.2.proj_out.weight"},
		{sd1Layout, "model.diffusion_model.output_blocks.6.0.out_layers.3.weight", "unet/up_blocks.2.resnets.0.conv2.weight"},
		{sd1Layout, "model.diffusion_model.out.2.weight", "unet/conv_out.weight"},
		{sd1Layout, "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight", "vae/decoder.up_blocks.3.resnets.0.conv_shortcut.weight"},
		{sd1Layout, "first_stage_model.decoder.up.3.upsample.conv.bias", "vae/decoder.up_blocks.0.upsamplers.0.conv.bias"},
		{sd1Layout, "first_stage_model.encoder.down.2.downsample.conv.weight", "vae/encoder.down_blocks.2.downsamplers.0.conv.weight"},
		{sd1Layout, "first_stage_model.encoder.mid.attn_1.proj_out.weight", "vae/encoder.mid_block.attentions.0.to_out.0.weight"},
		{sd1Layout, "first_stage_model.decoder.mid.attn_1.norm.bias", "vae/decoder.mid_block.attentions.0.group_norm.bias"},
		{sd1Layout, "first_stage_model.decoder.mid.block_2.conv1.weight", "vae/decoder.mid_block.resnets.1.conv1.weight"},
		{sd1Layout, "first_stage_model.decoder.norm_out.bias", "vae/decoder.conv_norm_out.bias"},
		{sd1Layout, "first_stage_model.quant_conv.weight", "vae/quant_conv.weight"},
		{sd1Layout, "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.bias", "text_encoder/text_model.encoder.layers.11.mlp.fc2.bias"},
		{sd1Layout, "cond_stage_model.transformer.text_model.final_layer_norm.weight", "text_encoder/text_model.final_layer_norm.weight"},
		{sd1Layout, "cond_stage_model.transformer.embeddings.token_embedding.weight", "text_encoder/text_model.embeddings.token_embedding.weight"},
		// Tensors real files carry that no diffusers model holds.
		{sd1Layout, "betas", "ignored"},
		{sd1Layout, "alphas_cumprod_prev", "ignored"},
		{sd1Layout, "model_ema.decay", "ignored"},
		{sd1Layout, "model_ema.diffusion_modelinput_blocks00weight", "ignored"},
		{sd1Layout, "cond_stage_model.transformer.text_model.embeddings.position_ids", "ignored"},
		// Keys that map nowhere.
		{sd1Layout, "model.diffusion_model.label_emb.0.0.weight", ""},
		{sd1Layout, "model.diffusion_model.input_blocks.3.1.norm.weight", ""}, // no attention at a downsampler's slot
		{sd1Layout, "model.diffusion_model.input_blocks.01.0.in_layers.0.weight", ""},
		{sd1Layout, "model.diffusion_model.output_blocks.3.1.conv.weight", ""}, // an upsampler only ends a level
		{sd1Layout, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.bias", ""},
		{sd1Layout, "first_stage_model.encoder.down.4.block.0.conv1.weight", ""},
		{sd1Layout, "first_stage_model.loss.logvar", ""},
		{sd1Layout, "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.qkv.weight", ""},
		{sd1Layout, "control_model.zero_convs.0.0.weight", ""},
		// SD2: OpenCLIP text tower and linear projections.
		{sd2Layout, "model.diffusion_model.input_blocks.1.1.proj_in.weight", "unet/down_blocks.0.attentions.0.proj_in.weight"},
		{sd2Layout, "cond_stage_model.model.positional_embedding", "text_encoder/text_model.embeddings.position_embedding.weight"},
		{sd2Layout, "cond_stage_model.model.token_embedding.weight", "text_encoder/text_model.embeddings.token_embedding.weight"},
		{sd2Layout, "cond_stage_model.model.ln_final.bias", "text_encoder/text_model.final_layer_norm.bias"},
		{sd2Layout, "cond_stage_model.model.transformer.resblocks.5.mlp.c_fc.bias", "text_encoder/text_model.encoder.layers.5.mlp.fc1.bias"},
		{sd2Layout, "cond_stage_model.model.transformer.resblocks.22.attn.out_proj.weight", "text_encoder/text_model.encoder.layers.22.self_attn.out_proj.weight"},
		{sd2Layout, "cond_stage_model.model.transformer.resblocks.0.ln_2.weight", "text_encoder/text_model.encoder.layers.0.layer_norm2.weight"},
		{sd2Layout, "cond_stage_model.model.transformer.resblocks.23.ln_1.weight", "ignored"},
		{sd2Layout, "cond_stage_model.model.text_projection", "ignored"},
		{sd2Layout, "cond_stage_model.model.logit_scale", "ignored"},
		{sd2Layout, "cond_stage_model.model.ln_final", ""},
	}
	for _, tt := range tests {
		targets, ignored := ToDiffusersKey(tt.orig, tt.layout)
		got := ""
		switch {
		case ignored:
			got = "ignored"
		case len(targets) == 1 && targets[0].Part == whole:
			got = targets[0].Component + "/" + targets[0].Key
		case len(targets) > 1:
			t.Errorf("%s: %d targets, want 1", tt.orig, len(targets))
			continue
		}
		if got != tt.want {
			t.Errorf("ToDiffusersKey(%q) = %q, want %q", tt.orig, got, tt.want)
			continue
		}
		if got == "" || got == "ignored" || strings.Contains(tt.orig, ".transformer.embeddings.") {
			continue
		}
		back, part, err := ToOriginalKey(targets[0].Component, targets[0].Key, tt.layout)
		if err != nil || back != tt.orig || part != whole {
			t.Errorf("ToOriginalKey(%s) = %q %v %v, want %q", got, back, part, err, tt.orig)
		}
	}
}

func TestOpenCLIPInProjSplitsIntoQKV(t *testing.T) {
	for _, suffix := range []string{"weight", "bias"} {
		orig := "cond_stage_model.model.transformer.resblocks.3.attn.in_proj_" + suffix
		targets, ignored := ToDiffusersKey(orig, sd2Layout)
		if ignored || len(targets) != 3 {
			t.Fatalf("%s: %v ignored=%v", orig, targets, ignored)
		}
		for i, qkv := range []string{"q", "k", "v"} {
			want := Target{TextEncoder, "text_model.encoder.layers.3.self_attn." + qkv + "_proj." + suffix, Part{i, 3}}
			if targets[i] != want {
				t.Errorf("target %d = %+v, want %+v", i, targets[i], want)
			}
			back, part, err := ToOriginalKey(TextEncoder, want.Key, sd2Layout)
			if err != nil || back != orig || part != want.Part {
				t.Errorf("ToOriginalKey(%s) = %q %v %v", want.Key, back, part, err)
			}
		}
	}
}

func TestToOriginalKeyRefusesUnknownKeys(t *testing.T) {
	for _, k := range []struct{ comp, key string }{
		{UNet, "down_blocks.0.resnets.2.conv1.weight"}, // layers_per_block is 2
		{UNet, "add_embedding.linear_1.weight"},
		{VAE, "decoder.up_blocks.4.resnets.0.conv1.weight"},
		{TextEncoder, "text_projection.weight"},
		{"safety_checker", "vision_model.post_layernorm.weight"},
	} {
		if orig, _, err := ToOriginalKey(k.comp, k.key, sd1Layout); err == nil {
			t.Errorf("ToOriginalKey(%s, %s) = %q, want an error", k.comp, k.key, orig)
		}
	}
}

func TestVAEAttentionShapesConvert(t *testing.T) {
	tests := []struct {
		comp, key string
		orig      []int
		want      []int
	}{
		{VAE, "encoder.mid_block.attentions.0.to_q.weight", []int{512, 512, 1, 1}, []int{512, 512}},
		{VAE, "decoder.mid_block.attentions.0.to_out.0.weight", []int{512, 512, 1}, []int{512, 512}},
		{VAE, "decoder.mid_block.attentions.0.to_out.0.weight", []int{512, 512}, []int{512, 512}},
		{VAE, "decoder.mid_block.attentions.0.to_q.bias", []int{512}, []int{512}},
		{VAE, "encoder.conv_out.weight", []int{8, 512, 3, 3}, []int{8, 512, 3, 3}},
		{UNet, "down_blocks.0.attentions.0.proj_in.weight", []int{320, 320, 1, 1}, []int{320, 320, 1, 1}},
	}
	for _, tt := range tests {
		got, err := diffusersShape(tt.comp, tt.key, tt.orig, whole)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("diffusersShape(%s, %v) = %v %v, want %v", tt.key, tt.orig, got, err, tt.want)
		}
	}
	if got := originalShape(VAE, "encoder.mid_block.attentions.0.to_v.weight", []int{64, 64}); !slices.Equal(got, []int{64, 64, 1, 1}) {
		t.Errorf("originalShape = %v, want [64 64 1 1]", got)
	}
	if _, err := diffusersShape(TextEncoder, "x", []int{10, 4}, Part{0, 3}); err == nil {
		t.Error("splitting 10 rows in 3 should fail")
	}
}

// roundTrip writes a synthetic model as a single file and opens it again.
func roundTrip(t *testing.T, configs map[string][]byte, dtype DType, opts OpenOptions) (*Model, *Model) {
	t.Helper()
	src := synthModel(t, configs, 7)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := WriteSingleFile(path, src, dtype, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	m, err := OpenModel(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return src, m
}

func TestSingleFileRoundTrip(t *testing.T) {
	inpaint := smallConfigs(t, "sd15")
	var u map[string]any
	json.Unmarshal(inpaint[UNet], &u)
	u["in_channels"] = 9
	inpaint[UNet], _ = json.Marshal(u)

	tests := []struct {
		name    string
		configs map[string][]byte
		dtype   DType
		family  string
	}{
		{"sd15 structure f16", smallConfigs(t, "sd15"), F16, "sd15"},
		{"sd15 structure f32", smallConfigs(t, "sd15"), F32, "sd15"},
		{"sd15 inpainting bf16", inpaint, BF16, "sd15"},
		{"sd21 structure f16", smallConfigs(t, "sd21"), F16, "sd21"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, m := roundTrip(t, tt.configs, tt.dtype, OpenOptions{})
			if m.Format != FormatSingleFile || len(m.Unexpected) != 0 || len(m.Ignored) != 0 {
				t.Errorf("format %s, unexpected %v, ignored %v", m.Format, m.Unexpected, m.Ignored)
			}
			if got := sortedNames(m.Components); !slices.Equal(got, []string{Scheduler, TextEncoder, UNet, VAE}) {
				t.Errorf("components %v", got)
			}
			round := map[DType]func(float32) float32{
				F32:  func(x float32) float32 { return x },
				F16:  func(x float32) float32 { return HalfToFloat32(Float32ToHalf(x)) },
				BF16: func(x float32) float32 { return BF16ToFloat32(Float32ToBF16(x)) },
			}[tt.dtype]
			for _, name := range modelComponents {
				want, got := src.Components[name], m.Components[name]
				if len(got.Unexpected) != 0 {
					t.Errorf("%s: unexpected %v", name, got.Unexpected)
				}
				if !slices.Equal(got.Source.Keys(), want.Source.Keys()) {
					t.Fatalf("%s: %d keys, want %d", name, len(got.Source.Keys()), len(want.Source.Keys()))
				}
				for _, k := range want.Source.Keys() {
					a, sa, err := got.Source.Float32(k)
					if err != nil {
						t.Fatal(err)
					}
					b, sb, _ := want.Source.Float32(k)
					if !slices.Equal(sa, sb) {
						t.Fatalf("%s/%s: shape %v, want %v", name, k, sa, sb)
					}
					for i := range b {
						if math.Float32bits(a[i]) != math.Float32bits(round(b[i])) {
							t.Fatalf("%s/%s[%d] = %g, want %g", name, k, i, a[i], round(b[i]))
						}
					}
				}
				// The config: the shape-determined fields equal the source's, the rest is the family's.
				fields, err := InferConfig(name, got.Source)
				if err != nil {
					t.Fatal(err)
				}
				if err := checkConfig(name, want.Config, fields); err != nil {
					t.Error(err)
				}
				if err := checkConfig(name, got.Config, fields); err != nil {
					t.Errorf("opened config: %v", err)
				}
				if !strings.Contains(got.ConfigOrigin, tt.family) {
					t.Errorf("%s config origin %q, want %s defaults", name, got.ConfigOrigin, tt.family)
				}
			}
		})
	}
}

func TestSingleFileFamilyDefaults(t *testing.T) {
	tests := []struct {
		preset     string
		opts       OpenOptions
		heads      any
		textHeads  float64
		sample     float64
		prediction any
	}{
		{"sd15", OpenOptions{}, 8.0, 1, 64, nil},
		{"sd15", OpenOptions{PredictionType: "v_prediction"}, 8.0, 1, 64, "v_prediction"},
		{"sd21", OpenOptions{}, []any{1.0, 1.0, 1.0, 1.0}, 1, 96, "v_prediction"},
		{"sd21", OpenOptions{PredictionType: "epsilon"}, []any{1.0, 1.0, 1.0, 1.0}, 1, 64, "epsilon"},
	}
	for _, tt := range tests {
		_, m := roundTrip(t, smallConfigs(t, tt.preset), F16, tt.opts)
		var u, te, s map[string]any
		json.Unmarshal(m.Components[UNet].Config, &u)
		json.Unmarshal(m.Components[TextEncoder].Config, &te)
		json.Unmarshal(m.Components[Scheduler].Config, &s)
		if jsonString(u["attention_head_dim"]) != jsonString(tt.heads) || te["num_attention_heads"] != tt.textHeads ||
			u["sample_size"] != tt.sample || s["prediction_type"] != tt.prediction {
			t.Errorf("%s %+v: heads %v, text heads %v, sample_size %v, prediction %v", tt.preset, tt.opts,
				u["attention_head_dim"], te["num_attention_heads"], u["sample_size"], s["prediction_type"])
		}
	}
}

func writeConfigFolder(t *testing.T, configs map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, cfg := range configs {
		file := "config.json"
		if name == Scheduler {
			file = "scheduler_config.json"
		}
		os.MkdirAll(filepath.Join(dir, name), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name, file), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenCLIPKeepsConfiguredLayers(t *testing.T) {
	cfgs := smallConfigs(t, "sd21")
	var te map[string]any
	json.Unmarshal(cfgs[TextEncoder], &te)
	te["num_hidden_layers"] = 24 // as the original OpenCLIP ViT-H has
	cfgs[TextEncoder], _ = json.Marshal(te)

	_, m := roundTrip(t, cfgs, F16, OpenOptions{})
	fields, _ := InferConfig(TextEncoder, m.Components[TextEncoder].Source)
	if fields["num_hidden_layers"] != 23 || len(m.Ignored) != 12 || !strings.Contains(m.Ignored[0], "resblocks.23.") {
		t.Errorf("default: %v layers, ignored %v; want 23 layers and the 12 tensors of resblocks.23", fields["num_hidden_layers"], m.Ignored)
	}
	_, m = roundTrip(t, cfgs, F16, OpenOptions{ConfigFrom: writeConfigFolder(t, cfgs)})
	fields, _ = InferConfig(TextEncoder, m.Components[TextEncoder].Source)
	if fields["num_hidden_layers"] != 24 || len(m.Ignored) != 0 {
		t.Errorf("ConfigFrom with 24 layers: %v layers, ignored %v", fields["num_hidden_layers"], m.Ignored)
	}
}

func TestConfigFromMustFitTheWeights(t *testing.T) {
	cfgs := smallConfigs(t, "sd15")
	wrong := smallConfigs(t, "sd15")
	var u map[string]any
	json.Unmarshal(wrong[UNet], &u)
	u["block_out_channels"] = []int{32, 64, 64, 128}
	wrong[UNet], _ = json.Marshal(u)
	src := synthModel(t, cfgs, 1)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := WriteSingleFile(path, src, F16, nil); err != nil {
		t.Fatal(err)
	}
	_, err := OpenModel(path, OpenOptions{ConfigFrom: writeConfigFolder(t, wrong)})
	if err == nil || !strings.Contains(err.Error(), "block_out_channels is [32,64,64,128] but the weights give [32,64,64,64]") {
		t.Errorf("err = %v", err)
	}
}

func sortedNames[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
