// Command ldm generates images with latent diffusion models, trains them and serves them.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	_ "golang.org/x/text/unicode/norm"
)

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ldm:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ldm",
		Short:         "Latent diffusion text-to-image: generate, train, serve",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("backend", "", `compute backend: "go" (pure Go) or "xla" (needs a PJRT plugin); default: xla if a plugin is found, else go (env LDM_BACKEND)`)
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by each command's file in init().
var subcommands []func() *cobra.Command
