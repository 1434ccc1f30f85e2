package data

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/ldm-project/ldm/internal/fsutil"
)

// Options configures preprocessing, augmentation and batching. The zero
// value of every field means its default; see withDefaults.
type Options struct {
	// Size is the side of the square output images (default 64).
	Size int
	// Crop is CropCenter (default) or CropRandom.
	Crop CropMode
	// Flip mirrors each sample horizontally with probability 1/2. Leave it
	// off where direction carries meaning (flags, text, emoji "facing right").
	Flip bool
	// Background is the colour transparent pixels are composited onto; its
	// alpha is ignored, and a zero value means white.
	Background color.NRGBA
	// Filter is the resampling filter: lanczos (default), catmullrom,
	// linear, box or nearest.
	Filter string
	// CaptionDropout is the probability that a sample's caption is replaced
	// by "" (training the unconditional branch for classifier-free guidance).
	CaptionDropout float64

	// BatchSize is the number of samples per batch (default 16).
	BatchSize int
	// Seed fixes the shuffle and every random augmentation.
	Seed uint64
	// Shuffle visits the items in a new random order each epoch; without it
	// they come in dataset order.
	Shuffle bool
	// Epochs is the number of passes over the data; 0 repeats forever. The
	// stream is the concatenation of the epochs, so batches may straddle an
	// epoch boundary and only the stream's last batch can be short.
	Epochs int
	// DropLast drops a short last batch.
	DropLast bool

	// CacheDir, when set, holds preprocessed images so that later epochs
	// and later runs skip decoding and resizing.
	CacheDir string
	// Prefetch is the number of batches prepared ahead (default 2).
	Prefetch int
	// Workers is the number of images decoded in parallel (default
	// min(GOMAXPROCS, 4)).
	Workers int
}

// white is the default background.
var white = color.NRGBA{255, 255, 255, 255}

