package train

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // decoders for the image folder
	_ "image/png"
	"log/slog"
	"math/rand/v2"
	"os"

	"github.com/disintegration/imaging"

	"github.com/ldm-project/ldm/data"
)

// Example is one image–caption pair held in memory as 8-bit RGB, composited
// onto the background, Size×Size, row-major HWC.
type Example struct {
	RGB     []uint8
	Caption string
	File    string
	Split   string // "train", "test", or "" when the folder does not say
}

// Dataset is an image folder loaded into memory.
type Dataset struct {
	Size     int
	Examples []Example
	Skipped  []string // files that could not be read, with the reason
	// Fingerprint is data.Dataset.Fingerprint of the examples read (names
	// and captions, in order).
	Fingerprint string
}

// ContentKey identifies the examples as training sees them: their
// Fingerprint and a hash of their pixels at Size, so that an image edited
// in place changes it too.
func (ds *Dataset) ContentKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00", ds.Size)
	for _, e := range ds.Examples {
		h.Write(e.RGB)
	}
	return ds.Fingerprint + "-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// LoadImageFolder reads an image–caption dataset in any layout data.Open
// knows (Hugging Face imagefolder metadata.jsonl/.csv, a CSV file, or kohya
// .txt captions beside the images; recursive) into memory, composited onto
// white and resized to size×size. split, when not empty, keeps only items
// whose "split" column is that split. Unreadable images are skipped with a
// warning naming them, and listed in Skipped.
func LoadImageFolder(dir string, size int, split string) (*Dataset, error) {
	d, err := data.Open(dir)
	if err != nil {
		return nil, err
	}
	if split != "" {
		all := d
		if d = d.Split(split); d.Len() == 0 {
			return nil, fmt.Errorf("%s (%s layout, %d items): no item has split %q", dir, all.Layout, all.Len(), split)
		}
	}
	return loadItems(d, size)
}

// LoadTrainingData reads a dataset as LoadImageFolder does and divides it
// with data.Dataset.TrainTest: the images to train on, and the held-out ones
// (nil when nothing is held out). Any layout data.Open reads trains as it is.
func LoadTrainingData(dir string, size int, holdout float64) (train, test *Dataset, err error) {
	d, err := data.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	tr, te, err := d.TrainTest(holdout)
	if err != nil {
		return nil, nil, err
	}
	if train, err = loadItems(tr, size); err != nil {
		return nil, nil, err
	}
	if te.Len() > 0 {
		if test, err = loadItems(te, size); err != nil {
			return nil, nil, fmt.Errorf("held-out images: %w", err)
		}
	}
	return train, test, nil
}

// loadItems decodes the items of d, skipping (and naming) unreadable ones.
func loadItems(d *data.Dataset, size int) (*Dataset, error) {
	ds := &Dataset{Size: size}
	read := &data.Dataset{Root: d.Root, Layout: d.Layout}
	for _, it := range d.Items {
		rgb, err := readRGB(it.Path, size)
		if err != nil {
			slog.Warn("skipping an unreadable image", "file", it.Path, "err", err)
			ds.Skipped = append(ds.Skipped, fmt.Sprintf("%s: %v", it.Name, err))
			continue
		}
		ds.Examples = append(ds.Examples, Example{RGB: rgb, Caption: it.Caption, File: it.Name, Split: it.Fields["split"]})
		read.Items = append(read.Items, it)
	}
	ds.Fingerprint = read.Fingerprint()
	if len(ds.Examples) == 0 {
		first := ""
		if len(ds.Skipped) > 0 {
			first = "; the first: " + ds.Skipped[0]
		}
		return nil, fmt.Errorf("%s (%s layout): none of the %d listed images could be read%s", d.Root, d.Layout, d.Len(), first)
	}
	if len(ds.Skipped) > 0 {
		slog.Warn("unreadable images skipped", "dataset", d.Root, "count", len(ds.Skipped))
	}
	return ds, nil
}

func readRGB(path string, size int) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, err
	}
	return compositeRGB(img, size), nil
}

// compositeRGB draws img over white at size×size (Lanczos when resizing).
func compositeRGB(img image.Image, size int) []uint8 {
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	if img.Bounds().Dx() != size || img.Bounds().Dy() != size {
		img = imaging.Resize(img, size, size, imaging.Lanczos)
	}
	draw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, draw.Over)
	out := make([]uint8, 0, size*size*3)
	for i := 0; i < len(dst.Pix); i += 4 {
		out = append(out, dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2])
	}
	return out
}

// Order is the deterministic data order of a run: sample position p (counted
// from the start of training) is example Perm(epoch)[p mod N] with epoch =
// p / N, each epoch a fresh permutation drawn from (seed, epoch). Resuming at
// a step therefore continues with exactly the examples an uninterrupted run
// would have seen.
type Order struct {
	N    int
	Seed uint64

	epoch int
	perm  []int
}

// Index returns the example index at sample position p.
func (o *Order) Index(p int) int {
	e := p / o.N
	if o.perm == nil || e != o.epoch {
		o.epoch = e
		o.perm = rand.New(rand.NewPCG(o.Seed, uint64(e)+0x9e3779b97f4a7c15)).Perm(o.N)
	}
	return o.perm[p%o.N]
}

// StepRand is the random source of one optimiser step's micro-batch: a
// function of (seed, step, micro) only, so that a resumed run draws the same
// noise, timesteps and caption dropout.
func StepRand(seed uint64, step, micro int) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x5851f42d4c957f2d, uint64(step)<<8|uint64(micro)))
}

// NCHW converts examples[idx] to float32 NCHW in [-1, 1].
func (ds *Dataset) NCHW(idx []int) []float32 {
	s := ds.Size
	out := make([]float32, len(idx)*3*s*s)
	for b, i := range idx {
		rgb := ds.Examples[i].RGB
		for p := 0; p < s*s; p++ {
			for c := 0; c < 3; c++ {
				out[(b*3+c)*s*s+p] = float32(rgb[p*3+c])/127.5 - 1
			}
		}
	}
	return out
}

// Normal fills n standard normal values from r.
func Normal(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}
