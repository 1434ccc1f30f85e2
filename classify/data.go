package classify

import (
	stdctx "context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/ldm-project/ldm/data"
)

// TaskFields are the metadata fields each named task predicts.
var TaskFields = map[string][]string{
	"emoji":  {"subcategory", "category"},
	"shapes": {"shape", "color"},
}

// TaskChannels are the default stage widths of each task's classifier.
var TaskChannels = map[string][]int{
	"emoji":  {32, 64, 128, 128},
	"shapes": {16, 32, 64, 64},
}

// HeadsFor builds one head per field, its labels the sorted distinct values
// of that field over every item of ds (training and held-out alike, so that
// a held-out item never has an unknown label). An item without the field is
// an error naming it.
func HeadsFor(ds *data.Dataset, fields []string) ([]Head, error) {
	if len(fields) == 0 {
		return nil, errors.New("no label fields")
	}
	var heads []Head
	for _, f := range fields {
		seen := map[string]bool{}
		for _, it := range ds.Items {
			v := it.Fields[f]
			if v == "" {
				return nil, fmt.Errorf("dataset %s: item %s has no %q field (the labels of this classifier)", ds.Root, it.Name, f)
			}
			seen[v] = true
		}
		labels := make([]string, 0, len(seen))
		for v := range seen {
			labels = append(labels, v)
		}
		sort.Strings(labels)
		if len(labels) < 2 {
			return nil, fmt.Errorf("dataset %s: field %q has %d distinct value(s), a classifier needs at least 2", ds.Root, f, len(labels))
		}
		heads = append(heads, Head{Field: f, Labels: labels})
	}
	return heads, nil
}

// SplitHeldOut returns the training items (split "train") and the held-out
// ones (any other split). A dataset without held-out items is an error: the
// metrics of this package are measured on images no model trained on.
func SplitHeldOut(ds *data.Dataset) (trainSet, heldOut *data.Dataset, err error) {
	trainSet = ds.Split("train")
	heldOut = ds.Filter(func(it data.Item) bool { s := it.Fields["split"]; return s != "" && s != "train" })
	if heldOut.Len() == 0 {
		return nil, nil, fmt.Errorf("dataset %s has no held-out split (no metadata row with a \"split\" other than \"train\"); build it with a hold-out, e.g. `ldm data emoji --holdout 0.1`", ds.Root)
	}
	if trainSet.Len() == 0 {
		return nil, nil, fmt.Errorf("dataset %s has no items of split \"train\"", ds.Root)
	}
	return trainSet, heldOut, nil
}

// Labeled is a dataset held in memory as 8-bit RGB with integer labels.
type Labeled struct {
	Size int
	// Pixels holds the images row-major HWC, Size·Size·3 bytes each.
	Pixels []uint8
	// Labels[h][i] is image i's class under head h (-1: label unknown to
	// the head).
	Labels [][]int
	Items  []data.Item
}

// Len is the number of images.
func (l *Labeled) Len() int { return len(l.Items) }

// LoadLabeled decodes every item of ds at size×size (composited onto white,
// as the data loader prepares images for training) and maps its fields to
// the heads' class indices. Unreadable images are left out (the loader
// warns); cacheDir, when set, is the loader's preprocessed-image cache.
func LoadLabeled(ctx stdctx.Context, ds *data.Dataset, size int, heads []Head, cacheDir string) (*Labeled, error) {
	if ds.Len() == 0 {
		return nil, errors.New("no images to load")
	}
	l, err := data.NewLoader(ctx, ds, data.Options{Size: size, BatchSize: 64, Epochs: 1, CacheDir: cacheDir}, nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	out := &Labeled{Size: size, Labels: make([][]int, len(heads))}
	index := make([]map[string]int, len(heads))
	for h, hd := range heads {
		index[h] = map[string]int{}
		for i, v := range hd.Labels {
			index[h][v] = i
		}
	}
	for {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		hw := size * size
		for n := range b.Shape[0] {
			img := b.Images[n*3*hw : (n+1)*3*hw]
			for p := range hw {
				for c := range 3 {
					v := math.Round((float64(img[c*hw+p]) + 1) * 127.5)
					out.Pixels = append(out.Pixels, uint8(max(0, min(255, v))))
				}
			}
			it := b.Items[n]
			out.Items = append(out.Items, it)
			for h := range heads {
				k, ok := index[h][it.Fields[heads[h].Field]]
				if !ok {
					k = -1
				}
				out.Labels[h] = append(out.Labels[h], k)
			}
		}
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("dataset %s: none of the %d images could be read", ds.Root, ds.Len())
	}
	return out, nil
}

// NHWC returns images idx as float32 NHWC values in [-1, 1].
func (l *Labeled) NHWC(idx []int) []float32 {
	per := l.Size * l.Size * 3
	out := make([]float32, 0, len(idx)*per)
	for _, i := range idx {
		for _, v := range l.Pixels[i*per : (i+1)*per] {
			out = append(out, float32(v)/127.5-1)
		}
	}
	return out
}

// All returns every image as float32 NHWC values in [-1, 1].
func (l *Labeled) All() []float32 {
	idx := make([]int, l.Len())
	for i := range idx {
		idx[i] = i
	}
	return l.NHWC(idx)
}
