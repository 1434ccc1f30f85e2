package ldm

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

func TestParseLoRATagsFollowsA1111(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		prompt, text string
		specs        []LoRASpec
		err          string
	}{
		{"a cat", "a cat", nil, ""},
		{"a cat <lora:style:0.8>", "a cat ", []LoRASpec{{Name: "style", Weight: 0.8}}, ""},
		{"<lora:a>x<lora:b:-1.5>, (y:1.2)", "x, (y:1.2)", []LoRASpec{{Name: "a", Weight: 1}, {Name: "b", Weight: -1.5}}, ""},
		{"<lora:two words:0.5:0.25>", "", []LoRASpec{{Name: "two words", Weight: 0.5, UNetWeight: f(0.25)}}, ""},
		{"<lora:n:unet=0.3:te=0.7>", "", []LoRASpec{{Name: "n", Weight: 0.7, UNetWeight: f(0.3)}}, ""},
		{"<lyco:old:2>", "", []LoRASpec{{Name: "old", Weight: 2}}, ""},
		{"<hypernet:h:1> stays", "<hypernet:h:1> stays", nil, ""},
		{"<lora:x:heavy>", "", nil, `"heavy" is not a weight`},
		{"<lora::1>", "", nil, "no name"},
		{"<lora:x:1:2:3>", "", nil, "too many weights"},
		{"<lora:x:foo=1>", "", nil, "unknown argument"},
		// Tag weights are bounded like the loras field's.
		{"<lora:x:1000>", "", nil, "weight 1000 must be between -100 and 100"},
		{"<lora:x:1:-500>", "", nil, "unet_weight -500 must be between"},
		{"<lora:x:te=nan>", "", nil, "is not a weight"},
		{"<lora:../x:1>", "", nil, "must not contain a path separator"},
	} {
		text, specs, err := ParseLoRATags(c.prompt)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one saying %q", c.prompt, err, c.err)
			} else if field, _ := IsFieldError(err); field != "prompt" {
				t.Errorf("%q: error names field %q, want prompt", c.prompt, field)
			}
			continue
		}
		if err != nil || text != c.text || !reflect.DeepEqual(specs, c.specs) {
			t.Errorf("%q: got %q %+v %v, want %q %+v", c.prompt, text, specs, err, c.text, c.specs)
		}
	}
}

func TestLoRASpecJSONDefaultsWeightToOne(t *testing.T) {
	var r Request
	if err := json.Unmarshal([]byte(`{"prompt":"x","loras":[{"name":"a"},{"name":"b","weight":0}]}`), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.LoRAs) != 2 || r.LoRAs[0].Weight != 1 || r.LoRAs[1].Weight != 0 {
		t.Fatalf("got %+v", r.LoRAs)
	}
}

func TestValidateChecksLoRAs(t *testing.T) {
	noPaths := DefaultLimits
	noPaths.LoRAPaths = false
	for _, c := range []struct {
		loras  []LoRASpec
		prompt string
		limits Limits
		field  string
	}{
		{[]LoRASpec{{Name: "a", Weight: 1}}, "x", DefaultLimits, ""},
		{[]LoRASpec{{Path: "/x/a.safetensors", Weight: 1}}, "x", DefaultLimits, ""},
		{[]LoRASpec{{Path: "/x/a.safetensors", Weight: 1}}, "x", noPaths, "loras"},
		{[]LoRASpec{{Weight: 1}}, "x", DefaultLimits, "loras"},
		{[]LoRASpec{{Name: "a", Path: "b", Weight: 1}}, "x", DefaultLimits, "loras"},
		{[]LoRASpec{{Name: "../a", Weight: 1}}, "x", DefaultLimits, "loras"},
		{[]LoRASpec{{Name: "a", Weight: math.NaN()}}, "x", DefaultLimits, "loras"},
		{[]LoRASpec{{Name: "a", Weight: 1e6}}, "x", DefaultLimits, "loras"},
		{nil, "x <lora:a:zz>", DefaultLimits, "prompt"},
	} {
		r := Request{Prompt: c.prompt, LoRAs: c.loras}
		r.Defaults(64)
		err := r.Validate(c.limits, 8)
		field, _ := IsFieldError(err)
		if (err == nil) != (c.field == "") || field != c.field {
			t.Errorf("%+v %q: error %v, want field %q", c.loras, c.prompt, err, c.field)
		}
	}
}