func (o Options) withDefaults() (Options, error) {
	if o.Size == 0 {
		o.Size = 64
	}
	if o.Crop == "" {
		o.Crop = CropCenter
	}
	if o.Background.A == 0 {
		o.Background = white
	}
	o.Background.A = 255
	if o.Filter == "" {
		o.Filter = "lanczos"
	}
	if o.BatchSize == 0 {
		o.BatchSize = 16
	}
	if o.Prefetch == 0 {
		o.Prefetch = 2
	}
	if o.Workers == 0 {
		o.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	switch {
	case o.Size < 1 || o.Size > 8192:
		return o, fmt.Errorf("image size %d: want 1 to 8192", o.Size)
	case o.Crop != CropCenter && o.Crop != CropRandom:
		return o, fmt.Errorf("crop %q: want %q or %q", o.Crop, CropCenter, CropRandom)
	case o.CaptionDropout < 0 || o.CaptionDropout > 1:
		return o, fmt.Errorf("caption dropout %g: want a probability in [0, 1]", o.CaptionDropout)
	case o.BatchSize < 1:
		return o, fmt.Errorf("batch size %d: want at least 1", o.BatchSize)
	case o.Epochs < 0:
		return o, fmt.Errorf("epochs %d: want 0 (forever) or more", o.Epochs)
	case o.Prefetch < 1 || o.Workers < 1:
		return o, fmt.Errorf("prefetch %d, workers %d: want at least 1", o.Prefetch, o.Workers)
	}
	if _, ok := filters[o.Filter]; !ok {
		return o, fmt.Errorf("filter %q: want lanczos, catmullrom, linear, box or nearest", o.Filter)
	}
	return o, nil
}

// State is a position in the sample stream. Every random decision the loader
// makes is a function of (Seed, epoch, item), so State restores the random
// state as well as the order: a Loader started from a Batch's State yields
// exactly the batches that would have followed it.
type State struct {
	Seed    uint64 `json:"seed"`
	Shuffle bool   `json:"shuffle"`
	// Epoch and Index are the next sample: position Index of epoch Epoch's
	// visiting order.
	Epoch int `json:"epoch"`
	Index int `json:"index"`
	// Items and Fingerprint identify the dataset the position refers to.
	Items       int    `json:"items"`
	Fingerprint string `json:"fingerprint"`
}

// Batch is a batch of samples.
type Batch struct {
	// Images is NCHW float32 in [-1, 1], RGB, Shape = [N, 3, Size, Size].
	Images []float32
	Shape  [4]int
	// Captions are the N captions after caption dropout.
	Captions []string
	// Items are the source items (path, undropped caption, metadata fields).
	Items []Item
	// Epoch is the epoch of the batch's first sample.
	Epoch int
	// State is the position after this batch: save it with a checkpoint and
	// pass it to NewLoader to continue with the next batch.
	State State
}

// Stats counts what a loader has done.
type Stats struct {
	Batches int64 `json:"batches"`
	Samples int64 `json:"samples"`
	// Decoded counts images decoded from their files; CacheHits counts
	// images read from the cache instead.
	Decoded     int64 `json:"decoded"`
	CacheHits   int64 `json:"cache_hits"`
	CacheWrites int64 `json:"cache_writes"`
	// Skipped counts the distinct unreadable or corrupt images, which are
	// left out of the stream (each named once in a warning).
	Skipped      int64    `json:"skipped"`
	SkippedFiles []string `json:"skipped_files,omitempty"`
}

// Loader streams batches from a dataset. A goroutine prepares up to
// Options.Prefetch batches ahead; Next hands them out in order.
type Loader struct {
	ds          *Dataset
	o           Options
	fingerprint string

	cancel context.CancelFunc
	done   chan struct{}
	out    chan result
	ctx    context.Context
	last   State
	err    error

	decoded, hits, writes, batches, samples atomic.Int64
	mu                                      sync.Mutex
	bad                                     map[int]bool
	badNames                                []string
	cacheWarn                               sync.Once
}

type result struct {
	b   *Batch
	err error
}

// NewLoader starts streaming ds. from is nil for a fresh start or a State
// saved from a Batch to resume after it; it must come from the same dataset,
// seed and shuffle setting. Close the loader when done.
func NewLoader(ctx context.Context, ds *Dataset, opts Options, from *State) (*Loader, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if ds.Len() == 0 {
		return nil, errors.New("the dataset is empty")
	}
	l := &Loader{ds: ds, o: o, fingerprint: ds.Fingerprint(), bad: map[int]bool{}}
	start := State{Seed: o.Seed, Shuffle: o.Shuffle, Items: ds.Len(), Fingerprint: l.fingerprint}
	if from != nil {
		switch {
		case from.Items != start.Items || from.Fingerprint != start.Fingerprint:
			return nil, fmt.Errorf("cannot resume: the saved position is for a dataset of %d items (fingerprint %s), this one has %d (fingerprint %s); the data changed since the checkpoint",
				from.Items, from.Fingerprint, start.Items, start.Fingerprint)
		case from.Seed != o.Seed || from.Shuffle != o.Shuffle:
			return nil, fmt.Errorf("cannot resume: the saved position has seed %d shuffle %v, the options seed %d shuffle %v",
				from.Seed, from.Shuffle, o.Seed, o.Shuffle)
		case from.Epoch < 0 || from.Index < 0 || from.Index > from.Items:
			return nil, fmt.Errorf("cannot resume: invalid position epoch %d index %d", from.Epoch, from.Index)
		}
		start.Epoch, start.Index = from.Epoch, from.Index
	}
	l.last = start
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.done = make(chan struct{})
	l.out = make(chan result, o.Prefetch)
	go l.produce(start)
	return l, nil
}

// Options returns the options in effect, defaults applied.
func (l *Loader) Options() Options { return l.o }

// Next returns the next batch, or io.EOF after the last one of a finite
// stream. After an error it keeps returning that error.
func (l *Loader) Next() (*Batch, error) {
	if l.err != nil {
		return nil, l.err
	}
	select {
	case r, ok := <-l.out:
		if !ok {
			l.err = io.EOF
			if err := l.ctx.Err(); err != nil {
				l.err = err
			}
			return nil, l.err
		}
		if r.err != nil {
			l.err = r.err
			return nil, r.err
		}
		l.last = r.b.State
		l.batches.Add(1)
		l.samples.Add(int64(r.b.Shape[0]))
		return r.b, nil
	case <-l.ctx.Done():
		l.err = l.ctx.Err()
		return nil, l.err
	}
}

// State is the position after the last batch Next returned.
func (l *Loader) State() State { return l.last }

// Close stops the prefetching goroutine and waits for it.
func (l *Loader) Close() error {
	l.cancel()
	<-l.done
	return nil
}

// Stats returns the counters so far.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	names := append([]string(nil), l.badNames...)
	l.mu.Unlock()
	sort.Strings(names)
	return Stats{
		Batches: l.batches.Load(), Samples: l.samples.Load(),
		Decoded: l.decoded.Load(), CacheHits: l.hits.Load(), CacheWrites: l.writes.Load(),
		Skipped: int64(len(names)), SkippedFiles: names,
	}
}

