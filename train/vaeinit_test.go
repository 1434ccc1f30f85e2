package train

import (
	stdctx "context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/nn"
)

// varValues copies the values of the variables under scope, by key.
func varValues(t *testing.T, v *VAETrainer, scope string) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for x := range v.Ctx.IterVariables() {
		if underScope(x.Scope(), scope) {
			out[keyOf(x)] = slices.Clone(nn.Values(x.MustValue()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no variables under %s", scope)
	}
	return out
}

// A decoder fine-tune (--init CKPT --train-only decoder) starts from the
// checkpoint's weights and architecture, changes the decoder and leaves the
// encoder, and with it every posterior, exactly as it was; the run resumes
// as a decoder fine-tune.
func TestDecoderFineTuneKeepsTheEncoderAndTheLatentSpace(t *testing.T) {
	b := goBackend(t)
	dir := shapesFolder(t)
	base, err := NewVAETrainer(b, tinyVAERun(dir, VAELossOpts{}, 10), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := t.TempDir()
	if err := base.Loop(stdctx.Background(), 10, base.Batch, LoopOptions{Dir: ckpt, Every: 10, Extra: base.Run}); err != nil {
		t.Fatal(err)
	}
	trained := varValues(t, base, VAEScope)

	run := tinyVAERun(dir, VAELossOpts{}, 20)
	run.VAE.BlockOutChannels = []int{16, 16} // replaced by the checkpoint's architecture
	run.Init, run.TrainOnly = Latest(ckpt), "decoder"
	ft, err := NewVAETrainer(b, run, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ft.Run.VAE.BlockOutChannels, base.Run.VAE.BlockOutChannels) {
		t.Errorf("architecture %v, want the checkpoint's %v", ft.Run.VAE.BlockOutChannels, base.Run.VAE.BlockOutChannels)
	}
	start := varValues(t, ft, VAEScope)
	for k, want := range trained {
		if !slices.Equal(start[k], want) {
			t.Fatalf("%s does not start from the checkpoint's value", k)
		}
	}
	x := ft.Data.NCHW([]int{0, 1, 2, 3})
	m0, err := ft.Model(b)
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := m0.EncodeRun(x, []int{4, 3, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := ft.Loop(stdctx.Background(), 10, ft.Batch, LoopOptions{Dir: ckpt, Every: 10, Extra: ft.Run}); err != nil {
		t.Fatal(err)
	}
	after := varValues(t, ft, VAEScope)
	changed := 0
	for k, v := range after {
		trainable := strings.HasPrefix(k, "vae.decoder.") || strings.HasPrefix(k, "vae.post_quant_conv.")
		same := slices.Equal(v, start[k])
		if !trainable && !same {
			t.Errorf("%s changed, but only the decoder trains", k)
		}
		if trainable && !same {
			changed++
		}
	}
	if changed == 0 {
		t.Error("no decoder weight changed")
	}
	m1, err := ft.Model(b)
	if err != nil {
		t.Fatal(err)
	}
	post, _, err := m1.EncodeRun(x, []int{4, 3, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, post) {
		t.Error("the posteriors changed: the latent space is not fixed")
	}

	resumed, err := NewVAETrainer(b, VAERun{Data: dir}, Latest(ckpt), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Run.TrainOnly != "decoder" || resumed.Step != 10 {
		t.Errorf("resumed run: train-only %q at step %d, want decoder at 10", resumed.Run.TrainOnly, resumed.Step)
	}
	for _, v := range resumed.vars {
		if k := keyOf(v); strings.HasPrefix(k, "vae.encoder.") {
			t.Errorf("resumed run trains %s", k)
		}
	}
}

func TestDecoderFineTuneSettingsAreValidated(t *testing.T) {
	b := goBackend(t)
	dir := shapesFolder(t)
	for _, tc := range []struct {
		init, only, want string
	}{
		{"", "decoder", "--init"},
		{"", "encoder", "want \"decoder\""},
		{dir + "/nowhere.safetensors", "", "--init"},
	} {
		run := tinyVAERun(dir, VAELossOpts{}, 5)
		run.Init, run.TrainOnly = tc.init, tc.only
		if _, err := NewVAETrainer(b, run, "", nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("init %q, train-only %q: err = %v, want one mentioning %s", tc.init, tc.only, err, tc.want)
		}
	}
}

func TestDropTagsKeepsTheFirstTagsAndTheOrder(t *testing.T) {
	caption := "red apple, apple, food and drink, food fruit, twitter style"
	rnd := rand.New(rand.NewPCG(1, 2))
	if got := DropTags(caption, 1, 0, rnd); got != caption {
		t.Errorf("p=0: %q", got)
	}
	if got := DropTags(caption, 1, 1, rnd); got != "red apple" {
		t.Errorf("p=1, keep 1: %q", got)
	}
	if got := DropTags(caption, 2, 1, rnd); got != "red apple, apple" {
		t.Errorf("p=1, keep 2: %q", got)
	}
	seen := map[string]int{}
	for range 2000 {
		got := DropTags(caption, 1, 0.5, rnd)
		if !strings.HasPrefix(got, "red apple") {
			t.Fatalf("dropped the kept tag: %q", got)
		}
		// Kept tags stay in their order: the result is a subsequence.
		rest := caption
		for _, tag := range strings.Split(got, ", ") {
			i := strings.Index(rest, tag)
			if i < 0 {
				t.Fatalf("%q is not an ordered subset of the caption", got)
			}
			rest = rest[i+len(tag):]
		}
		seen[got]++
	}
	// 4 droppable tags: 16 outcomes, each ≈ 1/16 of 2000 = 125.
	if len(seen) != 16 || seen["red apple"] < 80 || seen[caption] < 80 {
		t.Errorf("%d distinct captions (want 16); alone %d, all %d (want ≈125 each)", len(seen), seen["red apple"], seen[caption])
	}
}
