// Package compare trains every baseline of ldm (autoencoder, denoising
// autoencoder, VAE, β-VAE, VQ-VAE with its prior, DCGAN, pixel-space DDPM) on
// one dataset with the same optimiser-step and batch budget, samples a
// trained LDM beside them, judges them with package eval's metrics — in the
// feature space of a package classify classifier when one is given (also
// judging the LDM's prompt alignment), of the run's own autoencoder and of
// pooled pixels — and writes a report folder: report.md, results.json,
// sample grids, interpolation strips, loss curves and latent plots, and every
// sample (so that Rescore can measure them again). `ldm compare` is its
// command.
//
// It is its own folder because it is the one job that imports all the
// models (baselines, gan, train, ldm, classify) and the metrics (eval); eval
// itself stays plain Go with no model dependencies.
package compare
