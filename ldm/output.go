package ldm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"github.com/ldm-project/ldm/internal/fsutil"
)

// Format is an output image format.
type Format string

// The output formats.
const (
	PNG  Format = "png"
	JPEG Format = "jpeg"
	WebP Format = "webp" // lossless (VP8L): quality does not apply
)

// DefaultJPEGQuality is AUTOMATIC1111's default ("jpeg_quality": 80).
const DefaultJPEGQuality = 80

// ParseFormat accepts "png", "jpeg", "jpg" and "webp" (any case).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimPrefix(s, ".")) {
	case "png":
		return PNG, nil
	case "jpeg", "jpg":
		return JPEG, nil
	case "webp":
		return WebP, nil
	}
	return "", fmt.Errorf("image format %q: use png, jpeg or webp", s)
}

// FormatOf returns the format a file name's extension names.
func FormatOf(path string) (Format, bool) {
	f, err := ParseFormat(filepath.Ext(path))
	return f, err == nil
}

// Ext is the file extension of the format, with the dot.
func (f Format) Ext() string {
	switch f {
	case JPEG:
		return ".jpg"
	case WebP:
		return ".webp"
	}
	return ".png"
}

// EncodeImage writes img with its infotext the way AUTOMATIC1111 does: a PNG
// with a "parameters" text chunk, or a JPEG (quality 1–100) whose EXIF
// UserComment holds the infotext (UNICODE, UTF-16), or a lossless WebP
// with the same EXIF in its EXIF chunk (quality is ignored). The same image
// and infotext always give the same bytes.
func EncodeImage(w io.Writer, img image.Image, info Infotext, f Format, quality int) error {
	text := info.String()
	switch f {
	case PNG, "":
		return EncodePNG(w, img, []KV{{"parameters", text}})
	case JPEG:
		if quality == 0 {
			quality = DefaultJPEGQuality
		}
		if quality < 1 || quality > 100 {
			return fmt.Errorf("JPEG quality %d: want 1 to 100", quality)
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
			return err
		}
		app1, err := exifUserComment(text)
		if err != nil {
			return err
		}
		data := buf.Bytes() // SOI, then the encoder's segments: the EXIF segment goes right after SOI
		for _, part := range [][]byte{data[:2], app1, data[2:]} {
			if _, err := w.Write(part); err != nil {
				return err
			}
		}
		return nil
	case WebP:
		app1, err := exifUserComment(text)
		if err != nil {
			return err
		}
		return encodeWebP(w, img, app1)
	}
	return fmt.Errorf("image format %q: use png, jpeg or webp", f)
}

// SaveImage writes an image file atomically (a killed process leaves either
// the whole file or none).
func SaveImage(path string, img image.Image, info Infotext, f Format, quality int) error {
	return fsutil.WriteAtomic(path, func(w io.Writer) error { return EncodeImage(w, img, info, f, quality) })
}

// Save writes the result to path (see SaveImage).
func (r Result) Save(path string, f Format, quality int) error {
	return SaveImage(path, r.Image, r.Infotext, f, quality)
}

// ReadParameters returns the generation parameters stored in a PNG
// ("parameters" text chunk), JPEG (EXIF UserComment, else a COM segment) or
// WebP (EXIF chunk).
func ReadParameters(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, 512<<20))
	if err != nil {
		return "", err
	}
	switch {
	case bytes.HasPrefix(data, pngSignature):
		text, err := ReadPNGText(bytes.NewReader(data))
		if err != nil {
			return "", err
		}
		if p, ok := text["parameters"]; ok {
			return p, nil
		}
		return "", ErrNoParameters
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8}):
		return jpegParameters(data)
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		tiff, err := webpChunk(data, "EXIF")
		if err != nil {
			return "", ErrNoParameters
		}
		if p, ok := exifComment(bytes.TrimPrefix(tiff, []byte("Exif\x00\x00"))); ok {
			return p, nil
		}
		return "", ErrNoParameters
	}
	return "", errors.New("not a PNG, JPEG or WebP file")
}

