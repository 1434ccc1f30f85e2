package train_test

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/models"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/scheduler"
	"github.com/ldm-project/ldm/train"
	"github.com/ldm-project/ldm/weights"
)

// diffusersProblems lists what diffusers 0.29.2 would refuse in a config
// file, or what it would never write. For the U-Net these are
// UNet2DConditionModel.__init__'s rules: _check_config compares the per-block
// fields with down_block_types, and __init__ then indexes every list field
// by block, so a list must have exactly one entry per down block (a scalar
// is repeated). Every config: no field holds "" (diffusers writes an unset
// field as its default or null, never as an empty string).
func diffusersProblems(name string, b []byte) []string {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for k, v := range m {
		if v == "" {
			out = append(out, fmt.Sprintf("%s: %q is an empty string", name, k))
		}
	}
	if m["_class_name"] != "UNet2DConditionModel" {
		return out
	}
	n := -1
	if l, ok := m["down_block_types"].([]any); ok {
		n = len(l)
	}
	for _, k := range []string{"up_block_types", "block_out_channels"} {
		if l, ok := m[k].([]any); !ok || len(l) != n {
			out = append(out, fmt.Sprintf("%s: %s %v: want %d entries, one per down block", name, k, m[k], n))
		}
	}
	perBlock := func(k string, v any, scalar func(any) bool) {
		if _, present := m[k]; !present || scalar(v) {
			return // absent: diffusers' default, a scalar
		}
		l, ok := v.([]any)
		if !ok || len(l) != n {
			out = append(out, fmt.Sprintf("%s: %s %v: want a scalar or %d entries, one per down block", name, k, v, n))
			return
		}
		for _, e := range l {
			if !scalar(e) {
				out = append(out, fmt.Sprintf("%s: %s %v: entry %v", name, k, v, e))
			}
		}
	}
	isNum := func(v any) bool { _, ok := v.(float64); return ok }
	isBool := func(v any) bool { _, ok := v.(bool); return ok }
	perBlock("only_cross_attention", m["only_cross_attention"], isBool)
	for _, k := range []string{"attention_head_dim", "cross_attention_dim", "layers_per_block", "transformer_layers_per_block"} {
		perBlock(k, m[k], isNum)
	}
	if heads := m["num_attention_heads"]; heads != nil { // null: diffusers takes attention_head_dim
		perBlock("num_attention_heads", heads, isNum)
	}
	return out
}

// configFiles returns the JSON configs of a diffusers folder by path.
func configFiles(t *testing.T, fsys fs.FS) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") || path.Base(p) == "vocab.json" {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDiffusersRulesCatchTheOldExports(t *testing.T) {
	old := map[string]string{
		"one-entry list for three blocks": `{"_class_name": "UNet2DConditionModel", "down_block_types": ["a","b","c"], "up_block_types": ["a","b","c"],
			"block_out_channels": [1,2,3], "only_cross_attention": [false], "attention_head_dim": 4, "cross_attention_dim": 8,
			"layers_per_block": 1, "transformer_layers_per_block": 1}`,
		"empty solver_type": `{"_class_name": "EulerDiscreteScheduler", "solver_type": ""}`,
	}
	for name, cfg := range old {
		if len(diffusersProblems(name, []byte(cfg))) == 0 {
			t.Errorf("%s: the checker accepts it", name)
		}
	}
}

// The configs ldm ships and exports are configs diffusers itself would
// write: the embedded model's, and a fresh `train ldm` export's. The export
// also records the trained size (sample_size = --size / VAE factor, not a
// fixed value) and converts to a single file (layers_per_block read in either
// form).
func TestExportedConfigsAreWhatDiffusersWrites(t *testing.T) {
	for p, b := range configFiles(t, models.Default()) {
		for _, e := range diffusersProblems("models/default/"+p, b) {
			t.Error(e)
		}
	}

	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	os.MkdirAll(data, 0o755)
	for i := range 3 {
		img := image.NewRGBA(image.Rect(0, 0, 32, 32))
		for j := range img.Pix {
			img.Pix[j] = uint8(60 * i)
		}
		img.Set(3, 3, color.White)
		f, _ := os.Create(filepath.Join(data, fmt.Sprintf("%d.png", i)))
		png.Encode(f, img)
		f.Close()
		os.WriteFile(filepath.Join(data, fmt.Sprintf("%d.txt", i)), []byte("a grey square"), 0o644)
	}
	def, err := models.Path()
	if err != nil {
		t.Fatal(err)
	}
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	run := train.LDMRun{Data: data, Size: 32, Batch: 1, Seed: 1, VAE: filepath.Join(def, "vae"), TokenizerMerges: 10, MaxLength: 8,
		Prediction: "epsilon", SchedulerClass: scheduler.ClassDPMSolver, Train: train.DefaultConfig(),
		UNet: train.SmallUNetConfig(16), Text: train.SmallTextConfig(0, 16, 1, 8)}
	run.UNet.BlockOutChannels = []int{8, 16, 16}
	g := 4
	run.UNet.NormNumGroups = &g
	if run.Scheduler, err = train.SDSchedulerConfig(run.SchedulerClass, "epsilon"); err != nil {
		t.Fatal(err)
	}
	tr, err := train.NewLDMTrainer(b, run, filepath.Join(tmp, "run"), "")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "model")
	if err := tr.Export(out); err != nil {
		t.Fatal(err)
	}
	for p, b := range configFiles(t, os.DirFS(out)) {
		for _, e := range diffusersProblems("export/"+p, b) {
			t.Error(e)
		}
	}
	var u struct {
		SampleSize int `json:"sample_size"`
	}
	ub, _ := os.ReadFile(filepath.Join(out, "unet", "config.json"))
	if err := json.Unmarshal(ub, &u); err != nil || u.SampleSize != 8 {
		t.Errorf("exported sample_size %d (%v), want 32 / 4 = 8", u.SampleSize, err)
	}
	single := filepath.Join(tmp, "single.safetensors")
	if err := ldm.Convert(out, single, ldm.ConvertOptions{}); err != nil {
		t.Fatalf("converting the exported model to a single file: %v", err)
	}
	m, err := weights.OpenModel(single, weights.OpenOptions{ConfigFrom: out})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	// And back to a folder: the configs ldm convert writes pass too.
	back := filepath.Join(tmp, "back")
	if err := ldm.Convert(single, back, ldm.ConvertOptions{ConfigFrom: out}); err != nil {
		t.Fatalf("converting the single file back to a folder: %v", err)
	}
	for p, b := range configFiles(t, os.DirFS(back)) {
		for _, e := range diffusersProblems("convert/"+p, b) {
			t.Error(e)
		}
	}
}

// A single file converted to a diffusers folder with configs inferred from
// its shapes (no --config-from) gets configs diffusers accepts too.
func TestConvertedConfigsAreWhatDiffusersWrites(t *testing.T) {
	golden.ForKind(t, "single_file", func(t *testing.T, c golden.Case) {
		out := filepath.Join(t.TempDir(), "folder")
		if err := ldm.Convert(c.Path("model"), out, ldm.ConvertOptions{}); err != nil {
			t.Fatal(err)
		}
		files := configFiles(t, os.DirFS(out))
		if len(files) < 4 {
			t.Fatalf("%d configs written", len(files))
		}
		for p, b := range files {
			for _, e := range diffusersProblems("convert/"+p, b) {
				t.Error(e)
			}
		}
	})
}
