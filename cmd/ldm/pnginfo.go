package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/ldm"
)

func init() { subcommands = append(subcommands, newPNGInfoCmd) }

// pngInfo is png-info's JSON output.
type pngInfo struct {
	File           string            `json:"file"`
	Prompt         string            `json:"prompt"`
	NegativePrompt string            `json:"negative_prompt"`
	Parameters     map[string]string `json:"parameters"`
	// Request is what "ldm generate" (or a batch .jsonl line) needs to make
	// the image again.
	Request ldm.Request `json:"request"`
	Raw     string      `json:"raw"`
}

func newPNGInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "png-info FILE",
		Short: "Print the generation parameters stored in an image (PNG parameters chunk or JPEG EXIF comment)",
		Long: `png-info prints the AUTOMATIC1111-style parameters that ldm (or AUTOMATIC1111) stored in a PNG
"parameters" text chunk or a JPEG EXIF UserComment: the prompt, the "Negative prompt:" line and the
"Steps: …, Sampler: …" line. --json prints them parsed, with the request that makes the image again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := ldm.ReadParametersFile(args[0])
			if err != nil {
				return err
			}
			if !asJSON {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), text)
				return err
			}
			it, err := ldm.ParseInfotext(text)
			if err != nil {
				return fmt.Errorf("%s: parameters are not in the AUTOMATIC1111 format: %w", args[0], err)
			}
			req, err := it.Request()
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out := pngInfo{File: args[0], Prompt: it.Prompt, NegativePrompt: it.NegativePrompt, Parameters: map[string]string{}, Request: req, Raw: text}
			for _, kv := range it.Params {
				out.Parameters[kv.Key] = kv.Value
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the parsed fields as JSON")
	return cmd
}
