package ldm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

func TestJPEGCarriesInfotextInEXIFUserComment(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 16, 8))
	img.Set(3, 3, color.RGBA{200, 10, 10, 255})
	it := Infotext{Prompt: "🍎 pomme, (rouge:1.2)", NegativePrompt: "flou",
		Params: []KV{{"Steps", "20"}, {"Sampler", "Euler a"}, {"Seed", "7"}, {"Size", "16x8"}}}
	var buf bytes.Buffer
	if err := EncodeImage(&buf, img, it, JPEG, 90); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
		t.Fatalf("not a valid JPEG: %v", err)
	}
	// The segment piexif.dump({"Exif": {UserComment: dump(s, "unicode")}})
	// writes: APP1 "Exif\0\0", big-endian TIFF, IFD0 → Exif IFD → UserComment.
	head := "ffd8ffe1" + "0042" + hex.EncodeToString([]byte("Exif\x00\x00")) +
		"4d4d002a00000008" + "0001" + "8769" + "0004" + "00000001" + "0000001a" + "00000000" +
		"0001" + "9286" + "0007" + "0000000e" + "0000002c" + "00000000" +
		hex.EncodeToString([]byte("UNICODE\x00")) + "00610062" // "ab"
	var small bytes.Buffer
	if err := EncodeImage(&small, img, Infotext{Prompt: "ab"}, JPEG, 90); err != nil {
		t.Fatal(err)
	}
	// Infotext "ab\n" with no parameters: 8 + 6 bytes of comment, 66 of segment.
	want := head + "000a"
	if got := hex.EncodeToString(small.Bytes()[:len(want)/2]); got != want {
		t.Fatalf("EXIF segment\n got %s\nwant %s", got, want)
	}
	text, err := ReadParameters(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if text != it.String() {
		t.Fatalf("read back %q, want %q", text, it.String())
	}
	// Deterministic bytes.
	var again bytes.Buffer
	EncodeImage(&again, img, it, JPEG, 90)
	if !bytes.Equal(again.Bytes(), data) {
		t.Error("the same image and infotext gave other JPEG bytes")
	}
}

func TestReadParametersWithoutMetadata(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 2, 2))
	var p, j bytes.Buffer
	png.Encode(&p, img)
	jpeg.Encode(&j, img, nil)
	for name, b := range map[string][]byte{"png": p.Bytes(), "jpeg": j.Bytes()} {
		if _, err := ReadParameters(bytes.NewReader(b)); !errors.Is(err, ErrNoParameters) {
			t.Errorf("%s without metadata: err = %v, want ErrNoParameters", name, err)
		}
	}
	if _, err := ReadParameters(bytes.NewReader([]byte("GIF89a"))); err == nil {
		t.Error("a GIF must be refused")
	}
	// A COM segment is read when there is no EXIF comment.
	com := append([]byte{0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x07}, "hello"...)
	com = append(com, j.Bytes()[2:]...)
	if s, err := ReadParameters(bytes.NewReader(com)); err != nil || s != "hello" {
		t.Errorf("COM segment: %q, %v", s, err)
	}
	if _, err := ParseFormat("gif"); err == nil {
		t.Error("ParseFormat(gif) must fail")
	}
	if f, ok := FormatOf("x/y.JPG"); !ok || f != JPEG {
		t.Errorf("FormatOf(.JPG) = %v %v", f, ok)
	}
}
