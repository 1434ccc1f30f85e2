package train

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/textenc"
	"github.com/ldm-project/ldm/unet"
)

// BenchmarkLDMStep is one AdamW step of the embedded default model's
// architecture (U-Net and text encoder trained jointly, as `ldm train ldm`
// does) on random weights: batch 64 of 16×16×4 latents with 32 tokens (the
// issue 16 training measure). Profile it with -cpuprofile.
func BenchmarkLDMStep(b *testing.B) {
	read := func(c string) []byte {
		data, err := os.ReadFile(filepath.Join("..", "models", "default", c, "config.json"))
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	ucfg, err := unet.ParseConfig(read("unet"))
	if err != nil {
		b.Fatal(err)
	}
	tcfg, err := textenc.ParseCLIPConfig(read("text_encoder"))
	if err != nil {
		b.Fatal(err)
	}
	backend, err := nn.NewBackend("go")
	if err != nil {
		b.Fatal(err)
	}
	u, err := unet.New(ucfg)
	if err != nil {
		b.Fatal(err)
	}
	text, err := textenc.NewCLIPTextModel(tcfg)
	if err != nil {
		b.Fatal(err)
	}
	ue, err := u.ExpectedKeys()
	if err != nil {
		b.Fatal(err)
	}
	te, err := text.ExpectedKeys()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.New()
	if err := InitComponent(ctx, UNetScope, ue, 1); err != nil {
		b.Fatal(err)
	}
	if err := InitComponent(ctx, TextScope, te, 2); err != nil {
		b.Fatal(err)
	}
	tr, err := New(backend, ctx, DefaultConfig(), []string{UNetScope, TextScope}, LDMLoss(u, text))
	if err != nil {
		b.Fatal(err)
	}
	const bs = 64
	h, ch, tok := ucfg.SampleSize, ucfg.InChannels, tcfg.MaxPositionEmbeddings
	r := StepRand(1, 0, 0)
	noisy := tensors.FromFlatDataAndDimensions(Normal(r, bs*ch*h*h), bs, ch, h, h)
	target := tensors.FromFlatDataAndDimensions(Normal(r, bs*ch*h*h), bs, ch, h, h)
	ts := make([]float32, bs)
	ids := make([]int32, bs*tok)
	for i := range ts {
		ts[i] = float32(r.IntN(1000))
	}
	for i := range ids {
		ids[i] = int32(r.IntN(tcfg.VocabSize))
	}
	in := [][]any{{noisy, tensors.FromFlatDataAndDimensions(ts, bs), tensors.FromFlatDataAndDimensions(ids, bs, tok), target}}
	if _, err := tr.TrainStep(in); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := tr.TrainStep(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bs*b.N)/b.Elapsed().Seconds(), "img/s")
}
