package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/nn"
)

// referenceStep is the project's bar for one classifier-free-guidance U-Net
// step of SD1.5 on the 2-core development machines (the brief's numbers).
var referenceStep = map[int]struct{ PyTorch, SDCpp float64 }{
	256: {5.7, 5.6},
	512: {19.7, 23.5},
}

// benchParts are the parts bench can measure.
var benchParts = []string{"unet", "text", "vae", "vae-tiled", "taesd"}

// benchPart is one measured component.
type benchPart struct {
	Part    string    `json:"part"`
	What    string    `json:"what"`
	Compile float64   `json:"first_run_s"` // includes building and compiling the graph
	Runs    []float64 `json:"runs_s"`
	CPU     []float64 `json:"runs_cpu_s,omitempty"` // the process's CPU time (all threads) of each run
	Median  float64   `json:"median_s"`
	Min     float64   `json:"min_s"`
	GFLOPs  float64   `json:"gflop_per_run,omitempty"`
	GFLOPS  float64   `json:"gflop_per_s,omitempty"`
}

type benchReport struct {
	Model     string       `json:"model"`
	Backend   string       `json:"backend"`
	CPUs      int          `json:"cpus"`
	Size      int          `json:"size"`
	Date      string       `json:"date"`
	FastPath  *nn.FastPath `json:"fast_path,omitempty"` // pure-Go backend only
	Parts     []benchPart  `json:"parts"`
	PeakRSSMB float64      `json:"peak_rss_mib,omitempty"`
}

func init() { subcommands = append(subcommands, newBenchCmd) }

