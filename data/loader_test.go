package data

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// colourDataset writes n solid w×h images, image i of grey level i, with
// captions "image i", and opens it.
func colourDataset(t testing.TB, n, w, h int) *Dataset {
	t.Helper()
	dir := t.TempDir()
	var meta strings.Builder
	for i := range n {
		name := fmt.Sprintf("%03d.png", i)
		writeImage(t, dir, name, solid(w, h, color.NRGBA{uint8(i), uint8(i), uint8(i), 255}))
		fmt.Fprintf(&meta, "{\"file_name\":%q,\"text\":\"image %d\"}\n", name, i)
	}
	writeFiles(t, dir, map[string]string{"metadata.jsonl": meta.String()})
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// drain reads every batch of a finite loader.
func drain(t testing.TB, l *Loader) []*Batch {
	t.Helper()
	var out []*Batch
	for {
		b, err := l.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func newLoader(t testing.TB, d *Dataset, o Options, from *State) *Loader {
	t.Helper()
	l, err := NewLoader(context.Background(), d, o, from)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func names(bs []*Batch) [][]string {
	var out [][]string
	for _, b := range bs {
		var ns []string
		for _, it := range b.Items {
			ns = append(ns, it.Name)
		}
		out = append(out, ns)
	}
	return out
}

func TestCompositeIsExact(t *testing.T) {
	white, black, teal := color.NRGBA{255, 255, 255, 255}, color.NRGBA{0, 0, 0, 255}, color.NRGBA{0, 128, 128, 255}
	tests := []struct {
		px, bg color.NRGBA
		want   [3]uint8
	}{
		{color.NRGBA{255, 0, 0, 255}, white, [3]uint8{255, 0, 0}},
		{color.NRGBA{255, 0, 0, 0}, white, [3]uint8{255, 255, 255}},
		{color.NRGBA{255, 0, 0, 128}, white, [3]uint8{255, 127, 127}}, // 255·127/255 = 127
		{color.NRGBA{255, 0, 0, 128}, black, [3]uint8{128, 0, 0}},     // 255·128/255 = 128
		{color.NRGBA{100, 200, 50, 51}, white, [3]uint8{224, 244, 214}},
		{color.NRGBA{100, 200, 50, 51}, teal, [3]uint8{20, 142, 112}},
		{color.NRGBA{10, 20, 30, 1}, black, [3]uint8{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.px, "on", tt.bg), func(t *testing.T) {
			dir := t.TempDir()
			p := writeImage(t, dir, "x.png", solid(4, 4, tt.px))
			px, err := prepare(p, &Options{Size: 4, Crop: CropCenter, Background: tt.bg, Filter: "lanczos"})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(px.pix); i += 3 {
				if got := [3]uint8(px.pix[i : i+3]); got != tt.want {
					t.Fatalf("pixel %d = %v, want %v", i/3, got, tt.want)
				}
			}
		})
	}
}

func TestBackgroundDefaultsToWhiteAndAlphaIsIgnored(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil || o.Background != white {
		t.Fatalf("default background %v (%v), want white", o.Background, err)
	}
	o, _ = Options{Background: color.NRGBA{1, 2, 3, 9}}.withDefaults()
	if o.Background != (color.NRGBA{1, 2, 3, 255}) {
		t.Fatalf("background %v, want opaque 1,2,3", o.Background)
	}
}

// gradient has R = x and G = y, so a pixel tells where it came from.
func gradient(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), 0, 255})
		}
	}
	return img
}

// at returns the 8-bit value of channel c at (x, y) of sample i.
func at(b *Batch, i, c, x, y int) int {
	s := b.Shape[3]
	v := b.Images[((i*3+c)*s+y)*s+x]
	return int(math.Round(float64((v + 1) * 127.5)))
}

