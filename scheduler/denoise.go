package scheduler

// lin is a prediction that is linear in the sample and the model output:
// cx·x + co·out. Converting between ε, v and x0 predictions is always such a
// map, which lets each step run as one pass over the latent.
type lin struct{ cx, co float64 }

func (l lin) at(x, o float32) float64 { return l.cx*float64(x) + l.co*float64(o) }

// predict is the one prediction-type conversion of the package: the x0 and
// ε predictions, as maps of (x, model output), at a noise level of the
// variance-preserving form x = α·x0 + σ·ε, for a model that predicts ε, v
// (= α·ε − σ·x0, Salimans & Ho 2022, arXiv:2202.00512) or x0 ("sample").
// The alphas_cumprod samplers call it with α = sqrt(ᾱ_t), σ = sqrt(1−ᾱ_t),
// the multistep solvers with vpAlphaSigma, and the sigma samplers through
// kDenoised. α and σ are float32 as diffusers holds them.
func predict(pred string, alpha, sigma float32) (x0, eps lin) {
	a, s := float64(alpha), float64(sigma)
	switch pred {
	case "sample":
		return lin{0, 1}, lin{1 / s, -a / s}
	case "v_prediction":
		return lin{a, -s}, lin{s, a}
	}
	return lin{1 / a, -s / a}, lin{0, 1}
}

// kDenoised is k-diffusion's "denoised" (the x0 prediction) at noise level
// σ of the form x = x0 + σ·ε, where the model saw x/sqrt(σ²+1): the
// conversion of predict for the scaled sample α·x.
func kDenoised(pred string, sigma float32) lin {
	if pred == "epsilon" {
		return lin{1, -float64(sigma)} // exact; predict's (1/α)·α is not
	}
	a, s := vpAlphaSigma(sigma)
	x0, _ := predict(pred, a, s)
	return lin{x0.cx * float64(a), x0.co}
}
