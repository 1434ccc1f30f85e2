package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ldm-project/ldm/app"
	"github.com/ldm-project/ldm/internal/golden"
)

func TestServeRefusesBadSettingsBeforeLoading(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:7860"}, "--insecure"},
		{[]string{"--listen", ":7860"}, "without authentication"},
		{[]string{"--listen", "0.0.0.0:7860", "--api-auth", "nocolon"}, "user:password"},
		{[]string{"--listen", "nope"}, "listen address"},
		{[]string{"--max-steps", "-1"}, "--max-steps -1: a limit must be at least 1"},
		{[]string{"--max-width", "0"}, "--max-width 0: a limit must be at least 1"},
		// Empty credential parts would count as auth and open the network.
		{[]string{"--listen", "0.0.0.0:7860", "--api-auth", ":"}, "empty user"},
		{[]string{"--listen", "0.0.0.0:7860", "--api-auth", "ann:"}, "empty password"},
		{[]string{"--listen", "0.0.0.0:7860", "--api-auth", ":pw"}, "empty user"},
		{[]string{"--listen", "0.0.0.0:7860", "--api-auth", ""}, "--api-auth is empty"},
		{[]string{"--listen", "0.0.0.0:7860", "--api-key", ""}, "--api-key is empty"},
		{[]string{"--listen", "0.0.0.0:7860", "--api-key", "  "}, "--api-key is empty"},
		{[]string{"--cors-allow-origins-regex", "("}, "regex"},
		{[]string{"--public-url", "ldm.example.org"}, "public URL"},
		{[]string{"--max-memory", "lots"}, "--max-memory"},
		{[]string{"--max-loras", "0"}, "--max-loras"},
	} {
		// The model path does not exist: the error must come first.
		out, err := runLDM(append([]string{"serve", "--model", "/no/such/model"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: %v (output %q), want an error about %q", c.args, err, out, c.want)
		}
	}
}

func TestServeHelpDoesNotPrintSecretsFromTheEnvironment(t *testing.T) {
	t.Setenv("LDM_API_KEY", "s3cr3t-key")
	t.Setenv("LDM_API_AUTH", "ann:s3cr3t-pw")
	out, err := runLDM("serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("serve --help prints a secret:\n%s", out)
	}
	if !strings.Contains(out, "LDM_API_KEY") {
		t.Errorf("serve --help does not mention LDM_API_KEY:\n%s", out)
	}
}

// TestServeAnswersAndStopsOnSignal starts the command as the binary would,
// calls it over loopback, then cancels its context as SIGTERM does.
func TestServeAnswersAndStopsOnSignal(t *testing.T) {
	model := filepath.Join(golden.Dir(), "tiny_sd15")
	if _, err := os.Stat(filepath.Join(model, "model_index.json")); err != nil {
		t.Skipf("the tiny golden model is not at %s: %v", model, err)
	}
	root := newRootCmd()
	pr, pw := io.Pipe()
	root.SetOut(pw)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"serve", "--backend", "go", "--model", model, "--listen", "127.0.0.1:0", "--shutdown-timeout", "5s", "--outputs", t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- root.ExecuteContext(ctx)
		pw.Close()
	}()
	var base string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), " on "); ok {
			base = url
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		t.Fatalf("the server did not say where it listens: %v", <-done)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post(base+"/api/v1/generate", "application/json", strings.NewReader(`{"prompt":"a","steps":1,"width":32,"height":32}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("generate: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v after the signal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10 s of the signal")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after stopping")
	}
}

// startServe runs `ldm serve args...` until the test ends and returns its
// base URL.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	root := newRootCmd()
	pr, pw := io.Pipe()
	root.SetOut(pw)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"serve", "--backend", "go", "--listen", "127.0.0.1:0", "--warmup=false", "--outputs", t.TempDir()}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- root.ExecuteContext(ctx)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	sc := bufio.NewScanner(pr)
	base := ""
	for sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), " on "); ok {
			base = url
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		t.Fatalf("the server did not start: %v", <-done)
	}
	return base
}

func postJSON(t *testing.T, url, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %v", url, resp.StatusCode, v)
	}
	return v
}

// TestServeModelSwitchKeepsEveryModelUnderItsOwnName starts on the
// embedded model, switches to another and back: each stays listed with an
// AUTOMATIC1111 title, and each image's infotext names the model that drew
// it.
func TestServeModelSwitchKeepsEveryModelUnderItsOwnName(t *testing.T) {
	tiny := filepath.Join(golden.Dir(), "tiny_sd15")
	if _, err := os.Stat(filepath.Join(tiny, "model_index.json")); err != nil {
		t.Skipf("the tiny golden model is not at %s: %v", tiny, err)
	}
	dir := t.TempDir()
	if err := os.Symlink(tiny, filepath.Join(dir, "tiny_sd15")); err != nil {
		t.Fatal(err)
	}
	base := startServe(t, "--models-dir", dir)
	titles := func() []string {
		resp, err := http.Get(base + "/sdapi/v1/sd-models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ms []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&ms)
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprint(m["title"]))
		}
		return out
	}
	drawnBy := func() string {
		v := postJSON(t, base+"/sdapi/v1/txt2img", `{"prompt":"a","steps":1,"width":32,"height":32}`)
		var info map[string]any
		_ = json.Unmarshal([]byte(v["info"].(string)), &info)
		text := info["infotexts"].([]any)[0].(string)
		i := strings.Index(text, "Model: ")
		if i < 0 {
			t.Fatalf("infotext names no model: %q", text)
		}
		model, _, _ := strings.Cut(text[i+len("Model: "):], ",")
		if model != info["sd_model_name"] {
			t.Errorf("infotext says %q, info.sd_model_name %q", model, info["sd_model_name"])
		}
		return model
	}
	start := titles()
	title := regexp.MustCompile(`^ldm-emoji-small \[[0-9a-f]{10}\]$`)
	if len(start) != 2 || !title.MatchString(start[0]) || start[1] != "tiny_sd15" {
		t.Fatalf("sd-models at start: %q", start)
	}
	if m := drawnBy(); m != "ldm-emoji-small" {
		t.Errorf("the start model draws as %q", m)
	}
	postJSON(t, base+"/sdapi/v1/options", `{"sd_model_checkpoint":"tiny_sd15"}`)
	after := titles()
	if len(after) != 2 || !strings.HasPrefix(after[0], "tiny_sd15 [") || after[1] != start[0] {
		t.Errorf("sd-models after switching to tiny_sd15: %q (start model %q)", after, start[0])
	}
	if m := drawnBy(); m != "tiny_sd15" {
		t.Errorf("after switching, images are drawn as %q, want tiny_sd15", m)
	}
	postJSON(t, base+"/sdapi/v1/options", `{"sd_model_checkpoint":"`+start[0]+`"}`)
	if back := titles(); len(back) != 2 || back[0] != start[0] {
		t.Errorf("sd-models after switching back: %q", back)
	}
	if m := drawnBy(); m != "ldm-emoji-small" {
		t.Errorf("after switching back, images are drawn as %q", m)
	}
}

// TestServeSharesTheModelFlags: serve declares its model flags through
// modelFlags, as generate and batch do (it lacked LDM_MODEL, --tokenizer,
// --embeddings and --prediction-type).
func TestServeSharesTheModelFlags(t *testing.T) {
	var want modelFlags
	fs := pflag.NewFlagSet("model", pflag.ContinueOnError)
	want.register(fs)
	root := newRootCmd()
	for _, name := range []string{"serve", "generate", "batch"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		fs.VisitAll(func(f *pflag.Flag) {
			got := cmd.Flags().Lookup(f.Name)
			if got == nil || got.Usage != f.Usage || got.DefValue != f.DefValue {
				t.Errorf("%s: --%s is not the shared model flag (%v)", name, f.Name, got)
			}
		})
	}
}

// The server flags' defaults are the library's (app.DefaultConfig), not a
// second copy that could drift from it.
func TestServeFlagDefaultsAreTheLibrarys(t *testing.T) {
	def := app.DefaultConfig()
	cmd := newServeCmd()
	for name, want := range map[string]string{
		"queue-size":    fmt.Sprint(def.QueueSize),
		"job-timeout":   def.JobTimeout.String(),
		"preview-every": fmt.Sprint(def.PreviewEvery),
		"url-ttl":       def.FileTTL.String(),
		"read-timeout":  def.ReadTimeout.String(),
		"write-timeout": def.WriteTimeout.String(),
		"idle-timeout":  def.IdleTimeout.String(),
	} {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("serve has no --%s", name)
			continue
		}
		if f.DefValue != want {
			t.Errorf("--%s defaults to %s, app.DefaultConfig() to %s", name, f.DefValue, want)
		}
	}
	if def.QueueSize <= 0 || def.JobTimeout <= 0 || def.PreviewEvery == 0 || def.FileTTL <= 0 {
		t.Errorf("DefaultConfig leaves a field unset: %+v", def)
	}
}
