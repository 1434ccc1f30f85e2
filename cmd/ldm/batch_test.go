package main

import (
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldm-project/ldm/ldm"
)

// TestCLIChild is the child process of the SIGKILL tests
// (TestBatchResumesAfterSIGKILL, TestTrainResumesAfterSIGKILL): the test
// binary re-executed runs the command tree with the arguments it is given
// (separated by \x1f), so the parent can kill a real process.
func TestCLIChild(t *testing.T) {
	args := os.Getenv("LDM_CLI_CHILD_ARGS")
	if args == "" {
		t.Skip("helper process of the SIGKILL tests")
	}
	root := newRootCmd()
	root.SetArgs(strings.Split(args, "\x1f"))
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
}

var summaryRe = regexp.MustCompile(`batch: (\d+) rendered, (\d+) skipped \(already there\), (\d+) failed`)

// summary parses the last line batch prints.
func summary(t *testing.T, out string) (rendered, skipped, failed int) {
	t.Helper()
	m := summaryRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in:\n%s", out)
	}
	rendered, _ = strconv.Atoi(m[1])
	skipped, _ = strconv.Atoi(m[2])
	failed, _ = strconv.Atoi(m[3])
	return
}

// validPNGs lists the files of dir that decode as PNG.
func validPNGs(t *testing.T, dir string) []string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	var ok []string
	for _, m := range matches {
		f, err := os.Open(m)
		if err != nil {
			continue
		}
		if _, format, err := image.Decode(f); err == nil && format == "png" {
			ok = append(ok, m)
		}
		f.Close()
	}
	return ok
}

