package weights

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeComponent writes a component folder: config plus weights from a
// synthetic source under the given file name (sharded in two when the name
// is an .index.json).
func writeComponent(t *testing.T, dir string, c *Component, file string, dtype DType, rename func(string) string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), c.Config, 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []WriteTensor
	for _, k := range c.Source.Keys() {
		v, shape, _ := c.Source.Float32(k)
		name := k
		if rename != nil {
			name = rename(k)
		}
		ts = append(ts, WriteTensor{Name: name, DType: dtype, Shape: shape, Float32: v})
	}
	if !strings.Contains(file, ".index.") {
		if err := WriteFile(filepath.Join(dir, file), ts, nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	weightMap := map[string]string{}
	half := len(ts) / 2
	for i, part := range [][]WriteTensor{ts[:half], ts[half:]} {
		shard := fmt.Sprintf("%s-%05d-of-00002.safetensors", strings.Split(file, ".")[0], i+1)
		if err := WriteFile(filepath.Join(dir, shard), part, nil); err != nil {
			t.Fatal(err)
		}
		for _, w := range part {
			weightMap[w.Name] = shard
		}
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap})
	os.WriteFile(filepath.Join(dir, file), b, 0o644)
}

// writePipeline writes a diffusers folder of a small SD1.5-structured model.
func writePipeline(t *testing.T, dir string, files map[string]string) *Model {
	t.Helper()
	src := synthModel(t, smallConfigs(t, "sd15"), 3)
	index := `{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
	  "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
	  "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"],
	  "safety_checker": [null, null], "feature_extractor": [null, null]}`
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(index), 0o644)
	for _, name := range modelComponents {
		file := files[name]
		if file == "" {
			file = map[string]string{UNet: "diffusion_pytorch_model.safetensors", VAE: "diffusion_pytorch_model.safetensors", TextEncoder: "model.safetensors"}[name]
		}
		writeComponent(t, filepath.Join(dir, name), src.Components[name], file, F32, nil)
	}
	os.MkdirAll(filepath.Join(dir, "tokenizer"), 0o755)
	os.WriteFile(filepath.Join(dir, "tokenizer", "vocab.json"), []byte(`{}`), 0o644)
	os.MkdirAll(filepath.Join(dir, "scheduler"), 0o755)
	p, _ := Preset("sd15")
	os.WriteFile(filepath.Join(dir, "scheduler", "scheduler_config.json"), p[Scheduler], 0o644)
	return src
}

func TestOpenDiffusersFolder(t *testing.T) {
	dir := t.TempDir()
	src := writePipeline(t, dir, nil)
	m, err := OpenModel(dir, OpenOptions{PredictionType: "v_prediction"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Format != FormatDiffusers || !slices.Equal(sortedNames(m.Components), []string{Scheduler, TextEncoder, Tokenizer, UNet, VAE}) {
		t.Fatalf("format %s, components %v", m.Format, sortedNames(m.Components))
	}
	if m.Components[Tokenizer].Dir != filepath.Join(dir, "tokenizer") || m.Components[Tokenizer].Source != nil {
		t.Errorf("tokenizer %+v", m.Components[Tokenizer])
	}
	var s map[string]any
	json.Unmarshal(m.Components[Scheduler].Config, &s)
	if s["prediction_type"] != "v_prediction" || s["_class_name"] != "PNDMScheduler" {
		t.Errorf("scheduler config %s", m.Components[Scheduler].Config)
	}
	for _, name := range modelComponents {
		got, want := m.Components[name].Source, src.Components[name].Source
		if !slices.Equal(got.Keys(), want.Keys()) {
			t.Errorf("%s: keys differ", name)
		}
		k := want.Keys()[len(want.Keys())/2]
		a, _, _ := got.Float32(k)
		b, _, _ := want.Float32(k)
		if maxAbsDiff(a, b) != 0 {
			t.Errorf("%s/%s differs", name, k)
		}
	}
}

func TestDiffusersWeightFileChoice(t *testing.T) {
	tests := []struct {
		name    string
		files   []string // weight files written in unet/, all as F16 when named .fp16
		variant string
		want    DType
		wantErr string
	}{
		{"plain", []string{"diffusion_pytorch_model.safetensors"}, "", F32, ""},
		{"fp16 only", []string{"diffusion_pytorch_model.fp16.safetensors"}, "", F16, ""},
		{"both, default plain", []string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}, "", F32, ""},
		{"both, fp16 asked", []string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}, "fp16", F16, ""},
		{"sharded", []string{"diffusion_pytorch_model.safetensors.index.json"}, "", F32, ""},
		{"sharded fp16", []string{"diffusion_pytorch_model.safetensors.index.fp16.json"}, "fp16", F16, ""},
		{"pickle only", []string{"diffusion_pytorch_model.bin"}, "", "", "only PyTorch pickle weights (diffusion_pytorch_model.bin)"},
		{"nothing", nil, "", "", "no weights"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := synthModel(t, smallConfigs(t, "sd15"), 5).Components[UNet]
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "config.json"), src.Config, 0o644)
			for _, f := range tt.files {
				if strings.HasSuffix(f, ".bin") {
					os.WriteFile(filepath.Join(dir, f), []byte("PK"), 0o644)
					continue
				}
				dt := F32
				if strings.Contains(f, "fp16") {
					dt = F16
				}
				writeComponent(t, dir, src, f, dt, nil)
			}
			m, err := OpenModel(dir, OpenOptions{Variant: tt.variant})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			c := m.Components[UNet]
			if m.Format != FormatComponent || c == nil {
				t.Fatalf("format %s, components %v", m.Format, sortedNames(m.Components))
			}
			keys := c.Source.Keys()
			if len(keys) != len(src.Source.Keys()) {
				t.Fatalf("%d keys, want %d", len(keys), len(src.Source.Keys()))
			}
			for _, k := range keys {
				if dt, _, _ := c.Source.Info(k); dt != tt.want {
					t.Fatalf("%s stored as %s, want %s", k, dt, tt.want)
				}
			}
		})
	}
}

