package compare

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

func cell(v *float64, format string) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf(format, nanToZero(*v))
}

func params(n int) string {
	if n == 0 {
		return "–"
	}
	if n >= 1e6 {
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.0fk", float64(n)/1e3)
}

// markdown renders the report.
func markdown(rep *Report) string {
	o := rep.Options
	var b strings.Builder
	fmt.Fprintf(&b, "# Baseline comparison\n\n")
	if o.Command != "" {
		fmt.Fprintf(&b, "Made by `%s`", o.Command)
	}
	fmt.Fprintf(&b, " on backend %s in %.1f min.", rep.Backend, rep.Seconds/60)
	for _, c := range rep.Resumed {
		fmt.Fprintf(&b, " Resumed by `%s` (rows missing from the results re-run; the AE trained again as the feature space; the time is the sum).", c)
	}
	if rep.Rescored != "" {
		fmt.Fprintf(&b, " The classifier columns (FD and KID (clf), precision/recall, prompt alignment) were measured afterwards from the stored samples (`samples/`) by `%s`.", rep.Rescored)
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "Data: `%s` at %d×%d, %d training and %d test images. Every model: %d optimiser steps of batch %d (AdamW, warm-up + cosine, no EMA); the VQ-VAE's prior gets %d more; the DCGAN's step is one discriminator and one generator update. Metrics over %d generated images against the %d test images.\n\n",
		o.Data, o.Size, o.Size, rep.TrainN, rep.TestN, o.Steps, o.Batch, o.PriorSteps, o.Samples, rep.TestN)
	clf := rep.ClassifierFeatures > 0
	if clf {
		fmt.Fprintf(&b, "FD (clf) and KID (clf), the primary columns, are measured in the %d-value pooled feature space of the emoji classifier %s (package classify, trained by this project on the same emoji set; every image is quantised to 8 bits and resized to the classifier's input with Lanczos, real and generated alike). They are not Inception features: they rank models within this report and are not comparable with published FIDs. FD (AE) and KID (AE) are the same measures in this run's own autoencoder's 64-value bottleneck, FD (px) on 8×8 average-pooled pixels. ", rep.ClassifierFeatures, o.ClassifierName)
	} else {
		b.WriteString("FD and KID are measured in the feature space of this run's own autoencoder (its 64-value bottleneck), not Inception: they rank models within this report and are not comparable with published FIDs. FD (px) is the same distance on 8×8 average-pooled pixels. ")
	}
	fmt.Fprintf(&b, "Precision/recall: k-NN manifolds, k = 3 (Kynkäänniemi et al. 2019), in the %s feature space. PSNR/SSIM: test-set reconstructions. OOD AUC: reconstruction error as an anomaly score, emoji test images against procedural shapes. Bits/dim: negative ELBO where the model has one. ", rep.PRSpace)
	fmt.Fprintf(&b, "Sample counts: n generated images per model (column n) against the %d test images. FD is biased upwards at small n (more so when n is below the feature dimension, %s), so compare a model's FD with the training-images row at the same n rather than with zero; KID is unbiased but noisy at these counts, and differences of a few percent in either are noise.\n\n", rep.TestN, featureDims(rep))
	if clf {
		b.WriteString("| model | params | train s | final loss | n | FD (clf) | KID (clf) | FD (AE) | KID (AE) | FD (px) | precision | recall | PSNR dB | SSIM | bits/dim | perplexity (codes used) | OOD AUC | samples/s |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	} else {
		b.WriteString("| model | params | train s | final loss | n | FD (AE) | KID (AE) | FD (px) | precision | recall | PSNR dB | SSIM | bits/dim | perplexity (codes used) | OOD AUC | samples/s |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	}
	rows := append([]Row{rep.Reference}, rep.Rows...)
	for _, r := range rows {
		perp := cell(r.Perplexity, "%.1f")
		if r.CodesUsed != nil {
			perp += fmt.Sprintf(" (%d)", *r.CodesUsed)
		}
		train := "–"
		if r.TrainSeconds > 0 {
			train = fmt.Sprintf("%.0f", r.TrainSeconds)
		}
		loss := "–"
		if r.Steps > 0 {
			loss = fmt.Sprintf("%.4g", r.FinalLoss)
		}
		n := "–"
		if r.Samples > 0 {
			n = fmt.Sprint(r.Samples)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | ", r.Model, params(r.Params), train, loss, n)
		if clf {
			fmt.Fprintf(&b, "%s | %s | ", cell(r.FDClf, "%.3g"), cell(r.KIDClf, "%.3g"))
		}
		fmt.Fprintf(&b, "%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			cell(r.FD, "%.3g"), cell(r.KID, "%.3g"), cell(r.FDPixel, "%.3g"), cell(r.Precision, "%.2f"), cell(r.Recall, "%.2f"),
			cell(r.PSNR, "%.2f"), cell(r.SSIM, "%.3f"), cell(r.BitsPerDim, "%.3f"), perp, cell(r.AUC, "%.3f"), cell(r.ImgPerSec, "%.3g"))
	}
	b.WriteString("\n")
	alignmentTable(&b, rep)
	b.WriteString("## Conclusions\n\n")
	for _, c := range rep.Conclusion {
		fmt.Fprintf(&b, "- %s\n", c)
	}
	b.WriteString("\n## Models\n\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "### %s\n\n", r.Model)
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		for _, a := range r.Artifacts {
			fmt.Fprintf(&b, "\n![%s](%s)\n", a, a)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// conclusions states what the numbers say, model against model, including
// where a simpler baseline wins.
func conclusions(rep *Report) []string {
	var out []string
	best := func(label string, get func(Row) *float64, lower bool, format string) {
		type kv struct {
			name string
			v    float64
		}
		var xs []kv
		for _, r := range rep.Rows {
			if v := get(r); v != nil && !math.IsNaN(*v) {
				xs = append(xs, kv{r.Model, *v})
			}
		}
		if len(xs) < 2 {
			return
		}
		sort.Slice(xs, func(i, j int) bool {
			if lower {
				return xs[i].v < xs[j].v
			}
			return xs[i].v > xs[j].v
		})
		parts := make([]string, len(xs))
		for i, x := range xs {
			parts[i] = fmt.Sprintf("%s "+format, x.name, x.v)
		}
		out = append(out, fmt.Sprintf("%s, best first: %s.", label, strings.Join(parts, ", ")))
	}
	if rep.ClassifierFeatures > 0 {
		best("Sample quality by FD in classifier features (lower is better)", func(r Row) *float64 { return r.FDClf }, true, "%.3g")
		best("By KID in classifier features", func(r Row) *float64 { return r.KIDClf }, true, "%.3g")
		best("By FD in AE features", func(r Row) *float64 { return r.FD }, true, "%.3g")
	} else {
		best("Sample quality by FD in AE features (lower is better)", func(r Row) *float64 { return r.FD }, true, "%.3g")
	}
	best("By FD on pooled pixels", func(r Row) *float64 { return r.FDPixel }, true, "%.3g")
	best("Precision (samples on the test manifold)", func(r Row) *float64 { return r.Precision }, false, "%.2f")
	best("Recall (coverage of the test set)", func(r Row) *float64 { return r.Recall }, false, "%.2f")
	best("Reconstruction PSNR", func(r Row) *float64 { return r.PSNR }, false, "%.2f dB")
	best("Anomaly detection AUC", func(r Row) *float64 { return r.AUC }, false, "%.3f")
	best("Sampling speed (images/s)", func(r Row) *float64 { return r.ImgPerSec }, false, "%.3g")
	if ref := rep.Reference.FDClf; ref != nil {
		line := fmt.Sprintf("In classifier features, training images against test images reach FD %.3g at n = %d: the floor at these counts.", *ref, rep.Reference.Samples)
		for _, r := range rep.Rows {
			if r.FDClf != nil && *r.FDClf < *ref {
				line += fmt.Sprintf(" %s scores below it, which at these counts is noise or a feature space blind to what separates its samples from real emoji.", r.Model)
				break
			}
		}
		out = append(out, line)
	}
	for _, r := range rep.Rows {
		for _, a := range r.Alignment {
			verdict := "the text steers the images"
			if a.Top1 <= a.PromptIndependentTop1 || a.Top1 <= a.UniformTop1 {
				verdict = "the text does not measurably steer the images"
			}
			out = append(out, fmt.Sprintf("%s's prompt alignment by %s (%d classes, %d images): top-1 %s against %s prompt-independent, %s majority and %s chance (real images: %s); top-5 %s against %s, %s and %s: %s at this level of detail.",
				r.Model, a.Field, a.Classes, a.Images, pct(a.Top1), pct(a.PromptIndependentTop1), pct(a.MajorityTop1), pct(a.UniformTop1), pct(a.RealTop1),
				pct(a.Top5), pct(a.PromptIndependentTop5), pct(a.MajorityTop5), pct(a.UniformTop5), verdict))
		}
	}
	if ref := rep.Reference.FD; ref != nil {
		line := fmt.Sprintf("In AE features, training images against test images reach FD %.3g: the sampling noise of this feature space at these counts.", *ref)
		for _, r := range rep.Rows {
			if r.FD != nil && *r.FD < *ref {
				line += fmt.Sprintf(" %s scores below it, which says more about the feature space (an autoencoder trained for %d steps, blind to what it cannot reconstruct) than about %s.", r.Model, rep.Options.Steps, r.Model)
				break
			}
		}
		out = append(out, line)
	}
	for _, r := range rep.Rows {
		if r.AUC != nil && *r.AUC < 0.5 {
			out = append(out, fmt.Sprintf("%s's reconstruction error does not detect the shapes images as out-of-distribution (AUC %.3f < 0.5): flat shapes on white are simpler than emoji and reconstruct better. Reconstruction error measures complexity as much as novelty, the failure likelihood-based detectors are known for (Nalisnick et al. 2019).", r.Model, *r.AUC))
		}
	}
	for _, r := range rep.Rows {
		if r.Precision != nil && r.Recall != nil && *r.Precision >= 0.95 && *r.Recall <= 0.05 {
			out = append(out, fmt.Sprintf("%s's precision %.2f with recall %.2f: its samples fall inside the test set's k-NN balls but cover almost none of it: they crowd into one small region of the feature space, where the large balls of outlying test images take in even blurry, averaged or noise-like images (see its sample grid). Precision alone would flatter it.", r.Model, *r.Precision, *r.Recall))
		}
		if r.Model == ModelLDM {
			out = append(out, "The ldm row is a model trained outside this run (see its note under Models): it does not share the baselines' budget, resolution or data order, so it shows where this project's model stands, not which method learns faster.")
		}
	}
	switch steps := rep.Options.Steps; {
	case steps <= 200:
		out = append(out, fmt.Sprintf("At %d steps no model has converged and the samples are not recognisable emoji; this run checks that every model trains, samples and is measured, and its rankings mostly measure how fast each model starts to learn, not where it ends. The reduced-budget report in docs/compare/full-32px-800steps/ is the one to draw conclusions from.", steps))
	case steps < 1000:
		out = append(out, fmt.Sprintf("At %d steps no model has converged: the rankings say which model learns fastest at this budget, not where each would end.", steps))
	}
	out = append(out, "Sampling cost is structural: the VAEs and the DCGAN decode in one pass, the VQ-VAE's prior needs one pass per code, the DDPM one U-Net pass per diffusion step.")
	return out
}

// featureDims names the feature dimensions the FD columns use.
func featureDims(rep *Report) string {
	if rep.ClassifierFeatures > 0 {
		return fmt.Sprintf("%d for the classifier, 64 for the AE, 192 for pooled pixels", rep.ClassifierFeatures)
	}
	return "64 for the AE, 192 for pooled pixels"
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

// alignmentTable writes the prompt alignment of every conditioned model, or
// says why there is none.
func alignmentTable(b *strings.Builder, rep *Report) {
	var rows []Row
	for _, r := range rep.Rows {
		if len(r.Alignment) > 0 {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		switch {
		case rep.Options.LDM == "":
			b.WriteString("Prompt alignment does not apply: every baseline here is unconditional (no conditioned model was given with --ldm).\n\n")
		case rep.ClassifierFeatures == 0:
			b.WriteString("Prompt alignment was not measured: no classifier was given.\n\n")
		}
		return
	}
	b.WriteString("### Prompt alignment\n\n")
	b.WriteString("The classifier's prediction for each generated image against the label of its prompt's test image. Prompt-independent: each image scored against the labels of the other prompts (what images of the same distribution that ignore the text would score); majority: always guessing the most frequent training classes; chance: k / classes; real test images: the classifier on the real images at this run's resolution, the ceiling. The baselines are unconditional and have no row.\n\n")
	b.WriteString("| model | label | classes | images (prompts) | top-1 | top-5 | prompt-independent top-1 / top-5 | majority top-1 / top-5 | chance top-1 / top-5 | real test images top-1 / top-5 (n) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		for _, a := range r.Alignment {
			fmt.Fprintf(b, "| %s | %s | %d | %d (%d) | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s (%d) |\n", r.Model, a.Field, a.Classes, a.Images, a.Prompts,
				pct(a.Top1), pct(a.Top5), pct(a.PromptIndependentTop1), pct(a.PromptIndependentTop5), pct(a.MajorityTop1), pct(a.MajorityTop5),
				pct(a.UniformTop1), pct(a.UniformTop5), pct(a.RealTop1), pct(a.RealTop5), a.RealImages)
		}
	}
	b.WriteString("\n")
}
