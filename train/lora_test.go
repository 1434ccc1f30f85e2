package train

import (
	stdctx "context"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

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
