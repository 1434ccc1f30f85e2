package train

import (
	stdctx "context"
	"math"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/weights"
)

func TestMergeLoRAEqualsTheExplicitSum(t *testing.T) {
	cfg := SmallUNetConfig(16)
	cfg.BlockOutChannels = []int{16, 32, 32}
	m, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitWeights(1); err != nil {
		t.Fatal(err)
	}
	const key = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
	const peft = "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0"
	before := func(k string) []float32 {
		s, n := nn.KeyToScope(k)
		return nn.Values(m.Ctx.GetVariableByScopeAndName(s, n).MustValue())
	}
	w0, p0 := before(key), before(peft+".weight")
	out, in := 32, 16 // to_k of attn2 maps the 16-wide context to 32 channels
	const r, alpha, strength = 3, 1.5, 0.7
	rnd := StepRand(2, 0, 0)
	down, up := Normal(rnd, r*in), Normal(rnd, out*r)
	pdown, pup := Normal(rnd, r*32), Normal(rnd, 32*r)
	name := KohyaName(key)
	path := filepath.Join(t.TempDir(), "lora.safetensors")
	err = weights.WriteFile(path, []weights.WriteTensor{
		{Name: name + ".lora_down.weight", DType: weights.F32, Shape: []int{r, in}, Float32: down},
		{Name: name + ".lora_up.weight", DType: weights.F32, Shape: []int{out, r}, Float32: up},
		{Name: name + ".alpha", DType: weights.F32, Shape: []int{}, Float32: []float32{alpha}},
		{Name: "unet." + peft + ".lora_A.weight", DType: weights.F32, Shape: []int{r, 32}, Float32: pdown},
		{Name: "unet." + peft + ".lora_B.weight", DType: weights.F32, Shape: []int{32, r}, Float32: pup},
		{Name: "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha", DType: weights.F32, Shape: []int{}, Float32: []float32{1}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	merged, skipped, err := MergeLoRA(m, path, strength)
	if err != nil {
		t.Fatal(err)
	}
	if merged != 2 || skipped != 1 {
		t.Fatalf("merged %d, skipped %d; want 2, 1", merged, skipped)
	}
	check := func(k string, w0, down, up []float32, out, in int, scale float64) {
		got := before(k)
		var worst float64
		for o := range out {
			for i := range in {
				var s float64
				for j := range r {
					s += float64(up[o*r+j]) * float64(down[j*in+i])
				}
				worst = math.Max(worst, math.Abs(float64(got[o*in+i])-(float64(w0[o*in+i])+scale*s)))
			}
		}
		if worst > 1e-5 {
			t.Errorf("%s: max abs error %g against W + scale·up·down", k, worst)
		}
	}
	check(key, w0, down, up, out, in, strength*alpha/r)
	check(peft+".weight", p0, pdown, pup, 32, 32, strength)
}

func TestLoRATrainsAdaptersAndLeavesTheBaseWeights(t *testing.T) {
	c := tinyConfig()
	c.LR, c.EMADecay, c.Accum, c.Steps = 3e-2, 0, 1, 150
	r := newTinyRun(t, c)
	ctx := r.t.Ctx
	// Re-create the run with the second layer named like an attention projection.
	b := r.t.Backend
	ctx2 := context.New()
	src, err := ComponentSource(ctx, "/mlp", false)
	if err != nil {
		t.Fatal(err)
	}
	mapped := nn.MapSource{}
	for k, v := range src {
		if k[:2] == "l2" {
			k = "attn1.to_q" + k[2:]
		}
		mapped[k] = v
	}
	if err := LoadComponent(ctx2, UNetScope, mapped); err != nil {
		t.Fatal(err)
	}
	lora, err := AddLoRA(ctx2, UNetScope, tinyOut, tinyOut, 1) // full rank: the adapter can reach the best output layer
	if err != nil {
		t.Fatal(err)
	}
	loss := func(ctx *context.Context, in []*Node) *Node {
		u := ctx.In("unet")
		h := nn.SiLU(nn.Linear(u.In("l1"), in[0], 16, true))
		return ReduceAllMean(Square(Sub(nn.Linear(u.In("attn1").In("to_q"), h, tinyOut, true), in[1])))
	}
	tr, err := New(b, ctx2, c, []string{LoRAScope}, lora.Wrap(loss))
	if err != nil {
		t.Fatal(err)
	}
	if tr.NumParams() != tinyOut*16+tinyOut*tinyOut {
		t.Fatalf("%d trainable values, want the adapters' %d", tr.NumParams(), tinyOut*16+tinyOut*tinyOut)
	}
	base := nn.Values(ctx2.GetVariableByScopeAndName("/unet/attn1/to_q", "weight").MustValue())
	r.t = tr
	c.Accum = 1
	if err := tr.Loop(stdctx.Background(), 150, r.batch, LoopOptions{}); err != nil {
		t.Fatal(err)
	}
	if first, last := mean(tr.Losses[:10]), mean(tr.Losses[140:]); !(last < 0.5*first) {
		t.Errorf("LoRA loss %.4f → %.4f: want a clear decrease", first, last)
	}
	after := nn.Values(ctx2.GetVariableByScopeAndName("/unet/attn1/to_q", "weight").MustValue())
	for i := range base {
		if base[i] != after[i] {
			t.Fatalf("base weight changed at %d: %g → %g", i, base[i], after[i])
		}
	}
	path := filepath.Join(t.TempDir(), "lora.safetensors")
	if err := lora.SaveLoRA(ctx2, path); err != nil {
		t.Fatal(err)
	}
	f, err := weights.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Names(); len(got) != 3 || got[0] != "lora_unet_attn1_to_q.alpha" {
		t.Errorf("kohya keys %q", got)
	}
}
