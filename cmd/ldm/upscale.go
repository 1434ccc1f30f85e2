package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/ldm"
)

func init() { subcommands = append(subcommands, newUpscaleCmd) }

func newUpscaleCmd() *cobra.Command {
	var (
		upscaler, output string
		scale            float64
		width, height    int
	)
	cmd := &cobra.Command{
		Use:   "upscale IMG",
		Short: "Upscale an image (Lanczos or Nearest), keeping its generation parameters",
		Long: `upscale resizes IMG by --scale (default 2) or to --width x --height with a pixel upscaler
(` + strings.Join(ldm.PixelUpscalers, ", ") + `) and writes it to -o (default IMG-upscaled.png), with the
parameters IMG carries (PNG or JPEG).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := readImage(args[0])
			if err != nil {
				return err
			}
			out, err := ldm.Upscale(img, upscaler, scale, width, height, 0, 0)
			if err != nil {
				if fe, ok := err.(*ldm.FieldError); ok {
					flag := map[string]string{"upscaler_1": "--upscaler", "upscaling_resize": "--scale"}[fe.Field]
					return fmt.Errorf("%s: %s", flag, fe.Msg)
				}
				return err
			}
			if output == "" {
				output = strings.TrimSuffix(args[0], filepath.Ext(args[0])) + "-upscaled.png"
			}
			f, ok := ldm.FormatOf(output)
			if !ok {
				return fmt.Errorf("-o: unknown image extension %q: use .png, .jpg or .webp", filepath.Ext(output))
			}
			var info ldm.Infotext
			if text, err := ldm.ReadParametersFile(args[0]); err == nil && text != "" {
				info, _ = ldm.ParseInfotext(text)
			}
			if err := ldm.SaveImage(output, out, info, f, 0); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %dx%d\n", output, out.Bounds().Dx(), out.Bounds().Dy())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&upscaler, "upscaler", "Lanczos", "pixel upscaler: "+strings.Join(ldm.PixelUpscalers, ", "))
	f.Float64Var(&scale, "scale", 2, "upscale factor (unless --width and --height)")
	f.IntVar(&width, "width", 0, "target width (with --height)")
	f.IntVar(&height, "height", 0, "target height (with --width)")
	f.StringVarP(&output, "output", "o", "", "output file (.png, .jpg, .webp)")
	return cmd
}