func TestCropAndFlipShapes(t *testing.T) {
	dir := t.TempDir()
	// Shorter sides already at 8, so no resampling blurs the R=x, G=y code
	// that tells where each output pixel came from.
	writeImage(t, dir, "wide.png", gradient(16, 8))
	writeImage(t, dir, "tall.png", gradient(8, 24))
	writeFiles(t, dir, map[string]string{"metadata.jsonl": `{"file_name":"wide.png","text":"w"}` + "\n" + `{"file_name":"tall.png","text":"t"}`})
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		o        Options
		wantX0   map[int]bool // possible left edges of the wide image's crop
		wantFlip bool
	}{
		{"center", Options{Size: 8, Crop: CropCenter, Filter: "nearest"}, map[int]bool{4: true}, false},
		{"random", Options{Size: 8, Crop: CropRandom, Filter: "nearest"}, map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true}, false},
		{"center flip", Options{Size: 8, Crop: CropCenter, Filter: "nearest", Flip: true}, map[int]bool{4: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.BatchSize, tt.o.Epochs, tt.o.Seed = 2, 40, 7
			bs := drain(t, newLoader(t, d, tt.o, nil))
			seenX0, flips := map[int]bool{}, 0
			for _, b := range bs {
				if b.Shape != [4]int{2, 3, 8, 8} || len(b.Images) != 2*3*8*8 {
					t.Fatalf("shape %v, %d values", b.Shape, len(b.Images))
				}
				for i := range 2 {
					flipped := at(b, i, 0, 0, 0) > at(b, i, 0, 7, 0)
					if flipped {
						flips++
					}
					if b.Items[i].Name == "wide.png" {
						x0 := min(at(b, i, 0, 0, 0), at(b, i, 0, 7, 0))
						seenX0[x0] = true
						if at(b, i, 1, 0, 7) != 7 { // full height kept
							t.Fatalf("wide: G at the bottom row = %d, want 7", at(b, i, 1, 0, 7))
						}
					} else if y0 := at(b, i, 1, 0, 0); tt.o.Crop == CropCenter && y0 != 8 {
						t.Fatalf("tall: top row comes from y=%d, want 8", y0)
					}
					for x := range 7 { // consecutive columns, in one direction
						d := at(b, i, 0, x+1, 0) - at(b, i, 0, x, 0)
						if (flipped && d != -1) || (!flipped && d != 1) {
							t.Fatalf("columns not a contiguous window: %d then %d", at(b, i, 0, x, 0), at(b, i, 0, x+1, 0))
						}
					}
				}
			}
			for x0 := range seenX0 {
				if !tt.wantX0[x0] {
					t.Errorf("crop left edge %d not allowed", x0)
				}
			}
			if tt.o.Crop == CropRandom && len(seenX0) < 6 {
				t.Errorf("random crop used only offsets %v in 40 epochs", seenX0)
			}
			if tt.wantFlip != (flips > 0) || (tt.wantFlip && (flips < 25 || flips > 55)) {
				t.Errorf("%d of 80 samples flipped", flips)
			}
		})
	}
}

func TestResizeKeepsAspectAndShorterSide(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		w, h   int
		crop   CropMode
		wantWH [2]int
	}{
		{100, 50, CropCenter, [2]int{64, 64}},
		{100, 50, CropRandom, [2]int{128, 64}},
		{30, 90, CropRandom, [2]int{64, 192}},
		{64, 64, CropRandom, [2]int{64, 64}},
		{7, 5, CropRandom, [2]int{90, 64}},
	}
	for _, tt := range tests {
		p := writeImage(t, dir, fmt.Sprintf("%dx%d.png", tt.w, tt.h), gradient(tt.w, tt.h))
		px, err := prepare(p, &Options{Size: 64, Crop: tt.crop, Background: white, Filter: "lanczos"})
		if err != nil {
			t.Fatal(err)
		}
		if [2]int{px.w, px.h} != tt.wantWH || len(px.pix) != px.w*px.h*3 {
			t.Errorf("%dx%d %s: got %dx%d (%d bytes), want %v", tt.w, tt.h, tt.crop, px.w, px.h, len(px.pix), tt.wantWH)
		}
	}
}

func TestBatchValuesAreNCHWInMinusOneToOne(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir, "a.png", solid(2, 2, color.NRGBA{255, 0, 51, 255}))
	writeFiles(t, dir, map[string]string{"a.txt": "red"})
	d, _ := Open(dir)
	b, err := newLoader(t, d, Options{Size: 2, BatchSize: 1}, nil).Next()
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{1, 1, 1, 1, -1, -1, -1, -1, 51/127.5 - 1, 51/127.5 - 1, 51/127.5 - 1, 51/127.5 - 1}
	if !reflect.DeepEqual(b.Images, want) || b.Captions[0] != "red" {
		t.Fatalf("images %v captions %q, want %v [red]", b.Images, b.Captions, want)
	}
}

