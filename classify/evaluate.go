package classify

import (
	stdctx "context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/eval"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/train"
	"github.com/ldm-project/ldm/vae"
)

// GenOptions are the generation settings of an evaluation.
type GenOptions struct {
	// N is the number of images generated (one per prompt).
	N int `json:"n"`
	// Seed fixes the choice of prompts; image i gets seed Seed+i.
	Seed    int64   `json:"seed"`
	Steps   int     `json:"steps"`
	CFG     float64 `json:"cfg"`
	Sampler string  `json:"sampler,omitempty"`
	// Size is the generated image side (0: the model's native size); the
	// images are resized to the classifier's input size.
	Size int `json:"size,omitempty"`
	// Batch is the number of prompts run as one U-Net batch (default 8).
	// The images depend on the seeds and the batch grouping only.
	Batch int `json:"batch"`
	// PromptTags > 0 keeps only the first PromptTags comma-separated tags of
	// each caption as the prompt: 1 gives the emoji's name ("red apple"),
	// what people type, instead of the whole tag list.
	PromptTags int `json:"prompt_tags,omitempty"`
	// LoRAs are applied to every generated image (see ldm.Request.LoRAs).
	LoRAs []ldm.LoRASpec `json:"loras,omitempty"`
	// Progress, when set, is called after each batch of images.
	Progress func(done, total int) `json:"-"`
}

func (o *GenOptions) check() error {
	if o.Batch == 0 {
		o.Batch = 8
	}
	switch {
	case o.N < 2:
		return fmt.Errorf("n %d: want at least 2 images (FD and KID need two per set)", o.N)
	case o.Batch < 1 || o.Batch > 16:
		return fmt.Errorf("batch %d: want 1 to 16", o.Batch)
	case o.Steps < 0:
		return fmt.Errorf("steps %d: want at least 1 (0: the default)", o.Steps)
	}
	return nil
}

// generate renders one image per prompt (image i with seed Seed+i) and
// returns them as NHWC values at the classifier's size.
func generate(ctx stdctx.Context, pipe *ldm.Pipeline, prompts []string, o GenOptions, size int) ([]float32, error) {
	var out []float32
	for lo := 0; lo < len(prompts); lo += o.Batch {
		hi := min(lo+o.Batch, len(prompts))
		items := make([]ldm.BatchItem, 0, hi-lo)
		for i := lo; i < hi; i++ {
			items = append(items, ldm.BatchItem{Req: ldm.Request{Prompt: prompts[i], Seed: o.Seed + int64(i), Steps: o.Steps,
				GuidanceScale: o.CFG, Sampler: o.Sampler, Width: o.Size, Height: o.Size, LoRAs: o.LoRAs}})
		}
		for k, r := range pipe.GenerateBatch(ctx, items) {
			if r.Err != nil {
				return nil, fmt.Errorf("generating %q: %w", prompts[lo+k], r.Err)
			}
			if len(r.Results) != 1 {
				return nil, fmt.Errorf("generating %q: %d images, want 1", prompts[lo+k], len(r.Results))
			}
			out = append(out, ImageNHWC(r.Results[0].Image, size)...)
		}
		if o.Progress != nil {
			o.Progress(hi, len(prompts))
		}
	}
	return out, nil
}

// HeadAlignment is prompt alignment under one head: how often the
// classifier puts the prompt's label of a generated image first (top-1) or
// among its first five (top-5), beside the levels that need no text.
type HeadAlignment struct {
	Field   string `json:"field"`
	Classes int    `json:"classes"`
	// Top1 and Top5 are the generated images' alignment.
	Top1 float64 `json:"top1"`
	Top5 float64 `json:"top5"`
	// PromptIndependent* score each generated image against the labels of
	// the other prompts: what images that ignore the text would get.
	PromptIndependentTop1 float64 `json:"prompt_independent_top1"`
	PromptIndependentTop5 float64 `json:"prompt_independent_top5"`
	// Majority* always guess the most frequent training classes.
	MajorityTop1 float64 `json:"majority_top1"`
	MajorityTop5 float64 `json:"majority_top5"`
	// Uniform* is a random guess: k / classes.
	UniformTop1 float64 `json:"uniform_top1"`
	UniformTop5 float64 `json:"uniform_top5"`
	// RealTop1 and RealTop5 are the classifier on the real held-out images
	// (every one): the ceiling of the alignment.
	RealTop1 float64 `json:"real_top1"`
	RealTop5 float64 `json:"real_top5"`
}

