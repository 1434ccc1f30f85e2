package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/app"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/models"
)

func init() { subcommands = append(subcommands, newServeCmd) }

type serveFlags struct {
	listen, apiKey, apiAuth, modelsDir, publicURL string
	controlNetDir, maxMemory                      string
	allowedHosts, corsOrigins                     []string
	mf                                            modelFlags // the model flags generate and batch have
	insecure, warmup, verbose                     bool
	shutdownTimeout                               time.Duration
	cfg                                           app.Config
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	f.cfg.Limits = ldm.DefaultLimits
	cmd := &cobra.Command{
		Use:   "serve --model <path>",
		Short: "Serve a model over HTTP: native jobs API, AUTOMATIC1111 and OpenAI-compatible routes, web page",
		Long: `serve loads a model once and answers generation requests through one bounded queue:

  /                          web page (prompt, progress with previews, gallery)
  /api/v1/jobs, /generate    native API (async jobs with server-sent events, or synchronous)
  /sdapi/v1/...              AUTOMATIC1111-compatible API (txt2img, img2img, progress, options, ...)
  /v1/images/generations     OpenAI-compatible images API
  /healthz, /metrics         probes and Prometheus metrics

Binding an address other than loopback needs --api-key or --api-auth (or --insecure).
SIGTERM or Ctrl-C stops accepting jobs, lets the running one finish for --shutdown-timeout, then exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v, _ := cmd.Flags().GetString("backend"); v != "" {
				f.mf.load.Backend = v
			}
			return runServe(cmd, &f)
		},
	}
	fl := cmd.Flags()
	def := app.DefaultConfig() // the library's defaults, restated nowhere here
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7860", "address to listen on (host:port)")
	// The secrets' defaults come from the environment in runServe, so that
	// --help never prints them.
	fl.StringVar(&f.apiKey, "api-key", "", "require \"Authorization: Bearer <key>\" (default: env LDM_API_KEY)")
	fl.StringVar(&f.apiAuth, "api-auth", "", "require HTTP Basic auth: user:password[,user2:password2] (default: env LDM_API_AUTH)")
	fl.BoolVar(&f.insecure, "insecure", false, "allow a non-loopback --listen address without authentication")
	fl.StringVar(&f.modelsDir, "models-dir", "", "folder of models that /sdapi/v1/options may switch to")
	fl.StringVar(&f.controlNetDir, "controlnet-dir", os.Getenv("LDM_CONTROLNET_DIR"), "folder of ControlNets (.safetensors files, diffusers folders) that ControlNet units name (env LDM_CONTROLNET_DIR)")
	f.mf.register(fl)
	fl.StringVar(&f.publicURL, "public-url", "", "base URL for image links handed out, e.g. https://ldm.example.org (default: the address a client connected to); its host is allowed as --allowed-hosts")
	fl.StringSliceVar(&f.allowedHosts, "allowed-hosts", nil, "host names served besides localhost and IP addresses, comma-separated (\"*\": any; protects against DNS rebinding)")
	fl.StringSliceVar(&f.corsOrigins, "cors-allow-origins", nil, "origins whose web pages may call the API, comma-separated, e.g. http://localhost:3000 (\"*\": any), as AUTOMATIC1111's")
	fl.StringVar(&f.cfg.CORSOriginRegex, "cors-allow-origins-regex", "", "origins whose pages may call the API, as one regular expression matching the whole origin, as AUTOMATIC1111's")
	fl.IntVar(&f.cfg.QueueSize, "queue-size", def.QueueSize, "jobs that may wait behind the running one; more are answered 429")
	fl.IntVar(&f.cfg.BatchJobs, "batch-jobs", 0, "most waiting jobs with compatible settings run together in one model batch (1: off; default: the model's preference, 4 on XLA, off on the pure-Go backend, where it does not raise throughput)")
	fl.DurationVar(&f.cfg.JobTimeout, "job-timeout", def.JobTimeout, "longest a job may run")
	fl.StringVar(&f.cfg.Outputs, "outputs", "outputs", "folder where every result is kept (PNG + parameters) and listed by /api/v1/history and the web page's gallery (\"\": keep none)")
	fl.IntVar(&f.cfg.OutputsMax, "outputs-max", 1000, "most images kept in --outputs, the oldest removed first (-1: no cap)")
	fl.IntVar(&f.cfg.PreviewEvery, "preview-every", def.PreviewEvery, "send a preview image every n steps (-1: never)")
	fl.Float64Var(&f.cfg.UpscaleAbove, "upscale-above", def.UpscaleAbove, "a request wider or taller than this many times the model's native size is drawn at the native size and resized (Lanczos) to the size asked for, said in the infotext (-1: draw every size as asked)")
	fl.DurationVar(&f.cfg.FileTTL, "url-ttl", def.FileTTL, "how long images returned as URLs (OpenAI response_format=url) are served")
	fl.IntVar(&f.cfg.Limits.MaxSteps, "max-steps", ldm.DefaultLimits.MaxSteps, "most sampling steps a request may ask for")
	fl.IntVar(&f.cfg.Limits.MaxWidth, "max-width", ldm.DefaultLimits.MaxWidth, "widest image a request may ask for")
	fl.IntVar(&f.cfg.Limits.MaxHeight, "max-height", ldm.DefaultLimits.MaxHeight, "tallest image a request may ask for")
	fl.IntVar(&f.cfg.Limits.MaxBatchSize, "max-batch-size", ldm.DefaultLimits.MaxBatchSize, "most images per model batch")
	fl.IntVar(&f.cfg.Limits.MaxBatchCount, "max-batch-count", ldm.DefaultLimits.MaxBatchCount, "most batches per request")
	fl.IntVar(&f.cfg.Limits.MaxPromptChars, "max-prompt-chars", ldm.DefaultLimits.MaxPromptChars, "longest prompt, in bytes")
	fl.StringVar(&f.maxMemory, "max-memory", "", "memory budget: requests whose estimated peak exceeds it are refused (413), e.g. 12G (default: 3/4 of the machine's or the cgroup's memory; 0: no budget)")
	fl.IntVar(&f.cfg.Limits.MaxLoRAs, "max-loras", ldm.DefaultMaxLoRAs, "most LoRAs per request (loras and <lora:…> tags)")
	fl.IntVar(&f.cfg.Limits.MaxPromptChunks, "max-prompt-chunks", ldm.DefaultMaxPromptChunks, "most 75-token chunks BREAK may start in a prompt")
	fl.DurationVar(&f.cfg.ReadTimeout, "read-timeout", def.ReadTimeout, "longest time to read a whole request")
	fl.DurationVar(&f.cfg.WriteTimeout, "write-timeout", def.WriteTimeout, "longest time to write an answer (event streams and waiting for a job excepted)")
	fl.DurationVar(&f.cfg.IdleTimeout, "idle-timeout", def.IdleTimeout, "how long an idle kept-alive connection stays open")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a running job may finish after SIGTERM")
	fl.BoolVar(&f.warmup, "warmup", true, "run one 1-step generation at start so the first request finds compiled graphs")
	fl.BoolVar(&f.verbose, "verbose", false, "log every HTTP request")
	return cmd
}

func runServe(cmd *cobra.Command, f *serveFlags) error {
	var fe *ldm.FieldError
	if err := f.cfg.Limits.Check(); errors.As(err, &fe) {
		return fmt.Errorf("--%s %s", strings.ReplaceAll(fe.Field, "_", "-"), fe.Msg)
	}
	if !cmd.Flags().Changed("api-key") {
		f.apiKey = os.Getenv("LDM_API_KEY")
	}
	if !cmd.Flags().Changed("api-auth") {
		f.apiAuth = os.Getenv("LDM_API_AUTH")
	}
	if f.apiKey != "" && strings.TrimSpace(f.apiKey) == "" || cmd.Flags().Changed("api-key") && f.apiKey == "" {
		return errors.New("--api-key is empty: give a key, or leave the flag out")
	}
	basic, err := app.ParseBasicAuth(f.apiAuth)
	if err != nil {
		return fmt.Errorf("--api-auth: %w", err)
	}
	if cmd.Flags().Changed("api-auth") && len(basic) == 0 {
		return errors.New("--api-auth is empty: give user:password, or leave the flag out")
	}
	switch f.maxMemory {
	case "":
	case "0":
		f.cfg.MaxMemory = -1
	default:
		n, err := app.ParseBytes(f.maxMemory)
		if err != nil {
			return fmt.Errorf("--max-memory: %w", err)
		}
		f.cfg.MaxMemory = n
	}
	// A decode that would take more than half the budget whole is tiled
	// (--vae-tiling auto), so that a request fitting only when tiled runs.
	if budget := f.cfg.MaxMemory; f.mf.load.VAETiling.MaxBytes == 0 {
		if budget == 0 {
			budget = int64(0.75 * float64(app.MachineMemory()))
		}
		if budget > 0 {
			f.mf.load.VAETiling.MaxBytes = min(2<<30, budget/2)
		}
	}
	if f.cfg.Limits.MaxLoRAs < 1 || f.cfg.Limits.MaxPromptChunks < 1 {
		return errors.New("--max-loras and --max-prompt-chunks must be at least 1")
	}
	f.cfg.APIKey, f.cfg.BasicAuth, f.cfg.PublicURL = f.apiKey, basic, f.publicURL
	f.cfg.AllowedHosts, f.cfg.CORSOrigins = f.allowedHosts, f.corsOrigins
	if err := f.cfg.Check(); err != nil {
		return err
	}
	if err := app.CheckListen(f.listen, f.apiKey != "" || len(basic) > 0, f.insecure); err != nil {
		return err
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The embedded model is extracted to a cache folder: it keeps its own
	// name whenever it is loaded (at start or when switched back to);
	// every other model is named after its file or folder.
	defaultPath := ""
	load := func(path string) (*app.Loaded, error) {
		o := f.mf.load
		if path == defaultPath {
			o.Name = models.Name
		}
		p, err := ldm.Load(path, o)
		if err != nil {
			return nil, err
		}
		p.ControlNetDir = f.controlNetDir
		return &app.Loaded{Model: p, Name: p.Name, Hash: p.Hash, Path: path}, nil
	}
	if f.mf.path == "" {
		path, err := defaultModel()
		if err != nil {
			return err
		}
		f.mf.path, defaultPath = path, path
	}
	start := time.Now()
	model, err := load(f.mf.path)
	if err != nil {
		return err
	}
	log.Info("model loaded", "name", model.Name, "hash", model.Hash, "took", time.Since(start).Round(time.Millisecond))
	if f.warmup {
		start = time.Now()
		if err := warmUp(ctx, model.Model); err != nil {
			return fmt.Errorf("warm-up generation: %w", err)
		}
		log.Info("graphs compiled", "took", time.Since(start).Round(time.Millisecond))
	}

	f.cfg.ModelsDir, f.cfg.Loader, f.cfg.Logger, f.cfg.LoRADir = f.modelsDir, load, log, f.mf.load.LoRADir
	srv, err := app.New(model, f.cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	hs := srv.HTTPServer()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(cmd.OutOrStdout(), "ldm: serving %s on http://%s\n", model.Name, ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: no new jobs; waiting for the running one", "deadline", f.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	jobsErr := srv.Shutdown(sctx)
	// Handlers answer the jobs Shutdown ended; give them a moment to write.
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	if err := hs.Shutdown(hctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if jobsErr != nil {
		log.Warn("shutdown", "err", jobsErr)
	}
	log.Info("stopped")
	return nil
}

// warmUp runs one 1-step generation so that the first request finds the
// graphs compiled.
func warmUp(ctx context.Context, m app.Model) error {
	pl, err := m.Prepare(ldm.Request{Prompt: "warm-up", Steps: 1}, ldm.DefaultLimits)
	if err != nil {
		return err
	}
	return m.Run(ctx, []ldm.Task{{Plan: pl}})[0].Err
}