// produce runs in its own goroutine and fills l.out until the stream ends,
// an error occurs or the loader is closed.
func (l *Loader) produce(pos State) {
	defer close(l.done)
	defer close(l.out)
	n, size := l.ds.Len(), l.o.Size
	sample := 3 * size * size
	var perm []int
	permEpoch := -1
	order := func(epoch, index int) int {
		if !l.o.Shuffle {
			return index
		}
		if permEpoch != epoch {
			perm, permEpoch = permutation(n, l.o.Seed, epoch), epoch
		}
		return perm[index]
	}
	// take advances pos by up to k samples and returns them.
	type cand struct{ epoch, item int }
	take := func(k int) []cand {
		var cs []cand
		for len(cs) < k {
			if pos.Index >= n {
				pos.Epoch, pos.Index = pos.Epoch+1, 0
			}
			if l.o.Epochs > 0 && pos.Epoch >= l.o.Epochs {
				break
			}
			cs = append(cs, cand{pos.Epoch, order(pos.Epoch, pos.Index)})
			pos.Index++
		}
		return cs
	}
	send := func(r result) bool {
		select {
		case l.out <- r:
			return true
		case <-l.ctx.Done():
			return false
		}
	}
	for {
		bs := l.o.BatchSize
		b := &Batch{Images: make([]float32, bs*sample), Captions: make([]string, 0, bs), Items: make([]Item, 0, bs)}
		first := true
		for len(b.Items) < bs {
			if err := l.ctx.Err(); err != nil {
				return
			}
			cs := take(bs - len(b.Items))
			if len(cs) == 0 {
				break
			}
			if first {
				b.Epoch, first = cs[0].epoch, false
			}
			base := len(b.Items)
			ok := make([]bool, len(cs))
			caps := make([]string, len(cs))
			var wg sync.WaitGroup
			sem := make(chan struct{}, l.o.Workers)
			for i, c := range cs {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					dst := b.Images[(base+i)*sample : (base+i+1)*sample]
					caps[i], ok[i] = l.sample(dst, c.epoch, c.item)
				}()
			}
			wg.Wait()
			for i, c := range cs {
				if !ok[i] {
					continue
				}
				slot := len(b.Items)
				if slot != base+i {
					copy(b.Images[slot*sample:(slot+1)*sample], b.Images[(base+i)*sample:(base+i+1)*sample])
				}
				b.Items = append(b.Items, l.ds.Items[c.item])
				b.Captions = append(b.Captions, caps[i])
			}
			if l.allBad() {
				send(result{err: fmt.Errorf("none of the %d images in the dataset could be read", n)})
				return
			}
		}
		got := len(b.Items)
		if got == 0 || (got < bs && l.o.DropLast) {
			return
		}
		b.Images = b.Images[:got*sample]
		b.Shape = [4]int{got, 3, size, size}
		b.State = pos
		if pos.Index >= n {
			b.State.Epoch, b.State.Index = pos.Epoch+1, 0
		}
		if !send(result{b: b}) {
			return
		}
	}
}

