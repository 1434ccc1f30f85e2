// Package vae is diffusers' AutoencoderKL (v0.29.2) on GoMLX: the encoder
// from images to the moments of a diagonal Gaussian, the posterior and its
// reparameterised sample, the decoder from latents back to images, and the
// latent scaling factor the diffusion model sees.
//
// Variables are scoped exactly like the diffusers state-dict keys
// (encoder.down_blocks.0.resnets.1.conv1.weight ↔ /encoder/down_blocks/0/resnets/1/conv1),
// so loading a diffusers VAE is a direct copy. Images and latents cross the
// API in diffusers' NCHW layout; inside the graph everything is NHWC.
package vae
