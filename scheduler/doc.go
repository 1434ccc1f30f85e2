// Package scheduler owns the diffusion noise schedules (betas,
// alphas_cumprod, sigmas, timestep spacing, the sigma schedules of
// k-diffusion and ComfyUI) and the samplers that step a latent from noise to
// image: diffusers' classes (DDPM, DDIM, PNDM/PLMS, LMS, Euler, Euler
// ancestral, Heun, DPM++ multistep, UniPC, LCM, TCD, KDPM2, KDPM2 ancestral,
// DEIS, EDM Euler, EDM DPM++) matching diffusers v0.29.2, and k-diffusion's
// sampler functions as AUTOMATIC1111 and ComfyUI run them over the model's
// discrete sigmas (kdiff.go). The main type is Scheduler, built by New from a
// sampler name (see names.go for which implementation a name means) plus a
// scheduler_config.json. It is plain Go over flat float32 slices, with the
// training helpers (AddNoise, Velocity, SNR) alongside.
package scheduler
