package ldm

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/models"
)

// procStatus reads a "VmXXX:" line of /proc/self/status in bytes.
func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// measurePeak is the resident memory a generation adds at its peak: the
// high-water mark (reset through /proc/self/clear_refs) over the resident
// memory before, with the heap returned to the system first.
func measurePeak(t *testing.T, p *Pipeline, req Request) (int64, bool) {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, false
	}
	base := procStatus("VmRSS")
	if _, err := p.Generate(context.Background(), req, Options{}); err != nil {
		t.Fatal(err)
	}
	return procStatus("VmHWM") - base, true
}

// TestMemoryEstimateBoundsMeasuredPeak checks EstimateMemory against the
// measured peak on the tiny model (each shape's first run, compilation
// included): the estimate bounds the measured peak and is not wildly
// above it. LDM_MEMORY_CALIBRATE=1 adds larger shapes and the embedded
// model and logs every ratio (the figures in docs/SERVER.md).
func TestMemoryEstimateBoundsMeasuredPeak(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement skipped in -short mode")
	}
	calibrate := os.Getenv("LDM_MEMORY_CALIBRATE") != ""
	type shape struct{ w, h, batch int }
	runs := []struct {
		name   string
		load   func() *Pipeline
		shapes []shape
	}{
		{"tiny_sd15", func() *Pipeline { return loadTiny(t) }, []shape{{64, 64, 1}, {128, 128, 2}}},
	}
	if calibrate {
		runs[0].shapes = append(runs[0].shapes, shape{256, 256, 1}, shape{256, 256, 4}, shape{512, 512, 1})
		runs = append(runs, struct {
			name   string
			load   func() *Pipeline
			shapes []shape
		}{"embedded", func() *Pipeline {
			path, err := models.Path()
			if err != nil {
				t.Fatal(err)
			}
			p, err := Load(path, LoadOptions{Backend: "go"})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}, []shape{{64, 64, 1}, {128, 128, 1}, {128, 128, 4}, {256, 256, 1}, {384, 384, 1}}})
	}
	for _, r := range runs {
		p := r.load()
		for _, s := range r.shapes {
			req := Request{Prompt: "a lighthouse on a cliff", Steps: 1, Width: s.w, Height: s.h, BatchSize: s.batch, Seed: 1}
			req.Defaults(p.SampleSize())
			est := p.EstimateMemory(req)
			act := est.Peak() - est.Weights
			got, ok := measurePeak(t, p, req)
			if !ok {
				t.Skip("no /proc/self/clear_refs: cannot measure the peak")
			}
			t.Logf("%s %dx%d batch %d: measured %s, estimated %s (U-Net %s, decode %s): ratio %.2f",
				r.name, s.w, s.h, s.batch, FormatBytes(got), FormatBytes(act), FormatBytes(est.UNet), FormatBytes(est.Decode), float64(act)/float64(max(got, 1)))
			if got > act {
				t.Errorf("%s %dx%d batch %d: measured %s above the estimate %s", r.name, s.w, s.h, s.batch, FormatBytes(got), FormatBytes(act))
			}
			if act > 8*got+256<<20 {
				t.Errorf("%s %dx%d batch %d: estimate %s is far above the measured %s", r.name, s.w, s.h, s.batch, FormatBytes(act), FormatBytes(got))
			}
		}
	}
}

func TestMemoryEstimateCountsTheDecodeThePipelineWillRun(t *testing.T) {
	folder, _ := tinyModel(t)
	req := Request{Prompt: "a", Width: 1024, Height: 1024, BatchSize: 2, Steps: 1}
	req.Defaults(64)
	for _, mode := range []string{"on", "off"} {
		p, err := Load(folder, LoadOptions{Backend: "go", VAETiling: VAETiling{Mode: mode}})
		if err != nil {
			t.Fatal(err)
		}
		e := p.EstimateMemory(req)
		dec := e.Decode
		if mode == "on" {
			dec = e.DecodeTiled
		}
		if e.Tiled != (mode == "on") || e.Peak() != e.Weights+max(e.UNet, dec)+e.Results+e.Overhead {
			t.Errorf("tiling %s: %+v, peak %d", mode, e, e.Peak())
		}
		if e.DecodeTiled >= e.Decode || e.Weights <= 0 || e.UNet <= 0 {
			t.Errorf("tiling %s: tiled decode %d, whole %d, weights %d, U-Net %d", mode, e.DecodeTiled, e.Decode, e.Weights, e.UNet)
		}
	}
}