// testAdapter is one adapter of a test LoRA file, written in either format.
type testAdapter struct {
	component, module string // diffusers module path ("…attn1.to_q")
	kohya             string // the kohya name when it is not derived from module (original layout)
	downShape         []int  // [r, in…]
	out               int
	alpha             float32 // 0: none
	down, up          []float32
}

func newTestAdapter(rnd *rand.Rand, component, module string, out int, downShape []int, alpha float32) testAdapter {
	a := testAdapter{component: component, module: module, out: out, downShape: downShape, alpha: alpha}
	n := 1
	for _, d := range downShape {
		n *= d
	}
	a.down = make([]float32, n)
	a.up = make([]float32, out*downShape[0])
	for i := range a.down {
		a.down[i] = float32(rnd.NormFloat64())
	}
	for i := range a.up {
		a.up[i] = float32(rnd.NormFloat64() * 0.1)
	}
	return a
}

func (a testAdapter) upShape() []int {
	if len(a.downShape) == 4 {
		return []int{a.out, a.downShape[0], 1, 1}
	}
	return []int{a.out, a.downShape[0]}
}

func writeKohya(t *testing.T, path string, as []testAdapter) {
	t.Helper()
	var ts []weights.WriteTensor
	for _, a := range as {
		name := a.kohya
		if name == "" {
			prefix := "lora_unet_"
			if a.component == weights.TextEncoder {
				prefix = "lora_te_"
			}
			name = prefix + strings.ReplaceAll(a.module, ".", "_")
		}
		ts = append(ts,
			weights.WriteTensor{Name: name + ".lora_down.weight", DType: weights.F32, Shape: a.downShape, Float32: a.down},
			weights.WriteTensor{Name: name + ".lora_up.weight", DType: weights.F32, Shape: a.upShape(), Float32: a.up})
		if a.alpha != 0 {
			ts = append(ts, weights.WriteTensor{Name: name + ".alpha", DType: weights.F32, Shape: []int{}, Float32: []float32{a.alpha}})
		}
	}
	if err := weights.WriteFile(path, ts, map[string]string{"ss_network_module": "networks.lora"}); err != nil {
		t.Fatal(err)
	}
}

// writePEFT writes diffusers' layout; alphas go into lora_adapter_metadata
// as alpha_pattern entries (all adapters need one, or none).
func writePEFT(t *testing.T, path string, as []testAdapter) {
	t.Helper()
	var ts []weights.WriteTensor
	md := map[string]any{}
	for _, a := range as {
		name := a.component + "." + a.module
		ts = append(ts,
			weights.WriteTensor{Name: name + ".lora_A.weight", DType: weights.F32, Shape: a.downShape, Float32: a.down},
			weights.WriteTensor{Name: name + ".lora_B.weight", DType: weights.F32, Shape: a.upShape(), Float32: a.up})
		if a.alpha != 0 {
			pat, _ := md[a.component+".alpha_pattern"].(map[string]float64)
			if pat == nil {
				pat = map[string]float64{}
				md[a.component+".alpha_pattern"] = pat
				md[a.component+".lora_alpha"] = 1e9 // overridden by every pattern
				md[a.component+".r"] = a.downShape[0]
			}
			pat[a.module] = float64(a.alpha)
		}
	}
	b, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	if err := weights.WriteFile(path, ts, map[string]string{"lora_adapter_metadata": string(b)}); err != nil {
		t.Fatal(err)
	}
}

func (p *Pipeline) testWeight(t *testing.T, component, key string) []float32 {
	t.Helper()
	v, err := p.loraVariable(loraTarget{component, key})
	if err != nil {
		t.Fatal(err)
	}
	return nn.Values(v.MustValue())
}

