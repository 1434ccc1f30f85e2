// Package compare trains every baseline of ldm (autoencoder, denoising
// autoencoder, VAE, β-VAE, VQ-VAE with its prior, DCGAN, pixel-space DDPM) on
// one dataset with the same optimiser-step and batch budget, judges them with
// package eval's metrics in one feature space, and writes a report folder:
// report.md, results.json, sample grids, interpolation strips, loss curves
// and latent plots. `ldm compare` is its command.
//
// It is its own folder because it is the one job that imports all the
// models (baselines, gan, train) and the metrics (eval); eval itself stays
// plain Go with no model dependencies.
package compare
