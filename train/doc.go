// Package train trains and fine-tunes the models of ldm on GoMLX: a Trainer
// that runs AdamW with warm-up + cosine learning rate, gradient clipping by
// global norm, gradient accumulation and an EMA of the weights on any loss
// graph function; atomic checkpoints that resume exactly; the KL-VAE loss
// (with optional perceptual and PatchGAN adversarial terms) and the
// latent-diffusion loss; LoRA adapters (training, kohya export, merging);
// image–caption datasets held in memory; and the loss-curve and sample-grid
// PNGs.
//
// Every model trained here lives in one GoMLX context under its diffusers
// component name ("/unet/…", "/text_encoder/…", "/vae/…"), so that a
// checkpoint is one safetensors file and an export is a diffusers folder.
// A VAE run's discriminator ("/discriminator/…") is checkpointed with it;
// frozen networks ("/frozen/…", the perceptual loss's) are not.
package train