// tinyAdapters adapt a linear self-attention projection (named the
// original way), a cross-attention projection, a 1×1 and a 3×3 convolution
// and a text-encoder projection of the tiny SD1.5 model.
func tinyAdapters(seed uint64) []testAdapter {
	rnd := rand.New(rand.NewPCG(seed, 1))
	q := newTestAdapter(rnd, weights.UNet, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 32, []int{4, 32}, 2)
	q.kohya = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"
	return []testAdapter{
		q,
		newTestAdapter(rnd, weights.UNet, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k", 64, []int{3, 32}, 1.5),
		newTestAdapter(rnd, weights.UNet, "down_blocks.0.attentions.0.proj_in", 32, []int{2, 32, 1, 1}, 0),
		newTestAdapter(rnd, weights.UNet, "down_blocks.0.resnets.0.conv1", 32, []int{2, 32, 3, 3}, 1),
		newTestAdapter(rnd, weights.TextEncoder, "text_model.encoder.layers.1.self_attn.q_proj", 32, []int{4, 32}, 4),
	}
}

func TestLoRAMergeIsExactAndSwitchingBackIsBitIdentical(t *testing.T) {
	p := loadTiny(t)
	dir := t.TempDir()
	as := tinyAdapters(7)
	writeKohya(t, filepath.Join(dir, "style.safetensors"), as)
	p.LoRADir = dir

	run := func(req Request) Result {
		t.Helper()
		res, err := p.Generate(context.Background(), req, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	base := make([][]float32, len(as))
	for i, a := range as {
		base[i] = p.testWeight(t, a.component, a.module+".weight")
	}
	plain := run(quick())

	// Weight 0: the same image.
	zero := quick()
	zero.Prompt += " <lora:style:0>"
	if got := run(zero); !slices.Equal(got.Image.Pix, plain.Image.Pix) {
		t.Errorf("a LoRA at weight 0 changed the image")
	}

	// Weight w: every adapted weight is W + w·(alpha/r)·up·down.
	const w = 0.6
	lora := quick()
	lora.LoRAs = []LoRASpec{{Name: "style", Weight: w}}
	withLoRA := run(lora)
	if slices.Equal(withLoRA.Image.Pix, plain.Image.Pix) {
		t.Errorf("a LoRA at weight %g left the image unchanged", w)
	}
	if h, _ := withLoRA.Infotext.Get("Lora hashes"); !strings.HasPrefix(h, "style: ") || len(h) != len("style: ")+12 {
		t.Errorf("infotext Lora hashes = %q, want \"style: <12 hex digits>\"", h)
	}
	for i, a := range as {
		got := p.testWeight(t, a.component, a.module+".weight")
		r := a.downShape[0]
		in := len(a.down) / r
		scale := 1.0
		if a.alpha != 0 {
			scale = float64(a.alpha) / float64(r)
		}
		var worst float64
		for o := range a.out {
			for j := range in {
				var s float64
				for k := range r {
					s += float64(a.up[o*r+k]) * float64(a.down[k*in+j])
				}
				want := float64(base[i][o*in+j]) + w*scale*s
				worst = math.Max(worst, math.Abs(float64(got[o*in+j])-want))
			}
		}
		if worst > 1e-6 {
			t.Errorf("%s: max abs error %g against W + w·(alpha/r)·up·down", a.module, worst)
		}
	}

	// Back to no LoRA: bit-identical to a fresh pipeline, weights included.
	if got := run(quick()); !slices.Equal(got.Image.Pix, plain.Image.Pix) {
		t.Errorf("the image without LoRA differs after a LoRA was applied")
	}
	for i, a := range as {
		if got := p.testWeight(t, a.component, a.module+".weight"); !slices.Equal(got, base[i]) {
			t.Errorf("%s: not restored bit for bit", a.module)
		}
	}
	fresh := loadTiny(t)
	res, err := fresh.Generate(context.Background(), quick(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res[0].Image.Pix, plain.Image.Pix) {
		t.Errorf("a fresh pipeline draws another image")
	}
	if _, ok := plain.Infotext.Get("Lora hashes"); ok {
		t.Errorf("infotext without LoRA has Lora hashes")
	}

	// Two LoRAs, then one: the second switch is computed from the base, not
	// from the previous merge.
	other := tinyAdapters(8)
	writeKohya(t, filepath.Join(dir, "other.safetensors"), other)
	two := quick()
	two.Prompt += "<lora:other:1>"
	two.LoRAs = []LoRASpec{{Name: "style", Weight: w}}
	run(two)
	again := run(lora)
	if !slices.Equal(again.Image.Pix, withLoRA.Image.Pix) {
		t.Errorf("style after style+other differs from style alone")
	}
}

func TestPEFTAndKohyaFilesOfOneAdapterGiveTheSameWeights(t *testing.T) {
	p := loadTiny(t)
	dir := t.TempDir()
	as := tinyAdapters(3)
	for i := range as {
		as[i].kohya = ""
		if as[i].alpha == 0 {
			as[i].alpha = float32(as[i].downShape[0]) // PEFT's default: alpha = r
		}
	}
	writeKohya(t, filepath.Join(dir, "k.safetensors"), as)
	writePEFT(t, filepath.Join(dir, "p.safetensors"), as)
	lk, err := p.LoadLoRA(filepath.Join(dir, "k.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	lp, err := p.LoadLoRA(filepath.Join(dir, "p.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(lk.Adapters) != len(as) || !reflect.DeepEqual(lk.Adapters, lp.Adapters) {
		t.Fatalf("kohya %d adapters, PEFT %d; equal: %v", len(lk.Adapters), len(lp.Adapters), reflect.DeepEqual(lk.Adapters, lp.Adapters))
	}
	p.LoRADir = dir
	weightsAfter := func(name string) [][]float32 {
		req := quick()
		req.Steps = 1
		req.LoRAs = []LoRASpec{{Name: name, Weight: 0.9}}
		if _, err := p.Generate(context.Background(), req, Options{}); err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		for _, a := range as {
			out = append(out, p.testWeight(t, a.component, a.module+".weight"))
		}
		return out
	}
	if !reflect.DeepEqual(weightsAfter("k"), weightsAfter("p")) {
		t.Errorf("the kohya and PEFT files give different weights")
	}
}

func TestBadLoRAFilesGiveErrorsNamingFileAndKey(t *testing.T) {
	p := loadTiny(t)
	dir := t.TempDir()
	rnd := rand.New(rand.NewPCG(1, 2))
	write := func(name string, ts []weights.WriteTensor) string {
		path := filepath.Join(dir, name+".safetensors")
		if err := weights.WriteFile(path, ts, nil); err != nil {
			t.Fatal(err)
		}
		return path
	}
	f32 := func(name string, shape ...int) weights.WriteTensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rnd.NormFloat64())
		}
		return weights.WriteTensor{Name: name, DType: weights.F32, Shape: shape, Float32: v}
	}
	const q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
	if err := os.WriteFile(filepath.Join(dir, "junk.safetensors"), []byte("not a safetensors file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want []string
	}{
		{write("nomatch", []weights.WriteTensor{f32("model.diffusion_model.x.weight", 2, 2)}), []string{"nomatch.safetensors", "no tensor matches", "model.diffusion_model.x.weight"}},
		{write("shape", []weights.WriteTensor{f32(q+".lora_down.weight", 4, 16), f32(q+".lora_up.weight", 32, 4)}), []string{"shape.safetensors", q, "[32 32]"}},
		{write("rank", []weights.WriteTensor{f32(q+".lora_down.weight", 4, 32), f32(q+".lora_up.weight", 32, 3)}), []string{"rank.safetensors", "not a low-rank pair"}},
		{write("half", []weights.WriteTensor{f32(q+".lora_down.weight", 4, 32)}), []string{"half.safetensors", "to_q.weight", "up"}},
		{write("loha", []weights.WriteTensor{f32(q+".hada_w1_a", 4, 32)}), []string{"loha.safetensors", "hada_w1_a", "not supported"}},
		{filepath.Join(dir, "junk.safetensors"), []string{"junk.safetensors"}},
		{filepath.Join(dir, "missing.safetensors"), []string{"missing.safetensors"}},
	} {
		_, err := p.LoadLoRA(c.path)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to mention %q", filepath.Base(c.path), err, w)
			}
		}
	}

	// Through a request: the model is left as it was.
	p.LoRADir = dir
	plain, err := p.Generate(context.Background(), quick(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req   func(*Request)
		field string
		want  string
	}{
		{func(r *Request) { r.Prompt += "<lora:nosuch:1>" }, "prompt", `"nosuch" not found`},
		{func(r *Request) { r.LoRAs = []LoRASpec{{Name: "nosuch", Weight: 1}} }, "loras", `"nosuch" not found`},
		{func(r *Request) { r.LoRAs = []LoRASpec{{Name: "shape", Weight: 1}} }, "", "shape.safetensors"},
	} {
		req := quick()
		c.req(&req)
		_, err := p.Generate(context.Background(), req, Options{})
		field, isField := IsFieldError(err)
		if err == nil || !strings.Contains(err.Error(), c.want) || field != c.field || (c.field != "") != isField {
			t.Errorf("%+v: error %v (field %q), want %q in field %q", req.LoRAs, err, field, c.want, c.field)
		}
	}
	again, err := p.Generate(context.Background(), quick(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again[0].Image.Pix, plain[0].Image.Pix) {
		t.Errorf("a failed LoRA request changed the model")
	}
	p.LoRADir = ""
	req := quick()
	req.Prompt += "<lora:x:1>"
	if _, err := p.Generate(context.Background(), req, Options{}); err == nil || !strings.Contains(err.Error(), "no LoRA folder") {
		t.Errorf("a tag without a LoRA folder: %v", err)
	}
}

func TestBatchedRequestsKeepTheirOwnLoRAs(t *testing.T) {
	p := loadTiny(t)
	dir := t.TempDir()
	writeKohya(t, filepath.Join(dir, "style.safetensors"), tinyAdapters(7))
	p.LoRADir = dir
	a, b, c := quick(), quick(), quick()
	b.Prompt += " <lora:style:0.8>"
	c.Prompt, c.Seed = "a green pear <lora:style:0.8>", 5
	var want [][]uint8
	for _, r := range []Request{a, b, c} {
		res, err := p.Generate(context.Background(), r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res[0].Image.Pix)
	}
	if _, err := p.Generate(context.Background(), a, Options{}); err != nil { // the model without LoRA before the batch
		t.Fatal(err)
	}
	key := func(r Request) string {
		pl, err := p.Prepare(r, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		return pl.Key()
	}
	if key(a) == key(b) || key(b) != key(c) {
		t.Errorf("plan keys must separate LoRA sets: a~b %v, b~c %v", key(a) == key(b), key(b) == key(c))
	}
	out := p.GenerateBatch(context.Background(), []BatchItem{{Req: b}, {Req: a}, {Req: c}})
	for i, k := range []int{1, 0, 2} {
		if out[i].Err != nil {
			t.Fatal(out[i].Err)
		}
		if got := out[i].Results[0].Image.Pix; maxAbsDiffU8(got, want[k]) > 1 {
			t.Errorf("item %d: batched image differs from the image alone by %d", i, maxAbsDiffU8(got, want[k]))
		}
	}
}

func maxAbsDiffU8(a, b []uint8) int {
	worst := 0
	for i := range a {
		worst = max(worst, int(max(a[i], b[i])-min(a[i], b[i])))
	}
	return worst
}

// Preparing a request parses its <lora:…> tags once: validation keeps the
// parsed tags and the LoRA resolution uses them (they were parsed three
// times: by check, checkCounts and requestLoRAs).
func TestPrepareParsesLoRATagsOnce(t *testing.T) {
	p := loadTiny(t)
	dir := t.TempDir()
	writeKohya(t, filepath.Join(dir, "style.safetensors"), tinyAdapters(7))
	p.LoRADir = dir
	r := quick()
	r.Prompt += " <lora:style:0.8>"
	before := loraTagParses.Load()
	pl, err := p.Prepare(r, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if n := loraTagParses.Load() - before; n != 1 {
		t.Errorf("Prepare parsed the LoRA tags %d times, want once", n)
	}
	if len(pl.loras) != 1 || pl.loras[0].name != "style" || pl.loras[0].spec.Weight != 0.8 {
		t.Errorf("the plan's LoRAs are %+v, want style at 0.8", pl.loras)
	}
}
