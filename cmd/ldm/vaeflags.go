package main

import (
	"image"
	"image/png"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/ldm"
)

// registerVAEFlags adds the flags that choose the decoder, the previews and
// tiling (generate, batch, serve).
func registerVAEFlags(f *pflag.FlagSet, o *ldm.LoadOptions) {
	f.StringVar(&o.VAE, "vae", os.Getenv("LDM_VAE"), "replace the model's VAE: a diffusers VAE folder, a single VAE .safetensors (e.g. vae-ft-mse-840000-ema-pruned), a name in --vae-dir, or taesd:PATH to decode with TAESD (fast, lower quality) (env LDM_VAE)")
	f.StringVar(&o.TAESD, "taesd", os.Getenv("LDM_TAESD"), "TAESD for previews: a diffusers AutoencoderTiny folder, taesd_decoder.safetensors (ComfyUI's vae_approx) or a diffusers-layout file (env LDM_TAESD)")
	f.StringVar(&o.Preview, "preview", "", `live previews: "approx" (a latent→RGB map fitted to the model, default), "taesd" (needs --taesd or --vae taesd:PATH) or taesd:PATH`)
	f.StringVar(&o.VAEDir, "vae-dir", os.Getenv("LDM_VAE_DIR"), "folder of VAEs (*.safetensors, diffusers folders) that requests name (AUTOMATIC1111's sd_vae) (env LDM_VAE_DIR)")
	f.StringVar(&o.VAETiling.Mode, "vae-tiling", "auto", `tiled VAE decode/encode: "auto" (when a whole-image decode would need more than 6 GiB: SD above about 512²), "on" or "off"`)
}

// writePreview writes a preview image as PNG, atomically (a viewer watching
// the file never sees half an image).
func writePreview(path string, img image.Image) error {
	return fsutil.WriteAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
}
