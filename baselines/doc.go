// Package baselines holds the classic generative models the latent
// diffusion pipeline is compared with, each small and written from first
// principles on nn's layers: the autoencoder and denoising autoencoder (with
// an anomaly score), the VAE and β-VAE, the VQ-VAE with a causal-transformer
// prior over its code grid, and the pixel-space DDPM on the U-Net family of
// the LDM. Each model lives under its own scope of one GoMLX context and
// trains with train.Trainer; the DCGAN, which needs two optimisers, is in
// package gan.
//
// It is a folder of its own rather than files in vae/, which is the
// AutoencoderKL of Stable Diffusion with diffusers keys: these models share a
// small convolutional encoder/decoder and losses with each other, not with it.
package baselines
