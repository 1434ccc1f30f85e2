package data

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// benchDataset is LDM_BENCH_DATA (for example an emoji set built by
// `ldm data emoji`) or 256 generated shapes.
func benchDataset(b *testing.B) *Dataset {
	b.Helper()
	dir := os.Getenv("LDM_BENCH_DATA")
	if dir == "" {
		dir = b.TempDir()
		if err := GenerateShapes(context.Background(), dir, ShapesOptions{N: 256, Size: 64}, nil); err != nil {
			b.Fatal(err)
		}
	}
	d, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkLoaderWarmCache64 measures the streaming loader at 64² with the
// cache warm: read entry, random flip, caption dropout, NCHW float32.
func BenchmarkLoaderWarmCache64(b *testing.B) {
	d := benchDataset(b)
	for _, bs := range []int{32, 128} {
		b.Run(fmt.Sprintf("batch%d", bs), func(b *testing.B) {
			o := Options{Size: 64, BatchSize: bs, Shuffle: true, Flip: true, CaptionDropout: 0.1, CacheDir: b.TempDir()}
			if _, err := WarmCache(context.Background(), d, o, nil); err != nil {
				b.Fatal(err)
			}
			l, err := NewLoader(context.Background(), d, o, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			l.Next()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := l.Next(); err != nil {
					b.Fatal(err)
				}
			}
			sec := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N)/sec, "batches/s")
			b.ReportMetric(float64(b.N*bs)/sec, "images/s")
			if st := l.Stats(); st.Decoded != 0 {
				b.Fatalf("%d images decoded with a warm cache", st.Decoded)
			}
		})
	}
}

// BenchmarkPrepare64 is the cold path per image: decode, composite, resize.
func BenchmarkPrepare64(b *testing.B) {
	d := benchDataset(b)
	o, _ := Options{Size: 64}.withDefaults()
	b.ResetTimer()
	for i := range b.N {
		if _, err := prepare(d.Items[i%d.Len()].Path, &o); err != nil {
			b.Fatal(err)
		}
	}
}
