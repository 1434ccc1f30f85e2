package weights

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoadPeakMemory writes a full-size SD1.5 F16 single file (~2 GB, in a
// temporary folder) and, in a fresh process, reads every tensor of every
// component to float32 and keeps them all, as a model load does. The peak
// resident set must stay under 1.5× the float32 parameter bytes: the file's
// bytes are never held in memory besides the float32 values.
func TestLoadPeakMemory(t *testing.T) {
	if path := os.Getenv("LDM_MEMTEST_CHILD"); path != "" {
		loadAllAndReport(t, path)
		return
	}
	if os.Getenv("LDM_BIG_TESTS") != "1" {
		t.Skip("writes a 2 GB file and holds 4 GB: set LDM_BIG_TESTS=1 to run")
	}
	configs, err := Preset("sd15")
	if err != nil {
		t.Fatal(err)
	}
	src := synthModel(t, configs, 1)
	var params int64
	for _, name := range modelComponents {
		params += CountParameters(src.Components[name].Source)
	}
	path := filepath.Join(t.TempDir(), "sd15-synthetic.safetensors")
	start := time.Now()
	if err := WriteSingleFile(path, src, F16, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	t.Logf("wrote %s: %d bytes in %v", filepath.Base(path), st.Size(), time.Since(start).Round(time.Millisecond))

	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadPeakMemory$", "-test.v")
	cmd.Env = append(os.Environ(), "LDM_MEMTEST_CHILD="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var peakKB, loaded int64
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "PEAK_RSS_KB="); ok {
			peakKB, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(f, "LOADED_F32_BYTES="); ok {
			loaded, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	f32 := 4 * params
	if loaded != f32 || peakKB == 0 {
		t.Fatalf("child loaded %d float32 bytes (want %d), peak %d KB\n%s", loaded, f32, peakKB, out)
	}
	peak := peakKB * 1024
	t.Logf("SD1.5: %d parameters; file %d bytes; float32 %d bytes; peak RSS %d bytes = %.3f× float32", params, st.Size(), f32, peak, float64(peak)/float64(f32))
	t.Logf("child:\n%s", out)
	if float64(peak) >= 1.5*float64(f32) {
		t.Errorf("peak RSS %d bytes ≥ 1.5 × %d float32 bytes", peak, f32)
	}
}

func loadAllAndReport(t *testing.T, path string) {
	start := time.Now()
	m, err := OpenModel(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var held [][]float32
	var bytes int64
	for _, name := range modelComponents {
		c := m.Components[name]
		if c == nil || len(c.Unexpected) > 0 {
			t.Fatalf("%s: missing, or unexpected keys %v", name, c.Unexpected)
		}
		for _, k := range c.Source.Keys() {
			v, _, err := c.Source.Float32(k)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, v)
			bytes += 4 * int64(len(v))
		}
	}
	elapsed := time.Since(start)
	peak := vmHWM(t)
	// Spot-check values against the generator (after measuring).
	cfg, _ := Preset("sd15")
	want := synthModel(t, cfg, 1).Components[VAE].Source
	k := "decoder.mid_block.attentions.0.to_q.weight" // stored [C,C,1,1]
	a, _, _ := m.Components[VAE].Source.Float32(k)
	b, _, _ := want.Float32(k)
	for i := range b {
		if a[i] != HalfToFloat32(Float32ToHalf(b[i])) {
			t.Fatalf("%s[%d] = %g, want fp16(%g)", k, i, a[i], b[i])
		}
	}
	runtime.KeepAlive(held)
	fmt.Printf("PEAK_RSS_KB=%d LOADED_F32_BYTES=%d TENSORS=%d LOAD_TIME=%v\n", peak, bytes, len(held), elapsed.Round(time.Millisecond))
}

// vmHWM returns the process's peak resident set in KB (Linux).
func vmHWM(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