// Distance is a Fréchet distance and KID between two feature sets, with the
// number of vectors in each.
type Distance struct {
	A   string  `json:"a"`
	B   string  `json:"b"`
	NA  int     `json:"n_a"`
	NB  int     `json:"n_b"`
	FD  float64 `json:"fd"`
	KID float64 `json:"kid"`
}

func distance(a, b string, fa, fb [][]float64) (Distance, error) {
	d := Distance{A: a, B: b, NA: len(fa), NB: len(fb)}
	var err error
	if d.FD, err = eval.FD(fa, fb); err != nil {
		return d, err
	}
	d.KID, err = eval.KID(fa, fb)
	return d, err
}

// LDMReport is the result of EvaluateLDM.
type LDMReport struct {
	Model      string     `json:"model"`
	Classifier string     `json:"classifier"`
	Data       string     `json:"data"`
	Gen        GenOptions `json:"generation"`
	// Prompts is the number of distinct held-out captions used.
	Prompts   int             `json:"prompts"`
	HeldOut   int             `json:"held_out_images"`
	Alignment []HeadAlignment `json:"alignment"`
	// Generated is generated vs real held-out; Reference is as many real
	// training images vs the same held-out images: the floor the model's
	// distance could reach.
	Generated Distance `json:"generated_vs_held_out"`
	Reference Distance `json:"train_vs_held_out"`
	Seconds   float64  `json:"seconds"`
}

// choose returns n indices into [0, m): a seeded permutation, repeated when
// n > m.
func choose(m, n int, seed int64) []int {
	perm := rand.New(rand.NewPCG(uint64(seed), 0x6c646d2d6576616c)).Perm(m)
	out := make([]int, n)
	for i := range out {
		out[i] = perm[i%m]
	}
	return out
}

