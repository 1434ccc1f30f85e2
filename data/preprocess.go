package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/webp" // registers webp with image.Decode
)

// CropMode says how a resized image is cut to a square.
type CropMode string

const (
	CropCenter CropMode = "center"
	CropRandom CropMode = "random"
)

// filters are the resampling filters Options.Filter may name.
var filters = map[string]imaging.ResampleFilter{
	"lanczos":    imaging.Lanczos,
	"catmullrom": imaging.CatmullRom,
	"linear":     imaging.Linear,
	"box":        imaging.Box,
	"nearest":    imaging.NearestNeighbor,
}

// pixels is a preprocessed image: 8-bit RGB, row-major HWC. It is what the
// cache stores; crop offset, flip and scaling to [-1,1] are applied per sample.
type pixels struct {
	w, h int
	pix  []uint8
}

// prepare decodes the image at path and applies the deterministic part of the
// preprocessing: composite onto the background, resize so the shorter side is
// o.Size, and, for centre crops, crop.
func prepare(path string, o *Options) (*pixels, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := imaging.Decode(f, imaging.AutoOrientation(true))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, errors.New("empty image")
	}
	var out image.Image = composite(img, o.Background)
	w, h := b.Dx(), b.Dy()
	nw, nh := o.Size, o.Size
	if w < h {
		nh = max(o.Size, (h*o.Size+w/2)/w)
	} else {
		nw = max(o.Size, (w*o.Size+h/2)/h)
	}
	if nw != w || nh != h {
		out = imaging.Resize(out, nw, nh, filters[o.Filter])
	}
	if o.Crop == CropCenter && (nw != o.Size || nh != o.Size) {
		out = imaging.CropCenter(out, o.Size, o.Size)
	}
	return toRGB(out.(*image.NRGBA)), nil
}

// composite lays img over an opaque background colour:
// out = round((c·a + bg·(255−a)) / 255) per channel, on straight (non
// premultiplied) 8-bit values.
func composite(img image.Image, bg color.NRGBA) *image.NRGBA {
	n := imaging.Clone(img) // *image.NRGBA with bounds at the origin
	p := n.Pix
	for i := 0; i+3 < len(p); i += 4 {
		a := uint32(p[i+3])
		if a == 255 {
			continue
		}
		p[i+0] = blend(p[i+0], bg.R, a)
		p[i+1] = blend(p[i+1], bg.G, a)
		p[i+2] = blend(p[i+2], bg.B, a)
		p[i+3] = 255
	}
	return n
}

func blend(c, bg uint8, a uint32) uint8 {
	return uint8((uint32(c)*a + uint32(bg)*(255-a) + 127) / 255)
}

func toRGB(n *image.NRGBA) *pixels {
	w, h := n.Rect.Dx(), n.Rect.Dy()
	px := &pixels{w: w, h: h, pix: make([]uint8, 0, w*h*3)}
	for y := range h {
		row := n.Pix[y*n.Stride : y*n.Stride+w*4]
		for x := 0; x < len(row); x += 4 {
			px.pix = append(px.pix, row[x], row[x+1], row[x+2])
		}
	}
	return px
}

// unit maps an 8-bit value v to v/127.5 − 1 in [-1, 1].
var unit = func() (t [256]float32) {
	for v := range t {
		t[v] = float32(v)/127.5 - 1
	}
	return t
}()

// fill writes a size×size crop at (x0, y0) of px, optionally mirrored, into
// dst as CHW float32 in [-1, 1].
func (px *pixels) fill(dst []float32, size, x0, y0 int, flip bool) {
	plane := size * size
	for y := range size {
		src := px.pix[((y0+y)*px.w+x0)*3:]
		for x := range size {
			sx := x
			if flip {
				sx = size - 1 - x
			}
			s := src[sx*3 : sx*3+3]
			o := y*size + x
			dst[o] = unit[s[0]]
			dst[plane+o] = unit[s[1]]
			dst[2*plane+o] = unit[s[2]]
		}
	}
}

// The cache stores one file per (image file, preprocessing) under
// CacheDir/xx/<key>.rgb: a 16-byte header (magic, version, width, height),
// the RGB bytes and a CRC-32 of them. Entries are never rewritten in place:
// a changed file or changed settings give a new key.
const (
	cacheMagic   = "LDMC"
	cacheVersion = 1
)

// cacheKey names the cache entry for path under the settings that change
// what prepare produces; the file's size and mtime invalidate it when it is
// edited.
func cacheKey(path string, st fs.FileInfo, o *Options) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	h := sha256.New()
	fmt.Fprintf(h, "ldm-data-cache v%d\n%s\n%d %d\nsize=%d crop=%v bg=%d,%d,%d filter=%s",
		cacheVersion, abs, st.Size(), st.ModTime().UnixNano(),
		o.Size, o.Crop == CropCenter, o.Background.R, o.Background.G, o.Background.B, o.Filter)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func cachePath(dir, key string) string {
	return filepath.Join(dir, key[:2], key+".rgb")
}

func encodeCache(px *pixels) []byte {
	b := make([]byte, 16, 16+len(px.pix)+4)
	copy(b, cacheMagic)
	binary.LittleEndian.PutUint32(b[4:], cacheVersion)
	binary.LittleEndian.PutUint32(b[8:], uint32(px.w))
	binary.LittleEndian.PutUint32(b[12:], uint32(px.h))
	b = append(b, px.pix...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(px.pix))
}

func decodeCache(b []byte) (*pixels, error) {
	if len(b) < 20 || string(b[:4]) != cacheMagic || binary.LittleEndian.Uint32(b[4:]) != cacheVersion {
		return nil, errors.New("not a cache entry of this version")
	}
	w, h := int(binary.LittleEndian.Uint32(b[8:])), int(binary.LittleEndian.Uint32(b[12:]))
	if w <= 0 || h <= 0 || w > 1<<15 || h > 1<<15 || len(b) != 16+w*h*3+4 {
		return nil, errors.New("truncated cache entry")
	}
	pix := b[16 : 16+w*h*3]
	if crc32.ChecksumIEEE(pix) != binary.LittleEndian.Uint32(b[16+w*h*3:]) {
		return nil, errors.New("cache entry checksum mismatch")
	}
	return &pixels{w: w, h: h, pix: pix}, nil
}
