package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/weights"
)

func init() { subcommands = append(subcommands, newConvertCmd) }

func newConvertCmd() *cobra.Command {
	var (
		dtype string
		opts  ldm.ConvertOptions
	)
	cmd := &cobra.Command{
		Use:   "convert SRC DST",
		Short: "Convert a model between a diffusers folder and a single .safetensors file (F32, F16 or BF16)",
		Long: `convert rewrites a Stable Diffusion model (unet, vae, text_encoder) in the other layout:
DST ending in .safetensors becomes an original-layout single file (model.diffusion_model.*,
first_stage_model.*, cond_stage_model.*); any other DST becomes a diffusers folder (model_index.json,
one folder per component, the tokenizer copied). DST must not exist; it is written atomically.
SRC "default" is the embedded model.

A single file holds no configs: converting one to a folder infers them from the tensor shapes, or
takes them from --config-from (needed for models whose configs shapes cannot tell, e.g. the number
of attention heads of a small text encoder).`,
		Example: `  ldm convert stable-diffusion-v1-5/ sd15-fp16.safetensors --dtype f16
  ldm convert sd15.safetensors sd15-diffusers/ --tokenizer ~/clip-vit-large-patch14`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dtype != "" {
				dt, err := parseDType(dtype)
				if err != nil {
					return err
				}
				opts.DType = dt
			}
			src, err := modelArg(args[0])
			if err != nil {
				return err
			}
			dst := filepath.Clean(args[1])
			start := time.Now()
			if err := ldm.Convert(src, dst, opts); err != nil {
				return err
			}
			kind := "diffusers folder"
			if strings.EqualFold(filepath.Ext(dst), ".safetensors") {
				kind = "single file"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s, %s, %s in %s\n", dst, kind, dtypeName(opts.DType), humanBytes(sizeOf(dst)), seconds(time.Since(start)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dtype, "dtype", "", "weights type: f32, f16 or bf16 (default: the source's)")
	f.StringVar(&opts.ConfigFrom, "config-from", "", "single-file source: take the component configs (and tokenizer) from this diffusers folder")
	f.StringVar(&opts.Tokenizer, "tokenizer", "", "tokenizer folder to copy into a diffusers target (default: the source's, else the Hugging Face cache's)")
	return cmd
}

func parseDType(s string) (weights.DType, error) {
	switch strings.ToLower(s) {
	case "f32", "fp32", "float32":
		return weights.F32, nil
	case "f16", "fp16", "float16", "half":
		return weights.F16, nil
	case "bf16", "bfloat16":
		return weights.BF16, nil
	}
	return "", fmt.Errorf("--dtype %q: use f32, f16 or bf16", s)
}

func dtypeName(d weights.DType) string {
	if d == "" {
		return "source dtype"
	}
	return string(d)
}

// sizeOf is a file's size, or the total of a folder's files.
func sizeOf(path string) int64 {
	var n int64
	_ = filepath.Walk(path, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