func TestCaptionDropoutRate(t *testing.T) {
	d := colourDataset(t, 50, 2, 2)
	tests := []struct {
		p        float64
		min, max int // of 2000 samples; ±4σ around 2000p
	}{
		{0, 0, 0},
		{0.1, 200 - 54, 200 + 54},
		{0.5, 1000 - 90, 1000 + 90},
		{1, 2000, 2000},
	}
	for _, tt := range tests {
		bs := drain(t, newLoader(t, d, Options{Size: 2, BatchSize: 50, Epochs: 40, Seed: 3, Shuffle: true, CaptionDropout: tt.p}, nil))
		empty, total := 0, 0
		for _, b := range bs {
			for i, c := range b.Captions {
				total++
				if c == "" {
					empty++
				} else if c != b.Items[i].Caption {
					t.Fatalf("caption %q for item %q", c, b.Items[i].Caption)
				}
			}
		}
		if total != 2000 || empty < tt.min || empty > tt.max {
			t.Errorf("p=%g: %d of %d captions dropped, want %d..%d", tt.p, empty, total, tt.min, tt.max)
		}
	}
}

func TestShuffleIsDeterministicPerSeedAndEpoch(t *testing.T) {
	d := colourDataset(t, 12, 2, 2)
	order := func(seed uint64, shuffle bool) [][]string {
		bs := drain(t, newLoader(t, d, Options{Size: 2, BatchSize: 12, Epochs: 3, Seed: seed, Shuffle: shuffle}, nil))
		return names(bs)
	}
	a, again, other, plain := order(1, true), order(1, true), order(2, true), order(1, false)
	if !reflect.DeepEqual(a, again) {
		t.Fatalf("same seed, different order:\n%v\n%v", a, again)
	}
	if reflect.DeepEqual(a, other) {
		t.Error("seeds 1 and 2 give the same order")
	}
	if reflect.DeepEqual(a[0], a[1]) || reflect.DeepEqual(a[1], a[2]) {
		t.Error("epochs repeat the same order")
	}
	for e, ep := range a {
		s := append([]string(nil), ep...)
		sort.Strings(s)
		if !reflect.DeepEqual(s, plain[0]) {
			t.Errorf("epoch %d is not a permutation: %v", e, ep)
		}
	}
	// Pin the permutation so that a change to the generator is noticed: a
	// resumed training run depends on it.
	if got, want := permutation(8, 1, 0), []int{0, 2, 5, 1, 3, 4, 7, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("permutation(8, seed 1, epoch 0) = %v, want %v", got, want)
	}
}

func TestResumeRestoresTheExactNextBatch(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		writeImage(t, dir, fmt.Sprintf("%d.png", i), gradient(12+i, 10))
		writeFiles(t, dir, map[string]string{fmt.Sprintf("%d.txt", i): fmt.Sprintf("pic %d", i)})
	}
	d, _ := Open(dir)
	o := Options{Size: 8, BatchSize: 4, Seed: 42, Shuffle: true, Crop: CropRandom, Flip: true, CaptionDropout: 0.3, CacheDir: t.TempDir()}
	l := newLoader(t, d, o, nil)
	var ref []*Batch
	for range 9 { // 36 samples: crosses three epoch boundaries
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		ref = append(ref, b)
	}
	for _, k := range []int{0, 1, 2, 4, 7} {
		js, _ := json.Marshal(ref[k].State)
		var st State
		if err := json.Unmarshal(js, &st); err != nil {
			t.Fatal(err)
		}
		r := newLoader(t, d, o, &st)
		for j := k + 1; j < len(ref); j++ {
			b, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b.Images, ref[j].Images) || !reflect.DeepEqual(b.Captions, ref[j].Captions) || b.State != ref[j].State {
				t.Fatalf("resumed after batch %d: batch %d differs (captions %q vs %q)", k, j, b.Captions, ref[j].Captions)
			}
		}
	}
	if s := ref[2].State; s.Epoch != 1 || s.Index != 2 {
		t.Errorf("state after 12 samples of 10 = epoch %d index %d, want 1 2", s.Epoch, s.Index)
	}
}

