package ldm

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Infotext is the generation record AUTOMATIC1111 writes into a PNG's
// "parameters" text chunk: the prompt, an optional "Negative prompt:" line,
// and a line of "Key: value" pairs.
type Infotext struct {
	Prompt         string
	NegativePrompt string
	// Params keeps the pairs in order (Steps, Sampler, CFG scale, Seed, Size, …).
	Params []KV
}

// KV is one "Key: value" pair of an infotext.
type KV struct{ Key, Value string }

// Get returns a parameter's value.
func (it Infotext) Get(key string) (string, bool) {
	for _, kv := range it.Params {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// String formats the infotext exactly as AUTOMATIC1111 does; values that
// contain a comma, colon or quote are JSON-quoted.
func (it Infotext) String() string {
	var b strings.Builder
	b.WriteString(it.Prompt)
	if it.NegativePrompt != "" {
		b.WriteString("\nNegative prompt: ")
		b.WriteString(it.NegativePrompt)
	}
	b.WriteString("\n")
	for i, kv := range it.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		v := kv.Value
		if strings.ContainsAny(v, ",:\"\n") {
			v = strconv.Quote(v)
		}
		b.WriteString(kv.Key + ": " + v)
	}
	return b.String()
}

// ParseInfotext reads the AUTOMATIC1111 format back. The last line holding
// "Steps: " is the parameter line; lines before it are the prompt, up to a
// line starting with "Negative prompt: ".
func ParseInfotext(s string) (Infotext, error) {
	var it Infotext
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	last := len(lines) - 1
	if last < 0 || !strings.Contains(lines[last], "Steps: ") {
		it.Prompt = strings.TrimSpace(s)
		return it, errors.New("no parameter line (\"Steps: …\") found")
	}
	var prompt, neg []string
	inNeg := false
	for _, l := range lines[:last] {
		if after, ok := strings.CutPrefix(l, "Negative prompt: "); ok && !inNeg {
			inNeg = true
			l = after
		}
		if inNeg {
			neg = append(neg, l)
		} else {
			prompt = append(prompt, l)
		}
	}
	it.Prompt = strings.Join(prompt, "\n")
	it.NegativePrompt = strings.Join(neg, "\n")
	params, err := parseParamLine(lines[last])
	it.Params = params
	return it, err
}

func parseParamLine(line string) ([]KV, error) {
	var out []KV
	for len(strings.TrimSpace(line)) > 0 {
		line = strings.TrimLeft(line, " ,")
		colon := strings.Index(line, ": ")
		if colon < 0 {
			return out, fmt.Errorf("malformed parameter %q", line)
		}
		key := line[:colon]
		rest := line[colon+2:]
		var val string
		if strings.HasPrefix(rest, "\"") {
			// A quoted value: find the closing quote that Unquote accepts.
			end := -1
			for i := 1; i < len(rest); i++ {
				if rest[i] == '\\' {
					i++
					continue
				}
				if rest[i] == '"' {
					end = i
					break
				}
			}
			if end < 0 {
				return out, fmt.Errorf("unterminated quote in %q", key)
			}
			u, err := strconv.Unquote(rest[:end+1])
			if err != nil {
				return out, fmt.Errorf("parameter %q: %w", key, err)
			}
			val, rest = u, rest[end+1:]
		} else if i := strings.Index(rest, ", "); i >= 0 {
			val, rest = rest[:i], rest[i:]
		} else {
			val, rest = rest, ""
		}
		out = append(out, KV{key, val})
		line = rest
	}
	return out, nil
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// EncodePNG writes img as a PNG with the given text chunks (e.g.
// "parameters" → infotext) placed right after the header, as A1111 does.
// Latin-1 text goes into tEXt, anything else into an uncompressed UTF-8 iTXt.
func EncodePNG(w io.Writer, img image.Image, text []KV) error {
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.DefaultCompression}).Encode(&buf, img); err != nil {
		return err
	}
	data := buf.Bytes()
	// Signature (8) + IHDR chunk (4 len + 4 type + 13 data + 4 crc) = 33 bytes.
	const ihdrEnd = 33
	if _, err := w.Write(data[:ihdrEnd]); err != nil {
		return err
	}
	for _, kv := range text {
		typ, payload := textChunk(kv.Key, kv.Value)
		if err := writeChunk(w, typ, payload); err != nil {
			return err
		}
	}
	_, err := w.Write(data[ihdrEnd:])
	return err
}

func textChunk(key, value string) (string, []byte) {
	if isLatin1(value) && isLatin1(key) {
		b := append([]byte(key), 0)
		for _, r := range value {
			b = append(b, byte(r))
		}
		return "tEXt", b
	}
	// iTXt: keyword\0 compression-flag(0) method(0) language\0 translated\0 text
	b := append([]byte(key), 0, 0, 0, 0, 0)
	return "iTXt", append(b, value...)
}

