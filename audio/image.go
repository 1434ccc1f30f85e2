package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"sort"
)

// DefaultMaxValue is the magnitude a spectrogram image decodes to at pixel
// 0 when it carries no MAX_VALUE tag (Riffusion's audio_from_spectrogram_image
// default, which "shouldn't matter": the audio is normalised afterwards).
const DefaultMaxValue = 30e6

// Image converts mel frames ([frame][mel]) into Riffusion's spectrogram
// image (riffusion/util/image_util.py): width = frames, height = mels, low
// frequencies at the bottom, pixel = 255 − 255·(v/max)^power truncated to
// a byte, the same value in R, G and B. It returns the max used.
func Image(mel [][]float64, power float64) (*image.RGBA, float64) {
	var peak float64
	for _, f := range mel {
		for _, v := range f {
			peak = math.Max(peak, v)
		}
	}
	h := 0
	if len(mel) > 0 {
		h = len(mel[0])
	}
	img := image.NewRGBA(image.Rect(0, 0, len(mel), h))
	for t, f := range mel {
		for m, v := range f {
			var d float64
			if peak > 0 {
				d = math.Pow(math.Max(0, v)/peak, power)
			}
			p := uint8(255 - d*255) // numpy astype(uint8) truncates
			img.SetRGBA(t, h-1-m, color.RGBA{p, p, p, 255})
		}
	}
	return img, peak
}

// FromImage inverts Image: channel R (mono), 255 − x, /255, ^(1/power),
// ·maxValue; it returns [frame][mel] with frames = width, mels = height.
func FromImage(img image.Image, power, maxValue float64) [][]float64 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([][]float64, w)
	for t := range w {
		f := make([]float64, h)
		for m := range h {
			r, _, _, _ := img.At(b.Min.X+t, b.Min.Y+h-1-m).RGBA()
			v := 255 - float64(r>>8)
			f[m] = math.Pow(v/255, 1/power) * maxValue
		}
		out[t] = f
	}
	return out
}

// EXIF tags Riffusion stores in a spectrogram image (SpectrogramParams.ExifTags).
const (
	tagSampleRate       = 11000
	tagStereo           = 11005
	tagStepSizeMS       = 11010
	tagWindowDurationMS = 11020
	tagPaddedDurationMS = 11030
	tagNumFrequencies   = 11040
	tagMinFrequency     = 11050
	tagMaxFrequency     = 11060
	tagPowerForImage    = 11070
	tagMaxValue         = 11080
	// Our own, written only when they differ from Riffusion's fixed choice
	// (HTK, no norm), since Riffusion's exif_from_image rejects unknown
	// tags: 1 = slaney scale, 2 = slaney norm (bits).
	tagMelFlags = 11090
)

// ImageInfo is what a spectrogram image's EXIF says.
type ImageInfo struct {
	Params   Params
	MaxValue float64
	// Tagged is false when the image had no spectrogram tags (Params then
	// holds the defaults the caller passed).
	Tagged bool
}

// EncodePNG writes img as a PNG with an eXIf chunk holding p and maxValue
// in Riffusion's tags, as PIL's image.save(exif=…) does.
func EncodePNG(w io.Writer, img image.Image, p Params, maxValue float64) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	data := buf.Bytes()
	const sig = 8
	if len(data) < sig+8 {
		return errors.New("png encoder wrote no IHDR")
	}
	ihdrEnd := sig + 8 + int(binary.BigEndian.Uint32(data[sig:])) + 4
	exif := exifTIFF(p, maxValue)
	chunk := make([]byte, 0, 12+len(exif))
	chunk = binary.BigEndian.AppendUint32(chunk, uint32(len(exif)))
	chunk = append(chunk, "eXIf"...)
	chunk = append(chunk, exif...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	for _, part := range [][]byte{data[:ihdrEnd], chunk, data[ihdrEnd:]} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	return nil
}

type exifValue struct {
	tag   uint16
	ival  uint32
	fval  float64
	float bool
}

// exifTIFF builds a little-endian TIFF block with one IFD (PIL's layout:
// integers as SHORT below 65536 else LONG, floats as DOUBLE).
func exifTIFF(p Params, maxValue float64) []byte {
	b2i := map[bool]uint32{false: 0, true: 1}
	vals := []exifValue{
		{tag: tagSampleRate, ival: uint32(p.SampleRate)},
		{tag: tagStereo, ival: b2i[p.Stereo]},
		{tag: tagStepSizeMS, ival: uint32(p.StepSizeMS)},
		{tag: tagWindowDurationMS, ival: uint32(p.WindowDurationMS)},
		{tag: tagPaddedDurationMS, ival: uint32(p.PaddedDurationMS)},
		{tag: tagNumFrequencies, ival: uint32(p.NumFrequencies)},
		{tag: tagMinFrequency, ival: uint32(p.MinFrequency)},
		{tag: tagMaxFrequency, ival: uint32(p.MaxFrequency)},
		{tag: tagPowerForImage, fval: p.PowerForImage, float: true},
		{tag: tagMaxValue, fval: maxValue, float: true},
	}
	if flags := b2i[p.MelScale == "slaney"] | 2*b2i[p.MelNorm == "slaney"]; flags != 0 {
		vals = append(vals, exifValue{tag: tagMelFlags, ival: flags})
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i].tag < vals[j].tag })
	le := binary.LittleEndian
	out := []byte("II*\x00")
	out = le.AppendUint32(out, 8)
	out = le.AppendUint16(out, uint16(len(vals)))
	dataOff := 8 + 2 + 12*len(vals) + 4
	var extra []byte
	for _, v := range vals {
		out = le.AppendUint16(out, v.tag)
		switch {
		case v.float:
			out = le.AppendUint16(out, 12) // DOUBLE
			out = le.AppendUint32(out, 1)
			out = le.AppendUint32(out, uint32(dataOff+len(extra)))
			extra = le.AppendUint64(extra, math.Float64bits(v.fval))
		case v.ival < 1<<16:
			out = le.AppendUint16(out, 3) // SHORT
			out = le.AppendUint32(out, 1)
			out = le.AppendUint16(out, uint16(v.ival))
			out = le.AppendUint16(out, 0)
		default:
			out = le.AppendUint16(out, 4) // LONG
			out = le.AppendUint32(out, 1)
			out = le.AppendUint32(out, v.ival)
		}
	}
	out = le.AppendUint32(out, 0)
	return append(out, extra...)
}

