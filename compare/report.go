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
	fmt.Fprintf(&b, " on backend %s in %.1f min.\n\n", rep.Backend, rep.Seconds/60)
	fmt.Fprintf(&b, "Data: `%s` at %d×%d, %d training and %d test images. Every model: %d optimiser steps of batch %d (AdamW, warm-up + cosine, no EMA); the VQ-VAE's prior gets %d more; the DCGAN's step is one discriminator and one generator update. Metrics over %d generated images against the %d test images.\n\n",
		o.Data, o.Size, o.Size, rep.TrainN, rep.TestN, o.Steps, o.Batch, o.PriorSteps, o.Samples, rep.TestN)
	b.WriteString("FD and KID are measured in the feature space of this run's own autoencoder (its 64-value bottleneck), not Inception: they rank models within this report and are not comparable with published FIDs. FD(px) is the same distance on 8×8 average-pooled pixels. Precision/recall: k-NN manifolds, k = 3 (Kynkäänniemi et al. 2019). PSNR/SSIM: test-set reconstructions. OOD AUC: reconstruction error as an anomaly score, emoji test images against procedural shapes. Bits/dim: negative ELBO where the model has one. The sample counts are small, so FD is biased upwards and differences of a few percent are noise.\n\n")
	b.WriteString("| model | params | train s | final loss | FD | FD(px) | KID | precision | recall | PSNR dB | SSIM | bits/dim | perplexity (codes used) | OOD AUC | samples/s |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
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
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Model, params(r.Params), train, loss,
			cell(r.FD, "%.3g"), cell(r.FDPixel, "%.3g"), cell(r.KID, "%.3g"), cell(r.Precision, "%.2f"), cell(r.Recall, "%.2f"),
			cell(r.PSNR, "%.2f"), cell(r.SSIM, "%.3f"), cell(r.BitsPerDim, "%.3f"), perp, cell(r.AUC, "%.3f"), cell(r.ImgPerSec, "%.3g"))
	}
	b.WriteString("\nPrompt alignment does not apply: every baseline here is unconditional.\n\n## Conclusions\n\n")
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
	best("Sample quality by FD in AE features (lower is better)", func(r Row) *float64 { return r.FD }, true, "%.3g")
	best("By FD on pooled pixels", func(r Row) *float64 { return r.FDPixel }, true, "%.3g")
	best("Recall (coverage of the test set)", func(r Row) *float64 { return r.Recall }, false, "%.2f")
	best("Reconstruction PSNR", func(r Row) *float64 { return r.PSNR }, false, "%.2f dB")
	best("Anomaly detection AUC", func(r Row) *float64 { return r.AUC }, false, "%.3f")
	best("Sampling speed (images/s)", func(r Row) *float64 { return r.ImgPerSec }, false, "%.3g")
	if ref := rep.Reference.FD; ref != nil {
		line := fmt.Sprintf("Training images against test images reach FD %.3g: the sampling noise of this feature space at these counts.", *ref)
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
	if rep.Options.Steps < 1000 {
		out = append(out, fmt.Sprintf("At %d steps no model has converged and the samples are not recognisable emoji; this run checks that every model trains, samples and is measured, and its rankings mostly measure how fast each model starts to learn, not where it ends. The full report (docs/compare/) is the one to draw conclusions from.", rep.Options.Steps))
	}
	out = append(out, "Sampling cost is structural: the VAEs and the DCGAN decode in one pass, the VQ-VAE's prior needs one pass per code, the DDPM one U-Net pass per diffusion step.")
	return out
}
