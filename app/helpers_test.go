package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
)

var (
	tinyOnce sync.Once
	tiny     *Loaded
	tinyErr  error
)

// tinyPath is the golden tiny SD1.5-shaped model (64×64, random weights).
func tinyPath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(golden.Dir(), "tiny_sd15")
	if _, err := os.Stat(filepath.Join(p, "model_index.json")); err != nil {
		t.Skipf("the tiny golden model is not at %s (set LDM_GOLDEN_DIR): %v", p, err)
	}
	return p
}

func loadTiny(path string) (*Loaded, error) {
	p, err := ldm.Load(path, ldm.LoadOptions{Backend: "go"})
	if err != nil {
		return nil, err
	}
	return &Loaded{Model: p, Name: p.Name, Hash: p.Hash, Path: path}, nil
}

// tinyModel loads the tiny model once for the whole package (the
// pipeline serialises Generate calls, so servers may share it).
func tinyModel(t testing.TB) *Loaded {
	t.Helper()
	path := tinyPath(t)
	tinyOnce.Do(func() { tiny, tinyErr = loadTiny(path) })
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tiny
}

// fakeModel stands in for a pipeline where a test must control time: each
// step waits on gate (nil: no wait) and every call is counted.
type fakeModel struct {
	gate    chan struct{}
	started chan struct{} // receives once per Generate call if non-nil
	calls   atomic.Int32
	ctxErrs atomic.Int32 // calls that ended because their context ended
}

func (f *fakeModel) SampleSize() int { return 64 }
func (f *fakeModel) Factor() int     { return 8 }

func (f *fakeModel) Prepare(req ldm.Request, l ldm.Limits) (*ldm.Plan, error) {
	return ldm.PrepareRequest(req, l, f.SampleSize(), f.Factor())
}

// Run runs the tasks one after another.
func (f *fakeModel) Run(ctx context.Context, tasks []ldm.Task) []ldm.BatchResult {
	out := make([]ldm.BatchResult, len(tasks))
	for i, t := range tasks {
		tctx := ctx
		if t.Ctx != nil {
			tctx = t.Ctx
		}
		out[i].Results, out[i].Err = f.Generate(tctx, t.Plan.Request(), t.Opts)
	}
	return out
}

func (f *fakeModel) Generate(ctx context.Context, req ldm.Request, o ldm.Options) ([]ldm.Result, error) {
	f.calls.Add(1)
	if f.started != nil {
		f.started <- struct{}{}
	}
	var out []ldm.Result
	for b := 1; b <= req.BatchCount; b++ {
		for i := 1; i <= req.Steps; i++ {
			if f.gate != nil {
				select {
				case <-f.gate:
				case <-ctx.Done():
					f.ctxErrs.Add(1)
					return out, ctx.Err()
				}
			}
			if err := ctx.Err(); err != nil {
				f.ctxErrs.Add(1)
				return out, err
			}
			if o.Progress != nil {
				p := ldm.Progress{Image: b, Images: req.BatchCount, Step: i, Total: req.Steps, ETA: time.Duration(req.Steps-i) * time.Millisecond}
				if o.PreviewEvery > 0 && i%o.PreviewEvery == 0 {
					p.Preview = image.NewRGBA(image.Rect(0, 0, req.Width/8, req.Height/8))
				}
				o.Progress(p)
			}
		}
		for k := 0; k < req.BatchSize; k++ {
			img := image.NewRGBA(image.Rect(0, 0, req.Width, req.Height))
			seed := req.Seed + int64((b-1)*req.BatchSize+k)
			img.Set(0, 0, color.RGBA{uint8(seed), 0, 0, 255})
			out = append(out, ldm.Result{Image: img, Seed: seed, Infotext: ldm.Infotext{Prompt: req.Prompt,
				Params: []ldm.KV{{Key: "Steps", Value: fmt.Sprint(req.Steps)}, {Key: "Seed", Value: fmt.Sprint(seed)}}}})
		}
	}
	return out, nil
}

func fake() *Loaded {
	return &Loaded{Model: &fakeModel{}, Name: "fake", Hash: "0123456789", Path: "/models/fake"}
}

func gatedFake() (*Loaded, *fakeModel) {
	f := &fakeModel{gate: make(chan struct{}), started: make(chan struct{}, 100)}
	return &Loaded{Model: f, Name: "fake", Hash: "0123456789", Path: "/models/fake"}, f
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testServer starts a server on a loopback httptest listener; both stop
// at the end of the test.
func testServer(t testing.TB, m *Loaded, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	s, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		ts.Close()
	})
	return s, ts
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.Body)
	}
	return v
}

// call sends body (a string as is, anything else as JSON) and reads the
// whole answer.
func call(t testing.TB, method, url string, body any, header ...string) response {
	t.Helper()
	return callCtx(t, context.Background(), method, url, body, header...)
}

func callCtx(t testing.TB, ctx context.Context, method, url string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{Status: -1, Body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, data}
}

// decodePNG reads a base64 PNG and its "parameters" text.
func decodePNG(t testing.TB, b64 string) (image.Image, string) {
	t.Helper()
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("image is not base64: %v", err)
	}
	return pngBytes(t, data)
}

func pngBytes(t testing.TB, data []byte) (image.Image, string) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	text, err := ldm.ReadPNGText(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("PNG text: %v", err)
	}
	return img, text["parameters"]
}

func pngB64(t testing.TB, img image.Image) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

// blank is a white image.
func blank(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	return img
}