// DecodePNG reads a spectrogram PNG and its eXIf tags; an image without
// them gets defaults and DefaultMaxValue, with Tagged false.
func DecodePNG(data []byte, defaults Params) (image.Image, ImageInfo, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, ImageInfo{}, fmt.Errorf("reading the spectrogram image: %w", err)
	}
	info := ImageInfo{Params: defaults, MaxValue: DefaultMaxValue}
	exif := pngChunk(data, "eXIf")
	if exif == nil {
		return img, info, nil
	}
	tags, err := readIFD0(exif)
	if err != nil {
		return nil, ImageInfo{}, fmt.Errorf("the image's EXIF: %w", err)
	}
	if _, ok := tags[tagSampleRate]; !ok {
		return img, info, nil
	}
	p := &info.Params
	geti := func(tag uint16, dst *int) {
		if v, ok := tags[tag]; ok {
			*dst = int(v)
		}
	}
	geti(tagSampleRate, &p.SampleRate)
	geti(tagStepSizeMS, &p.StepSizeMS)
	geti(tagWindowDurationMS, &p.WindowDurationMS)
	geti(tagPaddedDurationMS, &p.PaddedDurationMS)
	geti(tagNumFrequencies, &p.NumFrequencies)
	geti(tagMinFrequency, &p.MinFrequency)
	geti(tagMaxFrequency, &p.MaxFrequency)
	if v, ok := tags[tagStereo]; ok {
		p.Stereo = v != 0
	}
	if v, ok := tags[tagPowerForImage]; ok {
		p.PowerForImage = v
	}
	p.MelScale, p.MelNorm = "htk", ""
	if v, ok := tags[tagMelFlags]; ok {
		if int(v)&1 != 0 {
			p.MelScale = "slaney"
		}
		if int(v)&2 != 0 {
			p.MelNorm = "slaney"
		}
	}
	if v, ok := tags[tagMaxValue]; ok && v > 0 {
		info.MaxValue = v
	}
	info.Tagged = true
	return img, info, nil
}

// pngChunk returns the data of the first chunk of the given type.
func pngChunk(data []byte, typ string) []byte {
	for i := 8; i+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[i:]))
		if n < 0 || i+12+n > len(data) {
			return nil
		}
		if string(data[i+4:i+8]) == typ {
			return data[i+8 : i+8+n]
		}
		i += 12 + n
	}
	return nil
}

// readIFD0 reads the numeric tags of a TIFF block's first IFD (optionally
// behind an "Exif\0\0" prefix).
func readIFD0(b []byte) (map[uint16]float64, error) {
	b = bytes.TrimPrefix(b, []byte("Exif\x00\x00"))
	if len(b) < 8 {
		return nil, errors.New("too short for a TIFF header")
	}
	var bo binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return nil, errors.New("no TIFF byte-order mark")
	}
	off := int(bo.Uint32(b[4:]))
	if off < 8 || off+2 > len(b) {
		return nil, errors.New("IFD offset out of range")
	}
	n := int(bo.Uint16(b[off:]))
	if off+2+12*n > len(b) {
		return nil, errors.New("IFD runs past the end")
	}
	tags := map[uint16]float64{}
	for i := range n {
		e := b[off+2+12*i:]
		tag, typ, count := bo.Uint16(e), bo.Uint16(e[2:]), bo.Uint32(e[4:])
		if count != 1 {
			continue
		}
		ptr := func(size int) []byte {
			if size <= 4 {
				return e[8 : 8+size]
			}
			o := int(bo.Uint32(e[8:]))
			if o < 0 || o+size > len(b) {
				return nil
			}
			return b[o : o+size]
		}
		switch typ {
		case 1, 7: // BYTE, UNDEFINED
			tags[tag] = float64(e[8])
		case 3: // SHORT
			tags[tag] = float64(bo.Uint16(e[8:]))
		case 4: // LONG
			tags[tag] = float64(bo.Uint32(e[8:]))
		case 8: // SSHORT
			tags[tag] = float64(int16(bo.Uint16(e[8:])))
		case 9: // SLONG
			tags[tag] = float64(int32(bo.Uint32(e[8:])))
		case 11: // FLOAT
			tags[tag] = float64(math.Float32frombits(bo.Uint32(e[8:])))
		case 5, 10: // RATIONAL, SRATIONAL
			if v := ptr(8); v != nil && bo.Uint32(v[4:]) != 0 {
				if typ == 5 {
					tags[tag] = float64(bo.Uint32(v)) / float64(bo.Uint32(v[4:]))
				} else {
					tags[tag] = float64(int32(bo.Uint32(v))) / float64(int32(bo.Uint32(v[4:])))
				}
			}
		case 12: // DOUBLE
			if v := ptr(8); v != nil {
				tags[tag] = math.Float64frombits(bo.Uint64(v))
			}
		}
	}
	return tags, nil
}