func TestShardIndexMustStayInItsFolder(t *testing.T) {
	for _, tt := range []struct{ weightMap, want string }{
		{`{"conv_in.weight": "../evil.safetensors"}`, "must be a .safetensors file in the same folder"},
		{`{"conv_in.weight": "part.safetensors"}`, "no such file"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"_class_name": "UNet2DConditionModel"}`), 0o644)
		os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors.index.json"), []byte(`{"weight_map": `+tt.weightMap+`}`), 0o644)
		if _, err := OpenModel(dir, OpenOptions{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"_class_name": "UNet2DConditionModel"}`), 0o644)
	WriteFile(filepath.Join(dir, "part.safetensors"), []WriteTensor{{Name: "a", DType: F32, Shape: []int{1}, Float32: []float32{1}}}, nil)
	os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors.index.json"), []byte(`{"weight_map": {"b": "part.safetensors"}}`), 0o644)
	if _, err := OpenModel(dir, OpenOptions{}); err == nil || !strings.Contains(err.Error(), `the index puts "b" in part.safetensors but that file has no such tensor`) {
		t.Errorf("err = %v", err)
	}
}

func TestOldDiffusersVAENamesAndPositionIDs(t *testing.T) {
	dir := t.TempDir()
	src := synthModel(t, smallConfigs(t, "sd15"), 9)
	old := strings.NewReplacer("attentions.0.to_q.", "attentions.0.query.", "attentions.0.to_k.", "attentions.0.key.",
		"attentions.0.to_v.", "attentions.0.value.", "attentions.0.to_out.0.", "attentions.0.proj_attn.")
	writeComponent(t, dir, src.Components[VAE], "diffusion_pytorch_model.safetensors", F32, old.Replace)
	m, err := OpenModel(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !slices.Equal(m.Components[VAE].Source.Keys(), src.Components[VAE].Source.Keys()) {
		t.Errorf("old VAE attention names were not renamed")
	}

	tdir := t.TempDir()
	te := src.Components[TextEncoder]
	// transformers 5.6 saves CLIPTextModel without the text_model level.
	writeComponent(t, tdir, te, "model.safetensors", F32, func(k string) string { return strings.TrimPrefix(k, "text_model.") })
	// transformers before 4.31 stored position_ids as a buffer.
	f, _ := Open(filepath.Join(tdir, "model.safetensors"))
	var ts []WriteTensor
	for _, n := range f.Names() {
		v, shape, _ := f.Float32(n)
		ts = append(ts, WriteTensor{Name: n, DType: F32, Shape: shape, Float32: v})
	}
	f.Close()
	ts = append(ts, WriteTensor{Name: "text_model.embeddings.position_ids", DType: I64, Shape: []int{1, 3}, Int64: []int64{0, 1, 2}})
	WriteFile(filepath.Join(tdir, "model.safetensors"), ts, nil)
	m2, err := OpenModel(tdir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if c, ok := m2.Components[TextEncoder]; !ok || !slices.Equal(c.Source.Keys(), te.Source.Keys()) ||
		!slices.Equal(m2.Ignored, []string{"text_encoder/text_model.embeddings.position_ids"}) {
		t.Errorf("components %v, ignored %v", sortedNames(m2.Components), m2.Ignored)
	}
}

func TestOpenHFCacheLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "models--org--tiny")
	snap := filepath.Join(root, "snapshots", "0123abcd")
	writePipeline(t, snap, nil)
	os.MkdirAll(filepath.Join(root, "refs"), 0o755)
	os.WriteFile(filepath.Join(root, "refs", "main"), []byte("0123abcd\n"), 0o644)
	m, err := OpenModel(root, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Format != FormatDiffusers || m.Components[Tokenizer].Dir != filepath.Join(snap, "tokenizer") {
		t.Errorf("format %s, tokenizer %q", m.Format, m.Components[Tokenizer].Dir)
	}
}

func TestOpenModelErrors(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "v1-5-pruned.ckpt")
	os.WriteFile(ckpt, []byte("PK\x03\x04"), 0o644)
	diffusersKeyed := filepath.Join(dir, "unet.safetensors")
	WriteFile(diffusersKeyed, []WriteTensor{{Name: "conv_in.weight", DType: F32, Shape: []int{1}, Float32: []float32{1}}}, nil)
	missing := filepath.Join(dir, "pipe")
	os.MkdirAll(missing, 0o755)
	os.WriteFile(filepath.Join(missing, "model_index.json"), []byte(`{"unet": ["diffusers", "UNet2DConditionModel"]}`), 0o644)
	empty := t.TempDir()

	tests := []struct {
		path string
		opts OpenOptions
		want string
	}{
		{ckpt, OpenOptions{}, "pickle checkpoints are not supported (they can run code when loaded); convert it to .safetensors"},
		{diffusersKeyed, OpenOptions{}, "not an original Stable Diffusion checkpoint"},
		{missing, OpenOptions{}, "model_index.json lists unet but the folder"},
		{empty, OpenOptions{}, "not a model folder"},
		{filepath.Join(dir, "nope"), OpenOptions{}, "no such file"},
		{empty, OpenOptions{PredictionType: "x0"}, `prediction type "x0"`},
	}
	for _, tt := range tests {
		m, err := OpenModel(tt.path, tt.opts)
		if err == nil {
			m.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("OpenModel(%s) err = %v, want %q", filepath.Base(tt.path), err, tt.want)
		}
	}
}

