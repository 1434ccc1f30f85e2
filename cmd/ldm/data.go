package main

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ldm-project/ldm/data"
)

func init() { subcommands = append(subcommands, newDataCmd) }

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Build and check image–caption datasets (emoji, shapes, your own folders)",
	}
	cmd.AddCommand(newDataEmojiCmd(), newDataShapesCmd(), newDataCheckCmd(), newDataAudioCmd())
	return cmd
}

func newDataEmojiCmd() *cobra.Command {
	var (
		opts     data.EmojiOptions
		from     string
		cacheDir string
		version  string
	)
	cmd := &cobra.Command{
		Use:   "emoji OUT",
		Short: "Build the emoji imagefolder from the Twemoji and Noto Emoji npm packages",
		Long: `emoji builds an imagefolder (OUT/<set>/<code>.png, OUT/metadata.jsonl, OUT/LICENSES.md) from the
npm packages emoji-datasource-twitter (Twemoji, CC-BY 4.0) and emoji-datasource-google (Noto Emoji,
Apache 2.0). The packages are fetched with "npm pack" into --cache-dir, or read from --from.
Captions come from emoji.json: name, short names, skin tone, category, subcategory and style.
A fraction --holdout of the emoji (per category, the same on every run) is marked split "test".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var err error
			if from != "" {
				opts.Sources, err = data.FindEmojiPackages(from, opts.Sets)
			} else {
				if cacheDir == "" {
					if cacheDir, err = defaultCacheDir("npm"); err != nil {
						return err
					}
				}
				opts.Sources, err = data.FetchEmojiPackages(ctx, cacheDir, version, opts.Sets)
			}
			if err != nil {
				return err
			}
			start := time.Now()
			st, err := data.BuildEmoji(ctx, args[0], opts, newProgress(cmd.ErrOrStderr(), "emoji"))
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %d image–caption pairs (%s) of %d emoji in %.1fs\n",
				args[0], st.Pairs, countsBySet(st.PerSet), st.Emoji, time.Since(start).Seconds())
			fmt.Fprintf(w, "  split: %d train, %d test (%d of %d concepts held out)\n", st.Train, st.Test, st.TestConcepts, st.Concepts)
			if st.SkinVariants > 0 {
				fmt.Fprintf(w, "  skin-tone variants: %d\n", st.SkinVariants)
			}
			if st.Missing > 0 {
				fmt.Fprintf(w, "  left out: %d images missing or unreadable in the packages\n", st.Missing)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "read already-extracted packages from this folder instead of fetching them")
	f.StringVar(&cacheDir, "cache-dir", "", "where npm tarballs are downloaded and extracted (default: the user cache folder/ldm/npm)")
	f.StringVar(&version, "version", data.EmojiVersion, "emoji-datasource package version")
	f.StringSliceVar(&opts.Sets, "sets", data.EmojiSets, "image sets to include (twitter, google)")
	f.BoolVar(&opts.SkinTones, "skin-tones", false, "include the skin-tone variants")
	f.Float64Var(&opts.Holdout, "holdout", 0.1, "fraction of emoji held out as split test")
	f.StringSliceVar(&opts.Keep, "keep", data.EmojiKeep, "emoji kept in the train split even if the holdout hash picks them (code points or names); "+
		"the default keeps red apple, the README's example prompt")
	return cmd
}

func newDataShapesCmd() *cobra.Command {
	var opts data.ShapesOptions
	cmd := &cobra.Command{
		Use:   "shapes OUT",
		Short: "Generate the procedural shapes set with exact captions",
		Long: `shapes writes OUT/images/NNNNN.png and OUT/metadata.jsonl: coloured circles, squares, triangles,
stars, diamonds, hexagons, crosses and hearts of three sizes at nine positions on plain backgrounds,
captioned exactly ("a small red circle on a white background, top left") with the structured fields
shape, color, size, position, background, center_x, center_y, radius and split. The same --seed
gives the same images.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			if err := data.GenerateShapes(cmd.Context(), args[0], opts, newProgress(cmd.ErrOrStderr(), "shapes")); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d images at %d² in %.1fs\n", args[0], opts.N, opts.Size, time.Since(start).Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.N, "n", 1000, "number of images")
	f.IntVar(&opts.Size, "size", 64, "image side in pixels")
	f.Uint64Var(&opts.Seed, "seed", 0, "random seed")
	f.Float64Var(&opts.Holdout, "holdout", 0.1, "fraction of images marked split test")
	return cmd
}

func newDataCheckCmd() *cobra.Command {
	var (
		opts     data.Options
		bg       string
		noDecode bool
	)
	cmd := &cobra.Command{
		Use:   "check DATASET",
		Short: "Read a dataset, decode every image (filling --cache-dir) and report what was found",
		Long: `check opens a folder with metadata.jsonl or metadata.csv, a folder of images with .txt captions,
or a .jsonl/.csv file, counts the pairs and splits, and decodes every image as training would, naming
the unreadable ones. With --cache-dir it fills the preprocessed-image cache that training reads.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if bg != "" {
				c, err := parseHexColor(bg)
				if err != nil {
					return err
				}
				opts.Background = c
			}
			ds, err := data.Open(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %d pairs, layout %s\n", args[0], ds.Len(), ds.Layout)
			if ds.Uncaptioned > 0 {
				fmt.Fprintf(w, "  %d images have no caption file\n", ds.Uncaptioned)
			}
			splits := map[string]int{}
			for _, it := range ds.Items {
				if s, ok := it.Fields["split"]; ok {
					splits[s]++
				}
			}
			if len(splits) > 0 {
				fmt.Fprintf(w, "  splits: %s\n", countsBySet(splits))
			}
			if noDecode {
				return nil
			}
			start := time.Now()
			st, err := data.WarmCache(cmd.Context(), ds, opts, newProgress(cmd.ErrOrStderr(), "decode"))
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "  decoded %d, from cache %d, unreadable %d (%.1fs)\n", st.Decoded, st.CacheHits, st.Skipped, time.Since(start).Seconds())
			for _, f := range st.SkippedFiles {
				fmt.Fprintf(w, "    unreadable: %s\n", f)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Size, "size", 64, "image side after preprocessing")
	f.StringVar((*string)(&opts.Crop), "crop", "center", "crop: center or random")
	f.StringVar(&bg, "background", "#ffffff", "colour transparent pixels are composited onto")
	f.StringVar(&opts.CacheDir, "cache-dir", "", "fill this preprocessed-image cache")
	f.BoolVar(&noDecode, "no-decode", false, "only read the captions; do not decode the images")
	return cmd
}

// parseHexColor reads "#rrggbb" or "rrggbb".
func parseHexColor(s string) (c color.NRGBA, err error) {
	var r, g, b uint8
	if _, err := fmt.Sscanf(strings.TrimPrefix(s, "#"), "%02x%02x%02x", &r, &g, &b); err != nil || len(strings.TrimPrefix(s, "#")) != 6 {
		return c, fmt.Errorf("colour %q: want #rrggbb", s)
	}
	return color.NRGBA{R: r, G: g, B: b, A: 255}, nil
}

func countsBySet(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func defaultCacheDir(sub string) (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache folder (%w); pass --cache-dir", err)
	}
	return filepath.Join(d, "ldm", sub), nil
}

// newProgress returns a progress callback that redraws one line on a
// terminal, a few times a second, and stays silent otherwise.
func newProgress(w io.Writer, label string) func(done, total int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var last time.Time
	return func(done, total int) {
		if done < total && time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "\r%s %d/%d (%d%%)", label, done, total, done*100/max(total, 1))
		if done == total {
			fmt.Fprintln(w)
		}
	}
}
