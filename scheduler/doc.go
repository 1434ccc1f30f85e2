// Package scheduler owns the diffusion noise schedules (betas, alphas_cumprod,
// sigmas, timestep spacing, Karras sigmas) and the samplers that step a latent
// from noise to image (DDPM, DDIM, PNDM/PLMS, LMS, Euler, Euler ancestral, Heun,
// DPM++ 2M, UniPC), matching diffusers v0.29.2. It is plain Go over flat
// float32 slices, with the training helpers (AddNoise, Velocity, SNR) alongside;
// the main type is Scheduler, built by New from a diffusers class name or a
// user-facing sampler name plus a scheduler_config.json.
package scheduler