func TestResumeRefusesAnotherDatasetOrSeed(t *testing.T) {
	d := colourDataset(t, 4, 2, 2)
	o := Options{Size: 2, BatchSize: 2, Seed: 1, Shuffle: true}
	b, err := newLoader(t, d, o, nil).Next()
	if err != nil {
		t.Fatal(err)
	}
	st := b.State
	tests := []struct {
		name string
		d    *Dataset
		o    Options
		want string
	}{
		{"fewer items", d.Filter(func(it Item) bool { return it.Name != "000.png" }), o, "the data changed since the checkpoint"},
		{"other seed", d, Options{Size: 2, BatchSize: 2, Seed: 2, Shuffle: true}, "seed 1 shuffle true, the options seed 2"},
	}
	for _, tt := range tests {
		if _, err := NewLoader(context.Background(), tt.d, tt.o, &st); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestEpochsAndDropLast(t *testing.T) {
	d := colourDataset(t, 10, 2, 2)
	tests := []struct {
		epochs   int
		dropLast bool
		want     []int
	}{
		{1, false, []int{4, 4, 2}},
		{1, true, []int{4, 4}},
		{2, false, []int{4, 4, 4, 4, 4}},
		{3, false, []int{4, 4, 4, 4, 4, 4, 4, 2}},
	}
	for _, tt := range tests {
		bs := drain(t, newLoader(t, d, Options{Size: 2, BatchSize: 4, Epochs: tt.epochs, DropLast: tt.dropLast}, nil))
		var got []int
		for _, b := range bs {
			got = append(got, b.Shape[0])
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("epochs %d drop %v: batch sizes %v, want %v", tt.epochs, tt.dropLast, got, tt.want)
		}
	}
	// Forever: batches keep coming and stay full.
	l := newLoader(t, d, Options{Size: 2, BatchSize: 4}, nil)
	for range 20 {
		if b, err := l.Next(); err != nil || b.Shape[0] != 4 {
			t.Fatalf("endless stream: %v, %v", b, err)
		}
	}
}

func TestCorruptImageIsSkippedWarnedAndCounted(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		writeImage(t, dir, fmt.Sprintf("%d.png", i), solid(3, 3, color.NRGBA{uint8(i), 0, 0, 255}))
	}
	writeFiles(t, dir, map[string]string{"2.png": "\x89PNG\r\n\x1a\n garbage", "4.png": ""})
	var log bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&log, nil)))
	defer slog.SetDefault(old)
	d, _ := Open(dir)
	l := newLoader(t, d, Options{Size: 3, BatchSize: 2, Epochs: 3, Shuffle: true, Seed: 5, CacheDir: t.TempDir()}, nil)
	bs := drain(t, l)
	var got []int
	seen := map[string]int{}
	for _, b := range bs {
		got = append(got, b.Shape[0])
		for _, it := range b.Items {
			seen[it.Name]++
		}
	}
	if want := []int{2, 2, 2, 2, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("batch sizes %v, want %v", got, want)
	}
	if want := map[string]int{"0.png": 3, "1.png": 3, "3.png": 3}; !reflect.DeepEqual(seen, want) {
		t.Errorf("items seen %v, want %v", seen, want)
	}
	st := l.Stats()
	if st.Skipped != 2 || len(st.SkippedFiles) != 2 || filepath.Base(st.SkippedFiles[0]) != "2.png" || filepath.Base(st.SkippedFiles[1]) != "4.png" {
		t.Errorf("skipped %d %v, want 2.png and 4.png", st.Skipped, st.SkippedFiles)
	}
	if n := strings.Count(log.String(), "skipping unreadable image"); n != 2 || !strings.Contains(log.String(), filepath.Join(dir, "2.png")) {
		t.Errorf("want one warning per bad file naming it, got:\n%s", log.String())
	}
}

