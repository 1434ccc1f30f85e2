package ldm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"io"

	"github.com/HugoSmits86/nativewebp"
)

// encodeWebP writes img as a lossless WebP (VP8L, from nativewebp: pure
// Go, no dependencies) in the extended container (VP8X) with an EXIF
// chunk, which holds the TIFF data of app1, a JPEG APP1 EXIF segment from
// exifUserComment, so the infotext travels as it does in a JPEG.
func encodeWebP(w io.Writer, img image.Image, app1 []byte) error {
	var buf bytes.Buffer
	if err := nativewebp.Encode(&buf, img, nil); err != nil {
		return fmt.Errorf("encoding WebP: %w", err)
	}
	vp8l, err := webpChunk(buf.Bytes(), "VP8L")
	if err != nil {
		return err
	}
	if len(vp8l) < 5 || vp8l[0] != 0x2f {
		return fmt.Errorf("encoding WebP: the encoder wrote no VP8L header")
	}
	bits := binary.LittleEndian.Uint32(vp8l[1:5])
	wm1, hm1 := bits&0x3fff, (bits>>14)&0x3fff
	tiff := app1[10:] // past FF E1, the length and "Exif\0\0"
	// EXIF only: VP8L carries its own alpha, and golang.org/x/image/webp
	// refuses a VP8L image whose VP8X also announces alpha.
	flags := byte(0x08)
	vp8x := []byte{flags, 0, 0, 0, byte(wm1), byte(wm1 >> 8), byte(wm1 >> 16), byte(hm1), byte(hm1 >> 8), byte(hm1 >> 16)}
	var body bytes.Buffer
	body.WriteString("WEBP")
	for _, c := range []struct {
		id   string
		data []byte
	}{{"VP8X", vp8x}, {"VP8L", vp8l}, {"EXIF", tiff}} {
		body.WriteString(c.id)
		_ = binary.Write(&body, binary.LittleEndian, uint32(len(c.data)))
		body.Write(c.data)
		if len(c.data)%2 == 1 {
			body.WriteByte(0)
		}
	}
	hdr := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(body.Len()))...)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err = w.Write(body.Bytes())
	return err
}

// webpChunk returns the payload of a WebP file's first chunk named id.
func webpChunk(data []byte, id string) ([]byte, error) {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return nil, fmt.Errorf("not a WebP file")
	}
	for p := 12; p+8 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[p+4 : p+8]))
		if p+8+n > len(data) {
			break
		}
		if string(data[p:p+4]) == id {
			return data[p+8 : p+8+n], nil
		}
		p += 8 + n + n%2
	}
	return nil, fmt.Errorf("WebP file without a %s chunk", id)
}