// ReadParametersFile is ReadParameters on a file.
func ReadParametersFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s, err := ReadParameters(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ErrNoParameters: the image holds no generation parameters.
var ErrNoParameters = errors.New("no generation parameters in the image (no \"parameters\" chunk or EXIF UserComment)")

// EXIF tags and the UserComment character-code prefix (EXIF 2.3, §4.6.5).
const (
	tagExifIFD     = 0x8769
	tagUserComment = 0x9286
	typeLong       = 4
	typeUndefined  = 7
)

var unicodePrefix = []byte("UNICODE\x00")

// exifUserComment builds a JPEG APP1 segment whose EXIF holds one
// UserComment: "UNICODE\0" and the text in big-endian UTF-16, as piexif's
// UserComment.dump(text, encoding="unicode") writes it for AUTOMATIC1111.
func exifUserComment(text string) ([]byte, error) {
	comment := append([]byte(nil), unicodePrefix...)
	for _, u := range utf16.Encode([]rune(text)) {
		comment = binary.BigEndian.AppendUint16(comment, u)
	}
	be := binary.BigEndian
	tiff := []byte("MM\x00\x2a")
	tiff = be.AppendUint32(tiff, 8) // IFD0 right after the header
	// IFD0: one entry pointing at the Exif IFD, which follows at 8+2+12+4 = 26.
	tiff = be.AppendUint16(tiff, 1)
	tiff = be.AppendUint16(tiff, tagExifIFD)
	tiff = be.AppendUint16(tiff, typeLong)
	tiff = be.AppendUint32(tiff, 1)
	tiff = be.AppendUint32(tiff, 26)
	tiff = be.AppendUint32(tiff, 0)
	// Exif IFD: the UserComment, its data at 26+2+12+4 = 44.
	tiff = be.AppendUint16(tiff, 1)
	tiff = be.AppendUint16(tiff, tagUserComment)
	tiff = be.AppendUint16(tiff, typeUndefined)
	tiff = be.AppendUint32(tiff, uint32(len(comment)))
	tiff = be.AppendUint32(tiff, 44)
	tiff = be.AppendUint32(tiff, 0)
	tiff = append(tiff, comment...)
	payload := append([]byte("Exif\x00\x00"), tiff...)
	if len(payload)+2 > 0xFFFF {
		return nil, fmt.Errorf("infotext of %d characters does not fit in a JPEG EXIF segment (64 KB)", len(text))
	}
	seg := []byte{0xFF, 0xE1}
	seg = be.AppendUint16(seg, uint16(len(payload)+2))
	return append(seg, payload...), nil
}

// jpegParameters walks a JPEG's marker segments up to the image data and
// returns the EXIF UserComment, or the first COM segment's text.
func jpegParameters(data []byte) (string, error) {
	com := ""
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xFF {
			return "", errors.New("corrupt JPEG: marker expected")
		}
		marker := data[i+1]
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 || marker == 0xFF {
			i += 2
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan, end of image
			break
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return "", errors.New("truncated JPEG segment")
		}
		body := data[i+4 : i+2+n]
		switch {
		case marker == 0xE1 && bytes.HasPrefix(body, []byte("Exif\x00\x00")):
			if s, ok := exifComment(body[6:]); ok {
				return s, nil
			}
		case marker == 0xFE && com == "":
			com = string(body)
		}
		i += 2 + n
	}
	if com != "" {
		return com, nil
	}
	return "", ErrNoParameters
}

// exifComment finds the UserComment in a TIFF-structured EXIF block.
func exifComment(tiff []byte) (string, bool) {
	if len(tiff) < 8 {
		return "", false
	}
	var bo binary.ByteOrder
	switch string(tiff[:2]) {
	case "MM":
		bo = binary.BigEndian
	case "II":
		bo = binary.LittleEndian
	default:
		return "", false
	}
	entry := func(ifd int, tag uint16) (typ uint16, count, value uint32, ok bool) {
		if ifd < 8 || ifd+2 > len(tiff) {
			return 0, 0, 0, false
		}
		n := int(bo.Uint16(tiff[ifd:]))
		for k := 0; k < n; k++ {
			e := ifd + 2 + 12*k
			if e+12 > len(tiff) {
				return 0, 0, 0, false
			}
			if bo.Uint16(tiff[e:]) == tag {
				return bo.Uint16(tiff[e+2:]), bo.Uint32(tiff[e+4:]), bo.Uint32(tiff[e+8:]), true
			}
		}
		return 0, 0, 0, false
	}
	_, _, exifIFD, ok := entry(int(bo.Uint32(tiff[4:])), tagExifIFD)
	if !ok {
		return "", false
	}
	typ, count, off, ok := entry(int(exifIFD), tagUserComment)
	if !ok || typ != typeUndefined || count < 8 || int(off)+int(count) > len(tiff) {
		return "", false
	}
	c := tiff[off : off+count]
	prefix, body := c[:8], c[8:]
	switch {
	case bytes.Equal(prefix, unicodePrefix):
		u := make([]uint16, len(body)/2)
		for i := range u {
			u[i] = bo.Uint16(body[2*i:])
		}
		return string(utf16.Decode(u)), true
	case bytes.Equal(prefix, []byte("ASCII\x00\x00\x00")), bytes.Equal(prefix, make([]byte, 8)):
		return string(bytes.TrimRight(body, "\x00")), true
	}
	return "", false
}