// Keys that map nowhere are reported by name, per component.
func TestSingleFileReportsUnexpectedKeys(t *testing.T) {
	src := synthModel(t, smallConfigs(t, "sd15"), 2)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.safetensors")
	if err := WriteSingleFile(plain, src, F16, nil); err != nil {
		t.Fatal(err)
	}
	f, _ := Open(plain)
	var ts []WriteTensor
	for _, n := range f.Names() {
		v, shape, _ := f.Float32(n)
		ts = append(ts, WriteTensor{Name: n, DType: F16, Shape: shape, Float32: v})
	}
	f.Close()
	extra := []string{"model.diffusion_model.label_emb.0.0.weight", "first_stage_model.loss.logvar", "lora_te_text_model_encoder_layers_0.alpha", "betas", "model_ema.num_updates"}
	for _, n := range extra {
		ts = append(ts, WriteTensor{Name: n, DType: F16, Shape: []int{1}, Float32: []float32{0}})
	}
	path := filepath.Join(dir, "extra.safetensors")
	if err := WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	m, err := OpenModel(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.Components[UNet].Unexpected; !slices.Equal(got, extra[:1]) {
		t.Errorf("unet unexpected %v", got)
	}
	if got := m.Components[VAE].Unexpected; !slices.Equal(got, extra[1:2]) {
		t.Errorf("vae unexpected %v", got)
	}
	if !slices.Equal(m.Unexpected, extra[2:3]) || !slices.Equal(m.Ignored, []string{"betas", "model_ema.num_updates"}) {
		t.Errorf("model unexpected %v, ignored %v", m.Unexpected, m.Ignored)
	}
}

// vae-ft-mse-840000-ema-pruned.safetensors and its kind hold a VAE in the
// original layout without the first_stage_model. prefix.
func TestStandaloneOriginalVAEFile(t *testing.T) {
	src := synthModel(t, smallConfigs(t, "sd15"), 4)
	vaeOnly := &Model{Components: map[string]*Component{VAE: src.Components[VAE]}}
	dir := t.TempDir()
	full := filepath.Join(dir, "full.safetensors")
	if err := WriteSingleFile(full, vaeOnly, F16, nil); err != nil {
		t.Fatal(err)
	}
	f, _ := Open(full)
	var ts []WriteTensor
	for _, n := range f.Names() {
		v, shape, _ := f.Float32(n)
		ts = append(ts, WriteTensor{Name: strings.TrimPrefix(n, vaePrefix), DType: F16, Shape: shape, Float32: v})
	}
	f.Close()
	ts = append(ts, WriteTensor{Name: "model_ema.decay", DType: F32, Shape: []int{}, Float32: []float32{0.9999}})
	bare := filepath.Join(dir, "vae-ft-mse.safetensors")
	if err := WriteFile(bare, ts, nil); err != nil {
		t.Fatal(err)
	}
	m, err := OpenModel(bare, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Components[VAE]
	if c == nil || !slices.Equal(c.Source.Keys(), src.Components[VAE].Source.Keys()) || len(c.Unexpected) != 0 ||
		!slices.Equal(m.Ignored, []string{"model_ema.decay"}) || len(m.Components) != 1 {
		t.Fatalf("components %v, ignored %v", sortedNames(m.Components), m.Ignored)
	}
	k := "decoder.mid_block.attentions.0.to_out.0.weight"
	a, shape, _ := c.Source.Float32(k)
	b, _, _ := src.Components[VAE].Source.Float32(k)
	if len(shape) != 2 || a[3] != HalfToFloat32(Float32ToHalf(b[3])) {
		t.Errorf("%s: shape %v, [3] = %g vs %g", k, shape, a[3], b[3])
	}
}