func (l *Loader) allBad() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.bad) == l.ds.Len()
}

// sample writes item's augmented image for epoch into dst and returns its
// caption; ok is false when the image cannot be read.
func (l *Loader) sample(dst []float32, epoch, item int) (caption string, ok bool) {
	l.mu.Lock()
	known := l.bad[item]
	l.mu.Unlock()
	if known {
		return "", false
	}
	it := l.ds.Items[item]
	px, err := l.load(it.Path)
	if err != nil {
		l.markBad(item, err)
		return "", false
	}
	// Fixed draw order: caption dropout, flip, crop x, crop y.
	r := newRand(purposeSample, l.o.Seed, uint64(epoch), uint64(item))
	caption = it.Caption
	if r.float64() < l.o.CaptionDropout {
		caption = ""
	}
	flip := r.next()&1 == 1 && l.o.Flip
	x0, y0 := (px.w-l.o.Size)/2, (px.h-l.o.Size)/2
	if cx, cy := r.intn(px.w-l.o.Size+1), r.intn(px.h-l.o.Size+1); l.o.Crop == CropRandom {
		x0, y0 = cx, cy
	}
	px.fill(dst, l.o.Size, x0, y0, flip)
	return caption, true
}

// markBad records an unreadable item, warning once per file.
func (l *Loader) markBad(item int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.bad[item] {
		l.bad[item] = true
		l.badNames = append(l.badNames, l.ds.Items[item].Path)
		slog.Warn("skipping unreadable image", "file", l.ds.Items[item].Path, "err", err)
	}
}

// load returns the preprocessed pixels of path, from the cache when it
// holds them.
func (l *Loader) load(path string) (*pixels, error) {
	if l.o.CacheDir == "" {
		l.decoded.Add(1)
		return prepare(path, &l.o)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	cp := cachePath(l.o.CacheDir, cacheKey(path, st, &l.o))
	if b, err := os.ReadFile(cp); err == nil {
		if px, err := decodeCache(b); err == nil && px.w >= l.o.Size && px.h >= l.o.Size {
			l.hits.Add(1)
			return px, nil
		}
	}
	l.decoded.Add(1)
	px, err := prepare(path, &l.o)
	if err != nil {
		return nil, err
	}
	err = os.MkdirAll(filepath.Dir(cp), 0o755)
	if err == nil {
		err = fsutil.WriteFileAtomic(cp, encodeCache(px))
	}
	if err != nil {
		l.cacheWarn.Do(func() {
			slog.Warn("cannot write the data cache; continuing without it", "dir", l.o.CacheDir, "err", err)
		})
	} else {
		l.writes.Add(1)
	}
	return px, nil
}

// WarmCache preprocesses every item of ds into opts.CacheDir in one parallel
// pass, so that training starts with a warm cache; without a CacheDir it
// just checks that every image decodes. Unreadable images are counted and
// named in the returned Stats. progress, if not nil, is called after each
// image.
func WarmCache(ctx context.Context, ds *Dataset, opts Options, progress func(done, total int)) (Stats, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	l := &Loader{ds: ds, o: o, bad: map[int]bool{}}
	n := ds.Len()
	next := make(chan int)
	var (
		wg   sync.WaitGroup
		pmu  sync.Mutex // progress is called from one goroutine at a time
		done int
	)
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := l.load(ds.Items[i].Path); err != nil {
					l.markBad(i, err)
				}
				if progress != nil {
					pmu.Lock()
					done++
					progress(done, n)
					pmu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return l.Stats(), ctx.Err()
}