func TestAllImagesUnreadableIsAnError(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.png": "x", "b.png": "y"})
	d, _ := Open(dir)
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	_, err := newLoader(t, d, Options{Size: 2, BatchSize: 1}, nil).Next()
	if err == nil || !strings.Contains(err.Error(), "none of the 2 images in the dataset could be read") {
		t.Fatalf("err = %v", err)
	}
}

func TestCacheIsHitOnTheSecondPass(t *testing.T) {
	d := colourDataset(t, 6, 5, 4)
	cache := t.TempDir()
	o := Options{Size: 4, BatchSize: 3, Epochs: 2, Shuffle: true, CacheDir: cache}
	l := newLoader(t, d, o, nil)
	first := drain(t, l)
	if st := l.Stats(); st.Decoded != 6 || st.CacheHits != 6 || st.CacheWrites != 6 || st.Samples != 12 || st.Batches != 4 {
		t.Errorf("two epochs, one loader: %+v, want 6 decoded, 6 hits, 6 writes", st)
	}
	l2 := newLoader(t, d, o, nil)
	second := drain(t, l2)
	if st := l2.Stats(); st.Decoded != 0 || st.CacheHits != 12 {
		t.Errorf("new loader, warm cache: %+v, want 0 decoded, 12 hits", st)
	}
	for i := range first {
		if !reflect.DeepEqual(first[i].Images, second[i].Images) {
			t.Fatalf("batch %d differs between cold and warm cache", i)
		}
	}
	// A changed file or changed settings miss; a damaged entry is rebuilt.
	future := time.Now().Add(time.Hour)
	os.Chtimes(d.Items[0].Path, future, future)
	entries, _ := filepath.Glob(filepath.Join(cache, "*", "*.rgb"))
	os.WriteFile(entries[0], []byte("LDMC broken"), 0o644)
	l3 := newLoader(t, d, o, nil)
	drain(t, l3)
	if st := l3.Stats(); st.Decoded < 1 || st.Decoded > 2 || st.Decoded+st.CacheHits != 12 {
		t.Errorf("after touching one file and damaging one entry: %+v", st)
	}
	o.Background = color.NRGBA{0, 0, 0, 255}
	l4 := newLoader(t, d, o, nil)
	drain(t, l4)
	if st := l4.Stats(); st.Decoded != 6 {
		t.Errorf("new background: %d decoded, want 6", st.Decoded)
	}
}

func TestWarmCacheFillsTheCacheAndNamesBadFiles(t *testing.T) {
	d := colourDataset(t, 5, 4, 4)
	writeFiles(t, d.Root, map[string]string{"003.png": "broken"})
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	o := Options{Size: 4, CacheDir: t.TempDir()}
	calls := 0
	st, err := WarmCache(context.Background(), d, o, func(done, total int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if st.Decoded != 5 || st.CacheWrites != 4 || st.Skipped != 1 || filepath.Base(st.SkippedFiles[0]) != "003.png" || calls != 5 {
		t.Errorf("warm: %+v, %d progress calls", st, calls)
	}
	l := newLoader(t, d, Options{Size: 4, BatchSize: 4, Epochs: 1, CacheDir: o.CacheDir}, nil)
	drain(t, l)
	if st := l.Stats(); st.Decoded != 1 || st.CacheHits != 4 {
		t.Errorf("after warm-up: %+v, want only the broken file decoded", st)
	}
}

func TestCloseStopsTheProducerAndContextCancels(t *testing.T) {
	d := colourDataset(t, 4, 2, 2)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := NewLoader(ctx, d, Options{Size: 2, BatchSize: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := l.Next(); !errors.Is(err, context.Canceled) {
		// One already-prepared batch may still be delivered.
		if _, err := l.Next(); !errors.Is(err, context.Canceled) {
			t.Fatalf("after cancel: %v", err)
		}
	}
	l.Close()
}

func TestOptionsAreValidated(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{Size: -1}, "image size -1"},
		{Options{Crop: "top"}, `crop "top"`},
		{Options{CaptionDropout: 1.5}, "caption dropout 1.5"},
		{Options{Filter: "bicubic"}, `filter "bicubic"`},
		{Options{Epochs: -1}, "epochs -1"},
	}
	for _, tt := range tests {
		if _, err := tt.o.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.o, err, tt.want)
		}
	}
}
