package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

func init() { subcommands = append(subcommands, newInfoCmd) }

func newInfoCmd() *cobra.Command {
	var (
		asJSON bool
		opts   weights.OpenOptions
	)
	cmd := &cobra.Command{
		Use:   "info <path>",
		Short: "Describe a model: format, components, configs, parameters, dtypes, unexpected keys",
		Long: `info opens a diffusers folder, a component folder, a Hugging Face cache folder or an original
single-file .safetensors checkpoint ("default": the embedded model) and describes what it holds.
Only headers are read.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := modelArg(args[0])
			if err != nil {
				return err
			}
			m, err := weights.OpenModel(path, opts)
			if err != nil {
				return err
			}
			defer m.Close()
			s := weights.Summarize(m)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			if err := printSummary(cmd.OutOrStdout(), s); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "\npure-Go backend fast path: %s\n", nn.FastPathStatus())
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	f.StringVar(&opts.ConfigFrom, "config-from", "", "single file: take component configs, tokenizer and scheduler from this diffusers folder")
	f.StringVar(&opts.PredictionType, "prediction-type", "", `override the scheduler's prediction type ("epsilon", "v_prediction", "sample")`)
	f.StringVar(&opts.Variant, "variant", "", `diffusers folder: prefer *.<variant>.safetensors weights (e.g. "fp16")`)
	return cmd
}

func printSummary(w io.Writer, s *weights.Summary) error {
	p := &errWriter{w: w}
	p.printf("%s\n  format: %s, %s parameters\n", s.Path, s.Format, humanCount(s.Parameters))
	for _, c := range s.Components {
		p.printf("\n%s", c.Name)
		if c.Class != "" {
			p.printf(" (%s)", c.Class)
		}
		p.printf("\n")
		if c.Tensors > 0 {
			p.printf("  %s parameters in %d tensors:%s\n", humanCount(c.Parameters), c.Tensors, dtypeList(c.DTypes))
		}
		if c.ConfigOrigin != "" {
			p.printf("  config: %s\n", c.ConfigOrigin)
		}
		if c.Dir != "" && c.Tensors == 0 {
			p.printf("  folder: %s\n", c.Dir)
		}
		keys := make([]string, 0, len(c.Config))
		for k := range c.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := json.Marshal(c.Config[k])
			p.printf("    %s: %s\n", k, v)
		}
		printKeys(p, "unexpected keys", c.Unexpected)
		printKeys(p, "missing keys", c.Missing)
	}
	if len(s.Unexpected) > 0 {
		p.printf("\n")
		printKeys(p, "keys of no component", s.Unexpected)
	}
	if len(s.Ignored) > 0 {
		p.printf("\nignored (not model weights): %d keys\n", len(s.Ignored))
	}
	return p.err
}

func printKeys(p *errWriter, what string, keys []string) {
	if len(keys) == 0 {
		return
	}
	p.printf("  %s (%d):\n", what, len(keys))
	for i, k := range keys {
		if i == 20 {
			p.printf("    … and %d more (see --json)\n", len(keys)-i)
			break
		}
		p.printf("    %s\n", k)
	}
}

func dtypeList(d map[weights.DType]weights.DTypeCount) string {
	var parts []string
	for dt, c := range d {
		parts = append(parts, fmt.Sprintf(" %s %d", dt, c.Tensors))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// humanCount writes 859520964 as "859.5M".
func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// errWriter keeps the first write error so printing code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