func newBenchCmd() *cobra.Command {
	var model, jsonOut, weightsDType string
	var size, runs int
	var parts []string
	var vaeTile int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure one CFG U-Net step, the text encoder and the VAE decode of a model (SD1.5-size random weights by default)",
		Long: `bench times the parts of a generation on the selected backend: one classifier-free-guidance
U-Net step (a batch of 2 at the latent size of --size), the text encoder on 2×77 tokens and the
VAE decode of one latent. Each part runs once to build and compile its graph, then --runs times;
the report gives every run, the median and the best, the U-Net's GFLOP/s (counted analytically)
and the process's peak RSS, and compares the U-Net step with the project's bar at 256² and 512².

--model sd15 (the default) and sd2 build those architectures with random weights in memory, so
no multi-gigabyte download is needed; any diffusers folder or single file, or "default" for the
embedded model, measures those weights.`,
		Example: `  ldm bench --size 256 --runs 3
  ldm bench --size 512 --parts unet --runs 2 --json bench-512.json
  ldm bench --model default --size 64 --runs 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if size <= 0 || size%8 != 0 {
				return fmt.Errorf("--size %d: give a positive multiple of 8", size)
			}
			if runs < 1 {
				return fmt.Errorf("--runs %d: give at least 1", runs)
			}
			for _, p := range parts {
				if !slices.Contains(benchParts, p) {
					return fmt.Errorf("--parts: unknown part %q (use %s)", p, strings.Join(benchParts, ", "))
				}
			}
			b, err := nn.NewBackend(backendFlag(cmd))
			if err != nil {
				return err
			}
			ms, err := benchModels(model, seed, weightsDType)
			if err != nil {
				return err
			}
			defer ms.Close()
			rep := benchReport{Model: ms.Name, Backend: b.Name(), CPUs: runtime.NumCPU(), Size: size,
				Date: time.Now().Format("2006-01-02 15:04")}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ldm bench: %s on %s, %d CPUs, %d², %d runs after the first\n", rep.Model, rep.Backend, rep.CPUs, size, runs)
			if nn.IsGo(b) {
				fp := nn.FastPathStatus()
				rep.FastPath = &fp
				fmt.Fprintf(out, "pure-Go fast path: %s\n", fp)
			}
			r := rand.New(rand.NewPCG(seed, 7))
			for _, p := range parts {
				nn.ReleaseBuffers(b) // as the pipeline does between the U-Net and the decode
				var lp ldm.Part
				switch p {
				case "unet":
					lp, err = ms.UNetStep(b, size, r)
				case "text":
					lp, err = ms.TextEncode(b)
				case "vae":
					lp, err = ms.VAEDecode(b, size, r)
				case "vae-tiled":
					lp, err = ms.VAEDecodeTiled(b, size, max(vaeTile, 1), r)
				case "taesd":
					lp, err = ms.TAESDDecode(b, size, r)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				part := benchPart{Part: p, What: lp.What, GFLOPs: lp.GFLOPs}
				if part.Compile, part.Runs, part.CPU, err = timeRuns(runs, lp.Run); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				part = summarise(part)
				rep.Parts = append(rep.Parts, part)
				printBenchPart(out, part)
				if p == "unet" && ms.Preset == "sd15" {
					if ref, ok := referenceStep[size]; ok {
						fmt.Fprintf(out, "  bar (2-core machines, SD1.5): PyTorch %.1f s, stable-diffusion.cpp %.1f s; this run's best is %.2f× PyTorch's time\n",
							ref.PyTorch, ref.SDCpp, part.Min/ref.PyTorch)
					}
				}
			}
			if rss, ok := peakRSS(); ok {
				rep.PeakRSSMB = rss
				fmt.Fprintf(out, "peak RSS of the process: %.0f MiB\n", rss)
			}
			if jsonOut != "" {
				data, err := json.MarshalIndent(rep, "", "  ")
				if err != nil {
					return err
				}
				return fsutil.WriteFileAtomic(jsonOut, append(data, '\n'))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "sd15", `"sd15" or "sd2" (that architecture, random weights), "default" (the embedded model), or a model folder or file`)
	f.IntVar(&size, "size", 256, "image side in pixels (latents are size/8 for SD, size/4 for the default model)")
	f.IntVar(&runs, "runs", 3, "timed runs of each part after the first (compiling) run")
	f.StringSliceVar(&parts, "parts", []string{"unet", "text", "vae"}, "parts to measure: "+strings.Join(benchParts, ", ")+" (vae-tiled: the VAE decode in tiles of --vae-tile; taesd: a TAESD decode, random weights)")
	f.IntVar(&vaeTile, "vae-tile", 32, "vae-tiled: the tile core in latent pixels")
	f.StringVar(&jsonOut, "json", "", "also write the report to this JSON file")
	f.Uint64Var(&seed, "seed", 1, "seed of the random weights and inputs")
	f.StringVar(&weightsDType, "weights-dtype", "", `a model folder or file: keep its weights in "f32" or "f16" (default $LDM_WEIGHTS_DTYPE, else f32)`)
	return cmd
}

// benchModels opens what bench measures: "sd15" and "sd2" are the weights
// presets' architectures with random weights, "default" the embedded model.
func benchModels(model string, seed uint64, weightsDType string) (*ldm.Parts, error) {
	switch model {
	case "", "sd15":
		model = "sd15"
	case "sd2":
		model = "sd21"
	case "default":
		p, err := defaultModel()
		if err != nil {
			return nil, err
		}
		ms, err := ldm.OpenParts(p, seed, weightsDType)
		if err == nil {
			ms.Name = "the embedded default model"
		}
		return ms, err
	}
	return ldm.OpenParts(model, seed, weightsDType)
}

// timeRuns calls fn once (compiling) and then n times, timing each run
// (wall and, where /proc has it, the process's CPU time: on a shared
// machine the steadier number).
func timeRuns(n int, fn func() error) (first float64, runs, cpu []float64, err error) {
	for i := 0; i <= n; i++ {
		start := time.Now()
		c0, cok := processCPU()
		if err := fn(); err != nil {
			return 0, nil, nil, err
		}
		d := time.Since(start).Seconds()
		c1, cok1 := processCPU()
		if i == 0 {
			first = d
		} else {
			runs = append(runs, d)
			if cok && cok1 {
				cpu = append(cpu, c1-c0)
			}
		}
	}
	return first, runs, cpu, nil
}

// processCPU is the process's user+system CPU seconds (Linux /proc).
func processCPU() (float64, bool) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (ut + st) / 100, true // clock ticks: 100 per second on Linux
}

func summarise(p benchPart) benchPart {
	s := slices.Clone(p.Runs)
	slices.Sort(s)
	p.Min, p.Median = s[0], s[len(s)/2]
	if len(s)%2 == 0 {
		p.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if p.GFLOPs > 0 {
		p.GFLOPS = p.GFLOPs / p.Median
	}
	return p
}

func printBenchPart(w io.Writer, p benchPart) {
	var rs []string
	for _, r := range p.Runs {
		rs = append(rs, fmt.Sprintf("%.3f", r))
	}
	fmt.Fprintf(w, "%-5s %s\n  first run (with compilation) %.3f s; runs %s s; median %.3f s, best %.3f s",
		p.Part, p.What, p.Compile, strings.Join(rs, " "), p.Median, p.Min)
	if p.GFLOPS > 0 {
		fmt.Fprintf(w, "; %.1f GFLOP a run, %.1f GFLOP/s", p.GFLOPs, p.GFLOPS)
	}
	if len(p.CPU) > 0 {
		var cs []string
		for _, c := range p.CPU {
			cs = append(cs, fmt.Sprintf("%.2f", c))
		}
		fmt.Fprintf(w, "\n  CPU time of the process per run %s s", strings.Join(cs, " "))
	}
	fmt.Fprintln(w)
}

// peakRSS reads the process's peak resident set (VmHWM) on Linux.
func peakRSS() (mib float64, ok bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, found := strings.CutPrefix(line, "VmHWM:"); found {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				return kb / 1024, err == nil
			}
		}
	}
	return 0, false
}
