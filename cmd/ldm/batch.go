package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/models"
)

func init() { subcommands = append(subcommands, newBatchCmd) }

func newBatchCmd() *cobra.Command {
	var (
		rf    requestFlags
		model modelFlags
		shard string
	)
	cmd := &cobra.Command{
		Use:   "batch PROMPTS.txt|PROMPTS.jsonl -o DIR",
		Short: "Render a list of prompts into a folder; a rerun renders only what is missing",
		Long: `batch renders every prompt of a file into DIR:

  .txt    one prompt per line; blank lines and lines starting with # are skipped
  .jsonl  one JSON object per line with ldm.Request fields ("prompt", "negative_prompt", "steps",
          "guidance_scale", "sampler", "schedule", "seed", "width", "height", "batch_size", ...) and
          optional "init_image" / "mask" paths (relative to the file); they override the flags

Image i of line L is written as DIR/LLLLL-<seed+i>.png (atomically, so a file that exists is
complete). A rerun skips every image whose file exists and decodes, and renders the rest: a killed
job resumes where it stopped. DIR/.ldm-batch records what each line's images were made from (the
request, seed, init image and mask, model and output flags): when a line or a flag was edited since,
that line's images are removed and rendered again. With --seed -1 (the default) each line gets a random seed, and a line
counts as done when DIR holds as many LLLLL-*.png images as the line asks for.

--shard i/n renders only every n-th prompt starting at the i-th (1-based), so n processes or
machines can share one list and one output folder.`,
		Example: `  ldm batch prompts.txt -o out/ --model sd15.safetensors --steps 25 --seed 1000
  ldm batch prompts.jsonl -o out/ --shard 2/4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBatch(cmd, args[0], &rf, &model, shard)
		},
	}
	f := cmd.Flags()
	rf.register(f)
	model.register(f)
	f.StringVarP(&rf.output, "output", "o", "", "output folder (required)")
	f.StringVar(&shard, "shard", "", "render only shard i of n (1-based, \"i/n\"): prompts i, i+n, i+2n, ...")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

// batchEntry is one prompt of the list.
type batchEntry struct {
	line int // 1-based line in the file: the file names' prefix
	req  ldm.Request
}

// images is how many images the entry renders.
func (e batchEntry) images() int { return max(e.req.BatchSize, 1) * max(e.req.BatchCount, 1) }

// readBatchFile parses the prompt list onto copies of base.
func readBatchFile(path string, base ldm.Request) ([]batchEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	jsonl := strings.EqualFold(filepath.Ext(path), ".jsonl")
	var entries []batchEntry
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		e := batchEntry{line: n, req: base}
		if !jsonl {
			e.req.Prompt = text
		} else if err := decodeBatchLine(text, filepath.Dir(path), &e.req); err != nil {
			errs = append(errs, fmt.Errorf("%s line %d: %w", path, n, err))
			continue
		}
		if err := precheck(e.req); err != nil {
			if !jsonl { // everything but the prompt came from the flags
				err = flagError(err)
			}
			errs = append(errs, fmt.Errorf("%s line %d: %w", path, n, err))
			continue
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no prompts (blank lines and # comments are skipped)", path)
	}
	return entries, nil
}

// decodeBatchLine lays one JSON object over req: the fields it has replace
// the flags' values. init_image and mask are file paths relative to dir.
func decodeBatchLine(text, dir string, req *ldm.Request) error {
	line := struct {
		*ldm.Request
		InitImage *string `json:"init_image"`
		Mask      *string `json:"mask"`
	}{Request: req}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&line); err != nil {
		return fmt.Errorf("%w (fields are ldm.Request's JSON names: prompt, negative_prompt, steps, guidance_scale, sampler, seed, ...)", err)
	}
	load := func(p *string, dst *image.Image) error {
		if p == nil {
			return nil
		}
		if *p == "" {
			*dst = nil
			return nil
		}
		path := *p
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		img, err := readImage(path)
		*dst = img
		return err
	}
	if err := load(line.InitImage, &req.InitImage); err != nil {
		return fmt.Errorf("init_image: %w", err)
	}
	if err := load(line.Mask, &req.Mask); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	return nil
}

// parseShard reads "i/n" (1 ≤ i ≤ n); "" is the whole list.
func parseShard(s string) (i, n int, err error) {
	if s == "" {
		return 1, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, e1 := strconv.Atoi(a)
	n, e2 := strconv.Atoi(b)
	if !ok || e1 != nil || e2 != nil || n < 1 || i < 1 || i > n {
		return 0, 0, fmt.Errorf("--shard %q: want i/n with 1 ≤ i ≤ n, e.g. 1/4 … 4/4", s)
	}
	return i, n, nil
}

// batchJob is the work left for one entry.
type batchJob struct {
	entry   batchEntry
	missing []int // image indices to render (deterministic seeds)
	count   int   // images to render (random seeds: how many more the line needs)
}

// recipeDir holds one record per line of what its images are made from.
const recipeDir = ".ldm-batch"

// batchRecipe is a line's record: Key hashes everything its images depend
// on (the request, seed included; the init image and mask pixels; the model
// flags and the model file's size and time; the output format and quality).
type batchRecipe struct {
	Key    string `json:"key"`
	Prompt string `json:"prompt"` // for people reading the folder
}

func recipeOf(e batchEntry, model *modelFlags, ext string, quality int) batchRecipe {
	h := sha256.New()
	req := e.req
	b, _ := json.Marshal(req) // InitImage and Mask are json:"-": hashed below
	h.Write(b)
	for _, img := range []image.Image{e.req.InitImage, e.req.Mask} {
		if img == nil {
			h.Write([]byte{0})
			continue
		}
		n := image.NewNRGBA(img.Bounds())
		draw.Draw(n, n.Bounds(), img, img.Bounds().Min, draw.Src)
		fmt.Fprintf(h, "\x01%v", n.Bounds())
		h.Write(n.Pix)
	}
	l := model.load
	fmt.Fprintf(h, "\x00%q %q %q %q %q %q %q %q %d", model.path, l.ConfigFrom, l.Tokenizer, l.Embeddings, l.PredictionType, l.Variant, l.LoRADir, ext, quality)
	if model.path == "" {
		sum, _ := models.Hash() // the embedded model
		h.Write([]byte(sum))
	} else if st, err := os.Stat(model.path); err == nil {
		fmt.Fprintf(h, " %d %d", st.Size(), st.ModTime().UnixNano())
	}
	return batchRecipe{Key: hex.EncodeToString(h.Sum(nil)[:16]), Prompt: e.req.Prompt}
}

// checkRecipe compares line e's record with what it is made from now. When
// they differ its images are stale: they are removed, and the new record is
// written, so that they render again. A line with no record (a folder from
// before records) keeps its images.
func checkRecipe(dir string, e batchEntry, want batchRecipe, log io.Writer) error {
	path := filepath.Join(dir, recipeDir, fmt.Sprintf("%05d.json", e.line))
	var have batchRecipe
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &have) == nil && have.Key == want.Key {
		return nil
	} else if err == nil {
		old, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%05d-*", e.line)))
		removed := 0
		for _, m := range old {
			if data.IsImageFile(m) && os.Remove(m) == nil {
				removed++
			}
		}
		if removed > 0 {
			fmt.Fprintf(log, "line %d changed since its %d image(s) were made: rendering them again\n", e.line, removed)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(want)
	return fsutil.WriteFileAtomic(path, b)
}

// plan checks what exists in dir: for a fixed seed the exact files, for a
// random one the line's LLLLL-*.ext files. Files that do not decode are
// removed (they are this command's, by name) and count as missing.
func plan(dir string, e batchEntry, ext string, log io.Writer) (batchJob, int) {
	job := batchJob{entry: e}
	n := e.images()
	if e.req.Seed >= 0 {
		for i := range n {
			if !validImage(batchName(dir, e.line, e.req.Seed+int64(i), ext), log) {
				job.missing = append(job.missing, i)
			}
		}
		job.count = len(job.missing)
		return job, n - job.count
	}
	matches, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%05d-*%s", e.line, ext)))
	have := 0
	for _, m := range matches {
		if validImage(m, log) {
			have++
		}
	}
	job.count = max(n-have, 0)
	return job, n - job.count
}

func batchName(dir string, line int, seed int64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%05d-%d%s", line, seed, ext))
}

// validImage reports whether path exists and decodes; a file that exists but
// does not decode is removed so that it is rendered again.
func validImage(path string, log io.Writer) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	_, _, err = image.Decode(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(log, "%s does not decode (%v): rendering it again\n", path, err)
		os.Remove(path)
		return false
	}
	return true
}

// batchStats is the summary.
type batchStats struct {
	rendered, skipped, failed int
	start                     time.Time
}

func (s batchStats) String() string {
	return fmt.Sprintf("batch: %d rendered, %d skipped (already there), %d failed, in %s", s.rendered, s.skipped, s.failed, seconds(time.Since(s.start)))
}

func runBatch(cmd *cobra.Command, list string, rf *requestFlags, model *modelFlags, shardFlag string) error {
	stats := batchStats{start: time.Now()}
	si, sn, err := parseShard(shardFlag)
	if err != nil {
		return err
	}
	base, err := rf.build()
	if err != nil {
		return err
	}
	check := base
	check.Prompt = "the prompt of each line"
	if err := flagError(precheck(check)); err != nil {
		return err
	}
	format, err := rf.outputFormat(cmd.Flags(), "")
	if err != nil {
		return err
	}
	entries, err := readBatchFile(list, base)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(rf.output, 0o755); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	stderr := cmd.ErrOrStderr()
	var jobs []batchJob
	todo, inShard := 0, 0
	for k, e := range entries {
		if k%sn != si-1 {
			continue
		}
		inShard++
		if err := checkRecipe(rf.output, e, recipeOf(e, model, format.Ext(), rf.quality), stderr); err != nil {
			return fmt.Errorf("line %d: recording what its images are made from: %w", e.line, err)
		}
		job, have := plan(rf.output, e, format.Ext(), stderr)
		stats.skipped += have
		if job.count > 0 {
			jobs = append(jobs, job)
			todo += job.count
		}
	}
	fmt.Fprintf(stderr, "batch: %d prompts (shard %d/%d of %d): %d images to render, %d already there\n",
		inShard, si, sn, len(entries), todo, stats.skipped)
	if todo == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), stats)
		return nil
	}
	p, loadTime, err := model.open(cmd)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "model loaded in %s\n", seconds(loadTime))
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	renderStart := time.Now()
	done := 0
	for _, job := range jobs {
		req := job.entry.req
		if req.Seed < 0 && job.count < job.entry.images() {
			// A random-seed line partly there: render only the rest.
			req.BatchSize, req.BatchCount = 1, job.count
		}
		bar := newStepBar(stderr)
		bar.prefix = fmt.Sprintf("[%d/%d] line %d ", done+1, todo, job.entry.line)
		bar.quiet = !bar.tty
		results, err := p.Generate(ctx, req, ldm.Options{Progress: bar.update})
		bar.finish()
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(cmd.OutOrStdout(), stats)
			return errors.New("interrupted: rerun the same command to resume")
		}
		if err != nil {
			stats.failed += job.count
			fmt.Fprintf(stderr, "line %d: %v\n", job.entry.line, err)
			continue
		}
		var save []int
		if req.Seed < 0 {
			for i := range min(job.count, len(results)) {
				save = append(save, i)
			}
		} else {
			save = job.missing
		}
		for _, i := range save {
			r := results[i]
			name := batchName(rf.output, job.entry.line, r.Seed, format.Ext())
			if err := r.Save(name, format, rf.quality); err != nil {
				stats.failed++
				fmt.Fprintf(stderr, "line %d: %v\n", job.entry.line, err)
				continue
			}
			stats.rendered++
			done++
			per := time.Since(renderStart) / time.Duration(done)
			fmt.Fprintf(stderr, "[%d/%d] %s  line %d, seed %d  ETA %s\n", done, todo, name, job.entry.line, r.Seed, clock(per*time.Duration(todo-done)))
		}
	}
	fmt.Fprintln(cmd.OutOrStdout(), stats)
	if stats.failed > 0 {
		return fmt.Errorf("%d image(s) failed (see above); rerun to retry them", stats.failed)
	}
	return nil
}