// EvaluateLDM generates o.N images from held-out captions of ds (chosen by
// o.Seed), classifies them with clf and reports prompt alignment per head
// and the Fréchet distance and KID between the generated images and the
// real held-out images in clf's feature space, beside the same distance for
// real training images (the reference floor).
func EvaluateLDM(ctx stdctx.Context, pipe *ldm.Pipeline, clf *Model, ds *data.Dataset, o GenOptions) (*LDMReport, error) {
	start := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	trainDS, heldDS, err := SplitHeldOut(ds)
	if err != nil {
		return nil, err
	}
	heads := clf.Config.Heads
	for _, h := range heads {
		if _, ok := heldDS.Items[0].Fields[h.Field]; !ok {
			return nil, fmt.Errorf("dataset %s has no %q field, which the classifier (%s) predicts: evaluate with the data it was trained for", ds.Root, h.Field, clf.Config.Task)
		}
	}
	size := clf.Config.Size
	held, err := LoadLabeled(ctx, heldDS, size, heads, "")
	if err != nil {
		return nil, err
	}
	realPred, err := clf.Run(held.All(), held.Len())
	if err != nil {
		return nil, err
	}
	pick := choose(held.Len(), o.N, o.Seed)
	prompts := make([]string, len(pick))
	distinct := map[int]bool{}
	for i, k := range pick {
		prompts[i] = firstTags(held.Items[k].Caption, o.PromptTags)
		distinct[k] = true
	}
	x, err := generate(ctx, pipe, prompts, o, size)
	if err != nil {
		return nil, err
	}
	genPred, err := clf.Run(x, len(prompts))
	if err != nil {
		return nil, err
	}
	// Training labels for the majority baseline, and as many training
	// images as generated ones for the reference distance.
	trainPick := choose(trainDS.Len(), min(o.N, trainDS.Len()), o.Seed+1)
	sub := &data.Dataset{Root: trainDS.Root, Layout: trainDS.Layout}
	for _, k := range trainPick {
		sub.Items = append(sub.Items, trainDS.Items[k])
	}
	trainImgs, err := LoadLabeled(ctx, sub, size, heads, "")
	if err != nil {
		return nil, err
	}
	trainPred, err := clf.Run(trainImgs.All(), trainImgs.Len())
	if err != nil {
		return nil, err
	}
	allTrain, err := labelsOf(trainDS, heads)
	if err != nil {
		return nil, err
	}

	rep := &LDMReport{Classifier: clf.Config.Task, Data: ds.Root, Gen: o, Prompts: len(distinct), HeldOut: held.Len()}
	for h, hd := range heads {
		labels := make([]int, len(pick))
		for i, k := range pick {
			labels[i] = held.Labels[h][k]
		}
		a := HeadAlignment{Field: hd.Field, Classes: len(hd.Labels),
			UniformTop1: eval.UniformTopK(len(hd.Labels), 1), UniformTop5: eval.UniformTopK(len(hd.Labels), 5),
			MajorityTop1: eval.MajorityTopK(allTrain[h], labels, 1), MajorityTop5: eval.MajorityTopK(allTrain[h], labels, 5)}
		if a.Top1, err = eval.TopKAccuracy(genPred.Logits[h], labels, 1); err != nil {
			return nil, err
		}
		a.Top5, _ = eval.TopKAccuracy(genPred.Logits[h], labels, 5)
		a.PromptIndependentTop1, _ = eval.PromptIndependentTopK(genPred.Logits[h], labels, 1)
		a.PromptIndependentTop5, _ = eval.PromptIndependentTopK(genPred.Logits[h], labels, 5)
		a.RealTop1, _ = eval.TopKAccuracy(realPred.Logits[h], held.Labels[h], 1)
		a.RealTop5, _ = eval.TopKAccuracy(realPred.Logits[h], held.Labels[h], 5)
		rep.Alignment = append(rep.Alignment, a)
	}
	if rep.Generated, err = distance("generated", "real held-out", genPred.Features, realPred.Features); err != nil {
		return nil, err
	}
	if rep.Reference, err = distance("real train", "real held-out", trainPred.Features, realPred.Features); err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// labelsOf maps every item's fields to class indices (-1 when unknown)
// without decoding any image.
func labelsOf(ds *data.Dataset, heads []Head) ([][]int, error) {
	out := make([][]int, len(heads))
	for h, hd := range heads {
		index := map[string]int{}
		for i, v := range hd.Labels {
			index[v] = i
		}
		for _, it := range ds.Items {
			k, ok := index[it.Fields[hd.Field]]
			if !ok {
				k = -1
			}
			out[h] = append(out[h], k)
		}
	}
	return out, nil
}

// VAEReport is the reconstruction quality of a VAE on held-out images.
type VAEReport struct {
	Model  string  `json:"model"`
	Data   string  `json:"data"`
	Images int     `json:"images"`
	Size   int     `json:"size"`
	PSNR   float64 `json:"psnr_db"`
	SSIM   float64 `json:"ssim"`
}

// EvaluateVAE encodes up to n held-out images of ds at size×size to the
// posterior mean, decodes them and returns the mean PSNR and SSIM.
func EvaluateVAE(ctx stdctx.Context, m *vae.AutoencoderKL, ds *data.Dataset, n, size int) (*VAEReport, error) {
	if n < 1 {
		return nil, fmt.Errorf("n %d: want at least 1 image", n)
	}
	if f := m.Config.DownsampleFactor(); size%f != 0 {
		return nil, fmt.Errorf("size %d is not a multiple of the VAE's downsampling factor %d", size, f)
	}
	_, heldDS, err := SplitHeldOut(ds)
	if err != nil {
		return nil, err
	}
	if n < heldDS.Len() {
		heldDS = &data.Dataset{Root: heldDS.Root, Layout: heldDS.Layout, Items: heldDS.Items[:n]}
	}
	l, err := data.NewLoader(ctx, heldDS, data.Options{Size: size, BatchSize: 16, Epochs: 1}, nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	rep := &VAEReport{Data: ds.Root, Size: size}
	var psnr, ssim float64
	for {
		b, err := l.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		k := b.Shape[0]
		rec, err := train.Reconstruct(m, b.Images, k, size)
		if err != nil {
			return nil, err
		}
		p, s, err := eval.ReconstructionQuality(b.Images, rec, k, 3, size, size)
		if err != nil {
			return nil, err
		}
		psnr += p * float64(k)
		ssim += s * float64(k)
		rep.Images += k
	}
	if rep.Images == 0 {
		return nil, fmt.Errorf("dataset %s: no held-out image could be read", ds.Root)
	}
	rep.PSNR, rep.SSIM = psnr/float64(rep.Images), ssim/float64(rep.Images)
	return rep, nil
}

// ShapesReport is the shapes-set alignment of a model: does the generated
// image show the prompt's colour, its shape, both?
type ShapesReport struct {
	Model      string     `json:"model"`
	Classifier string     `json:"classifier"`
	Gen        GenOptions `json:"generation"`
	// ShapesSeed is the seed of the procedural prompt set.
	ShapesSeed uint64  `json:"shapes_seed"`
	Color      float64 `json:"color"`
	Shape      float64 `json:"shape"`
	Both       float64 `json:"both"`
	// Real* are the classifier on the true rendering of each prompt: the
	// ceiling.
	RealColor float64 `json:"real_color"`
	RealShape float64 `json:"real_shape"`
	RealBoth  float64 `json:"real_both"`
	// Chance* is a uniform guess (both: the product).
	ChanceColor float64  `json:"chance_color"`
	ChanceShape float64  `json:"chance_shape"`
	Generated   Distance `json:"generated_vs_real"`
	Seconds     float64  `json:"seconds"`
}

// EvaluateShapes draws o.N procedural shapes prompts (data.Shape with seed
// shapesSeed, at the classifier's size), generates one image per prompt and
// scores colour and shape with clf, which must have "color" and "shape"
// heads.
func EvaluateShapes(ctx stdctx.Context, pipe *ldm.Pipeline, clf *Model, shapesSeed uint64, o GenOptions) (*ShapesReport, error) {
	start := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	hc, hs := clf.Config.HeadIndex("color"), clf.Config.HeadIndex("shape")
	if hc < 0 || hs < 0 {
		return nil, fmt.Errorf("the classifier (%s) has no color and shape heads: pass a shapes classifier (ldm train classifier shapes)", clf.Config.Task)
	}
	size := clf.Config.Size
	so := data.ShapesOptions{N: o.N, Size: size, Seed: shapesSeed}
	index := func(h int, v string) int {
		for i, l := range clf.Config.Heads[h].Labels {
			if l == v {
				return i
			}
		}
		return -1
	}
	var prompts []string
	var real []float32
	colors, shapes := make([]int, o.N), make([]int, o.N)
	for i := range o.N {
		img, s, err := data.Shape(so, i)
		if err != nil {
			return nil, err
		}
		prompts = append(prompts, s.Caption)
		real = append(real, ImageNHWC(img, size)...)
		colors[i], shapes[i] = index(hc, s.Color), index(hs, s.Shape)
	}
	x, err := generate(ctx, pipe, prompts, o, size)
	if err != nil {
		return nil, err
	}
	gen, err := clf.Run(x, o.N)
	if err != nil {
		return nil, err
	}
	ref, err := clf.Run(real, o.N)
	if err != nil {
		return nil, err
	}
	score := func(p *Prediction) (c, s, both float64) {
		for i := range o.N {
			okc := eval.TopK(p.Logits[hc][i], 1)[0] == colors[i]
			oks := eval.TopK(p.Logits[hs][i], 1)[0] == shapes[i]
			if okc {
				c++
			}
			if oks {
				s++
			}
			if okc && oks {
				both++
			}
		}
		n := float64(o.N)
		return c / n, s / n, both / n
	}
	rep := &ShapesReport{Classifier: clf.Config.Task, Gen: o, ShapesSeed: shapesSeed,
		ChanceColor: eval.UniformTopK(len(clf.Config.Heads[hc].Labels), 1),
		ChanceShape: eval.UniformTopK(len(clf.Config.Heads[hs].Labels), 1)}
	rep.Color, rep.Shape, rep.Both = score(gen)
	rep.RealColor, rep.RealShape, rep.RealBoth = score(ref)
	if rep.Generated, err = distance("generated", "real rendering", gen.Features, ref.Features); err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// firstTags keeps the first n comma-separated tags of caption (all of it
// when n ≤ 0).
func firstTags(caption string, n int) string {
	if n <= 0 {
		return caption
	}
	tags := strings.Split(caption, ",")
	for i := range tags {
		tags[i] = strings.TrimSpace(tags[i])
	}
	return strings.Join(tags[:min(n, len(tags))], ", ")
}