func writePrompts(t *testing.T, path string, n int) []string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# twenty prompts for the resume test\n\n")
	var prompts []string
	for i := range n {
		p := fmt.Sprintf("prompt number %d, a red apple", i+1)
		prompts = append(prompts, p)
		b.WriteString(p + "\n")
		if i == 4 {
			b.WriteString("   \n# a comment in the middle\n")
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return prompts
}

func TestBatchResumesAfterSIGKILL(t *testing.T) {
	if os.Getenv("LDM_CLI_CHILD_ARGS") != "" {
		t.Skip("in the child")
	}
	model := tinyFolder(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "prompts.txt")
	prompts := writePrompts(t, list, 20)
	out := filepath.Join(dir, "out")
	args := []string{"batch", list, "-o", out, "--model", model, "--backend", "go", "--steps", "2", "--cfg", "1", "-W", "64", "-H", "64", "--seed", "5"}

	child := exec.Command(os.Args[0], "-test.run=^TestCLIChild$")
	child.Env = append(os.Environ(), "LDM_CLI_CHILD_ARGS="+strings.Join(args, "\x1f"))
	var childOut strings.Builder
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, _ := filepath.Glob(filepath.Join(out, "*.png"))
		if len(n) >= 10 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatalf("the child wrote %d images in 3 minutes:\n%s", len(n), childOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	before := validPNGs(t, out)
	if len(before) < 10 || len(before) >= 20 {
		t.Fatalf("after SIGKILL half-way: %d valid images (want 10..19)\n%s", len(before), childOut.String())
	}
	// A file that does not decode (as if damaged since) counts as missing.
	if err := os.WriteFile(before[0], []byte("\x89PNG\r\n\x1a\ngarbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	have := len(before) - 1

	stdout, stderr, err := runSplit(args...)
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, stderr)
	}
	rendered, skipped, failed := summary(t, stdout)
	if rendered != 20-have || skipped != have || failed != 0 {
		t.Fatalf("rerun after SIGKILL with %d valid images: rendered %d, skipped %d, failed %d; want %d, %d, 0\n%s",
			have, rendered, skipped, failed, 20-have, have, stderr)
	}
	after := validPNGs(t, out)
	all, _ := filepath.Glob(filepath.Join(out, "[^.]*")) // .ldm-batch holds the lines' records
	if len(after) != 20 || len(all) != 20 {
		t.Fatalf("%d valid images, %d files: %v", len(after), len(all), all)
	}
	// Line numbers and seeds name the files; each holds its own prompt.
	line := 2 // the file starts with a comment and a blank line
	for i, p := range prompts {
		if i == 5 {
			line += 2 // a blank line and a comment
		}
		path := filepath.Join(out, fmt.Sprintf("%05d-5.png", line+i+1))
		text, err := ldm.ReadParametersFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(text, p+"\n") {
			t.Errorf("%s holds %q, want prompt %q", path, text, p)
		}
	}
	// A third run has nothing to do and loads no model. (Another --model
	// would make the images stale: see TestBatchRedoesWhatWasEdited.)
	stdout, stderr, err = runSplit(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if r, s, _ := summary(t, stdout); r != 0 || s != 20 || strings.Contains(stderr, "model loaded") {
		t.Fatalf("third run: rendered %d, skipped %d\n%s", r, s, stderr)
	}
	t.Logf("killed after %d images; the rerun rendered %d (one damaged) and skipped %d", len(before), rendered, skipped)
}

func TestBatchShardsAndJSONLOverrides(t *testing.T) {
	model := tinyFolder(t)
	dir := t.TempDir()
	init := filepath.Join(dir, "init.png")
	writeTestPNG(t, init, 64, 64)
	list := filepath.Join(dir, "jobs.jsonl")
	os.WriteFile(list, []byte(`{"prompt": "a cat", "seed": 11}
# comment
{"prompt": "a dog", "guidance_scale": 1, "sampler": "Euler", "seed": 12}
{"prompt": "a fox", "init_image": "init.png", "strength": 0.5, "steps": 2}
{"prompt": "a cow", "batch_size": 2}
`), 0o644)
	out := filepath.Join(dir, "out")
	base := []string{"batch", list, "-o", out, "--model", model, "--backend", "go", "--steps", "1", "--seed", "7"}
	so1, se1, err := runSplit(append(base, "--shard", "1/2")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, se1)
	}
	so2, se2, err := runSplit(append(base, "--shard", "2/2")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, se2)
	}
	// Shard 1 has prompts 1 and 3 (lines 1, 4), shard 2 prompts 2 and 4 (lines 3, 5; two images).
	if r, _, _ := summary(t, so1); r != 2 {
		t.Errorf("shard 1/2 rendered %d, want 2\n%s", r, se1)
	}
	if r, _, _ := summary(t, so2); r != 3 {
		t.Errorf("shard 2/2 rendered %d, want 3\n%s", r, se2)
	}
	for name, want := range map[string]string{
		"00001-11.png": "Steps: 1, Sampler: DDIM, CFG scale: 7.5, Seed: 11,",
		"00003-12.png": "Steps: 1, Sampler: Euler, CFG scale: 1, Seed: 12,",
		"00004-7.png":  "Steps: 2, Sampler: DDIM, CFG scale: 7.5, Seed: 7, Size: 64x64, Model hash: ",
		"00005-7.png":  "Seed: 7,",
		"00005-8.png":  "Seed: 8,",
	} {
		text, err := ldm.ReadParametersFile(filepath.Join(out, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(text, want) {
			t.Errorf("%s: %q lacks %q", name, text, want)
		}
	}
	if text, _ := ldm.ReadParametersFile(filepath.Join(out, "00004-7.png")); !strings.Contains(text, "Denoising strength: 0.5") {
		t.Errorf("the jsonl init_image was not used: %q", text)
	}
	if progress := se2; !strings.Contains(progress, "ETA") || !strings.Contains(progress, "00005-8.png") {
		t.Errorf("no per-image progress with ETA:\n%s", progress)
	}
}

func TestBatchRefusesBadListsBeforeLoading(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{write("a.jsonl", "{\"prompt\": \"x\", \"cfg\": 3}\n")}, `line 1: json: unknown field "cfg"`},
		{[]string{write("b.jsonl", "{\"prompt\": \"x\"}\n{\"prompt\": \"y\", \"steps\": 1000}\n")}, "line 2: steps: 1000 exceeds the limit 150"},
		{[]string{write("c.jsonl", "{\"prompt\": \"x\", \"strength\": 0.5}\n")}, "line 1: strength: is only meaningful with an init image"},
		{[]string{write("d.jsonl", "{\"prompt\": \"x\", \"init_image\": \"nope.png\"}\n")}, "line 1: init_image: open"},
		{[]string{write("e.txt", "# only a comment\n\n")}, "no prompts"},
		{[]string{write("f.txt", "x\n"), "--steps", "0", "--cfg", "-3"}, "--cfg: -3 must be between 0 and 100"},
		{[]string{write("g.txt", "x\n"), "--shard", "3/2"}, `--shard "3/2": want i/n with 1 ≤ i ≤ n`},
		{[]string{write("h.txt", "x\n"), "--shard", "0/2"}, `--shard "0/2"`},
		{[]string{filepath.Join(dir, "missing.txt")}, "no such file"},
	} {
		args := append(append([]string{"batch"}, tc.args...), "-o", out, "--model", filepath.Join(dir, "no-model"))
		_, _, err := runSplit(args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ldm %s:\n got %v\nwant …%s…", strings.Join(args, " "), err, tc.want)
		}
	}
	if _, _, err := runSplit("batch", write("i.txt", "x\n")); err == nil || !strings.Contains(err.Error(), `"output" not set`) {
		t.Errorf("batch without -o: %v", err)
	}
}

// A rerun after an edit renders again exactly the lines whose images were
// made from something else: the edited prompt's line, and every line when a
// flag they share changed; untouched lines are kept. Before the records,
// the rerun kept the stale images ("0 rendered").
func TestBatchRedoesWhatWasEdited(t *testing.T) {
	model := tinyFolder(t)
	dir := t.TempDir()
	list, out := filepath.Join(dir, "p.txt"), filepath.Join(dir, "out")
	os.WriteFile(list, []byte("a cat\na dog\n"), 0o644)
	base := []string{"batch", list, "-o", out, "--model", model, "--backend", "go", "--steps", "1", "--seed", "3"}
	for _, step := range []struct {
		edit     func()
		args     []string
		rendered int
		prompt1  string
	}{
		{func() {}, nil, 2, "a cat"},
		{func() {}, nil, 0, "a cat"},
		{func() { os.WriteFile(list, []byte("a bird\na dog\n"), 0o644) }, nil, 1, "a bird"},
		{func() {}, []string{"--cfg", "2"}, 2, "a bird"},
		{func() {}, []string{"--cfg", "2"}, 0, "a bird"},
	} {
		step.edit()
		so, se, err := runSplit(append(base, step.args...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, se)
		}
		if r, _, _ := summary(t, so); r != step.rendered {
			t.Errorf("args %v: rendered %d, want %d\n%s", step.args, r, step.rendered, se)
		}
		text, err := ldm.ReadParametersFile(filepath.Join(out, "00001-3.png"))
		if err != nil || !strings.HasPrefix(text, step.prompt1+"\n") {
			t.Errorf("line 1's image says %q (%v), want prompt %q", text, err, step.prompt1)
		}
	}
}
