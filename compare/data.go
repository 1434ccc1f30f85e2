package compare

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"os"
	"path/filepath"

	"github.com/disintegration/imaging"

	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/train"
)

// imageSet is n NCHW images in [-1,1] held in memory, with a category label
// each ("" when the dataset has none), the caption and the image's string
// metadata fields (the labels a classifier head predicts).
type imageSet struct {
	N, Size    int
	X          []float32
	Categories []string
	Captions   []string
	Meta       []map[string]string
}

func (s *imageSet) image(i int) []float32 {
	per := 3 * s.Size * s.Size
	return s.X[i*per : (i+1)*per]
}

// gather returns images idx back to back.
func (s *imageSet) gather(idx []int) []float32 {
	per := 3 * s.Size * s.Size
	out := make([]float32, 0, len(idx)*per)
	for _, i := range idx {
		out = append(out, s.X[i*per:(i+1)*per]...)
	}
	return out
}

// subset keeps images idx (evenly spaced ones when more than limit > 0).
func (s *imageSet) subset(idx []int, limit int) *imageSet {
	if limit > 0 && len(idx) > limit {
		kept := make([]int, limit)
		for i := range kept {
			kept[i] = idx[i*len(idx)/limit]
		}
		idx = kept
	}
	out := &imageSet{N: len(idx), Size: s.Size, X: s.gather(idx)}
	for _, i := range idx {
		out.Categories = append(out.Categories, s.Categories[i])
		out.Captions = append(out.Captions, s.Captions[i])
		out.Meta = append(out.Meta, s.Meta[i])
	}
	return out
}

// loadSplit reads one split of an image folder and the string fields of
// each image's metadata.jsonl row ("category" is the latent plots' colour). With a limit it keeps
// evenly spaced images in file order, so that a subset of a folder sorted by
// category still spans every category.
func loadSplit(dir string, size int, split string, limit int) (*imageSet, error) {
	ds, err := train.LoadImageFolder(dir, size, split)
	if err != nil {
		return nil, err
	}
	all := len(ds.Examples)
	n := all
	if limit > 0 {
		n = min(n, limit)
	}
	if n == 0 {
		return nil, fmt.Errorf("compare: %s has no %q images", dir, split)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i * all / n
	}
	meta, _ := readMeta(filepath.Join(dir, "metadata.jsonl"))
	s := &imageSet{N: n, Size: size, X: ds.NCHW(idx), Categories: make([]string, n), Captions: make([]string, n), Meta: make([]map[string]string, n)}
	for i, j := range idx {
		m := meta[ds.Examples[j].File]
		if m == nil {
			m = map[string]string{}
		}
		s.Meta[i] = m
		s.Categories[i] = m["category"]
		s.Captions[i] = ds.Examples[j].Caption
	}
	return s, nil
}

// readMeta maps each file name of a metadata.jsonl (also by base name) to
// the string fields of its row.
func readMeta(path string) (map[string]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row map[string]any
		if json.Unmarshal(sc.Bytes(), &row) != nil {
			continue
		}
		file, _ := row["file_name"].(string)
		if file == "" {
			continue
		}
		fields := map[string]string{}
		for k, v := range row {
			if s, ok := v.(string); ok {
				fields[k] = s
			}
		}
		out[file] = fields
		out[filepath.Base(file)] = fields
	}
	return out, sc.Err()
}

// shapesSet draws n images of the procedural shapes set (data.Shape), the
// default out-of-distribution data for the anomaly score.
func shapesSet(n, size int, seed uint64) (*imageSet, error) {
	s := &imageSet{N: n, Size: size, X: make([]float32, 0, n*3*size*size), Categories: make([]string, n), Captions: make([]string, n), Meta: make([]map[string]string, n)}
	o := data.ShapesOptions{N: n, Size: max(size, 16), Seed: seed}
	for i := range n {
		img, _, err := data.Shape(o, i)
		if err != nil {
			return nil, err
		}
		s.X = append(s.X, toNCHW(img, size)...)
		s.Categories[i] = "shapes"
	}
	return s, nil
}

// toNCHW composites img over white, resizes it to size×size (Lanczos) and
// returns [3,size,size] values in [-1,1].
func toNCHW(img image.Image, size int) []float32 {
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	if img.Bounds().Dx() != size || img.Bounds().Dy() != size {
		img = imaging.Resize(img, size, size, imaging.Lanczos)
	}
	draw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, draw.Over)
	out := make([]float32, 3*size*size)
	for p := range size * size {
		for c := range 3 {
			out[c*size*size+p] = float32(dst.Pix[p*4+c])/127.5 - 1
		}
	}
	return out
}

// writeGrid writes images (NCHW, n of them) as a PNG grid of cols columns.
func writeGrid(path string, x []float32, n, size, cols int) error {
	clipped := make([]float32, len(x))
	for i, v := range x {
		clipped[i] = max(-1, min(1, v))
	}
	return writePNG(path, train.Grid(train.NCHWToImages(clipped, n, size, size), cols))
}

func writePNG(path string, img image.Image) error {
	return fsutil.WriteAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
}