func isLatin1(s string) bool {
	for _, r := range s {
		if r > 0xff {
			return false
		}
	}
	return utf8.ValidString(s)
}

func writeChunk(w io.Writer, typ string, payload []byte) error {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)))
	copy(hdr[4:], typ)
	crc := crc32.NewIEEE()
	crc.Write(hdr[4:])
	crc.Write(payload)
	var tail [4]byte
	binary.BigEndian.PutUint32(tail[:], crc.Sum32())
	for _, p := range [][]byte{hdr[:], payload, tail[:]} {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// ReadPNGText returns the text chunks (tEXt, zTXt, iTXt) of a PNG stream.
func ReadPNGText(r io.Reader) (map[string]string, error) {
	br := bufio.NewReader(r)
	sig := make([]byte, 8)
	if _, err := io.ReadFull(br, sig); err != nil || !bytes.Equal(sig, pngSignature) {
		return nil, errors.New("not a PNG file")
	}
	out := map[string]string{}
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return out, fmt.Errorf("truncated PNG: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		typ := string(hdr[4:])
		if n > 64<<20 {
			return out, fmt.Errorf("PNG chunk %q claims %d bytes", typ, n)
		}
		if typ == "IDAT" || typ == "IEND" {
			return out, nil
		}
		payload := make([]byte, n+4)
		if _, err := io.ReadFull(br, payload); err != nil {
			return out, fmt.Errorf("truncated PNG chunk %q: %w", typ, err)
		}
		payload = payload[:n]
		switch typ {
		case "tEXt":
			if k, v, ok := bytes.Cut(payload, []byte{0}); ok {
				rs := make([]rune, len(v))
				for i, c := range v {
					rs[i] = rune(c)
				}
				out[string(k)] = string(rs)
			}
		case "zTXt":
			if k, v, ok := bytes.Cut(payload, []byte{0}); ok && len(v) > 0 {
				if s, err := inflate(v[1:]); err == nil {
					out[string(k)] = s
				}
			}
		case "iTXt":
			k, rest, ok := bytes.Cut(payload, []byte{0})
			if !ok || len(rest) < 2 {
				continue
			}
			compressed := rest[0] == 1
			rest = rest[2:]
			_, rest, _ = bytes.Cut(rest, []byte{0}) // language
			_, rest, _ = bytes.Cut(rest, []byte{0}) // translated keyword
			if compressed {
				if s, err := inflate(rest); err == nil {
					out[string(k)] = s
				}
			} else {
				out[string(k)] = string(rest)
			}
		}
	}
}

func inflate(b []byte) (string, error) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	defer zr.Close()
	s, err := io.ReadAll(io.LimitReader(zr, 16<<20))
	return string(s), err
}

// Request returns the request an infotext records, as far as it goes:
// prompt, negative prompt, steps, sampler and schedule, CFG scale, seed,
// size, clip skip, eta, denoising strength and mask blur, and the noise
// generator ("RNG: CPU" is the torch generator). Unknown keys are ignored;
// a known key with a malformed value is an error.
func (it Infotext) Request() (Request, error) {
	r := Request{Prompt: it.Prompt, NegativePrompt: it.NegativePrompt}
	var errs []error
	num := func(key string, dst any) {
		v, ok := it.Get(key)
		if !ok {
			return
		}
		var err error
		switch d := dst.(type) {
		case *int:
			*d, err = strconv.Atoi(v)
		case *int64:
			*d, err = strconv.ParseInt(v, 10, 64)
		case *float64:
			*d, err = strconv.ParseFloat(v, 64)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a number", key, v))
		}
	}
	num("Steps", &r.Steps)
	num("CFG scale", &r.GuidanceScale)
	num("Seed", &r.Seed)
	num("Clip skip", &r.ClipSkip)
	num("Eta", &r.Eta)
	num("Denoising strength", &r.Strength)
	if _, ok := it.Get("Mask blur"); ok {
		r.MaskBlur = Blur(0) // "0" is an unblurred mask, as A1111 writes it
		num("Mask blur", r.MaskBlur)
	}
	r.Sampler, _ = it.Get("Sampler")
	r.VAE, _ = it.Get("VAE")
	r.Schedule, _ = it.Get("Schedule type")
	if v, ok := it.Get("Size"); ok {
		w, h, found := strings.Cut(v, "x")
		var e1, e2 error
		r.Width, e1 = strconv.Atoi(w)
		r.Height, e2 = strconv.Atoi(h)
		if !found || e1 != nil || e2 != nil {
			errs = append(errs, fmt.Errorf("Size: %q is not WIDTHxHEIGHT", v))
		}
	}
	switch v, _ := it.Get("RNG"); v {
	case "CPU":
		r.Noise = "torch"
	case "Philox":
		r.Noise = "philox"
	}
	if err := hiresFromInfotext(it, &r); err != nil {
		errs = append(errs, err)
	}
	return r, errors.Join(errs...)
}
