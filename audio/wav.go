package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Clip is decoded audio: one slice per channel, samples in [−1, 1].
type Clip struct {
	Rate     int
	Channels [][]float64
}

// Mono averages the channels.
func (c *Clip) Mono() []float64 {
	if len(c.Channels) == 1 {
		return c.Channels[0]
	}
	out := make([]float64, len(c.Channels[0]))
	for _, ch := range c.Channels {
		for i, v := range ch {
			out[i] += v / float64(len(c.Channels))
		}
	}
	return out
}

// Duration is the clip's length in seconds.
func (c *Clip) Duration() float64 {
	if len(c.Channels) == 0 || c.Rate == 0 {
		return 0
	}
	return float64(len(c.Channels[0])) / float64(c.Rate)
}

// SampleFormat is how WriteWAV stores samples.
type SampleFormat int

const (
	PCM16   SampleFormat = iota // 16-bit integer PCM (format tag 1)
	Float32                     // 32-bit IEEE float (format tag 3)
)

// ParseSampleFormat reads "pcm16" / "s16" / "16" or "float32" / "f32" / "32f".
func ParseSampleFormat(s string) (SampleFormat, error) {
	switch s {
	case "pcm16", "s16", "16", "":
		return PCM16, nil
	case "float32", "f32", "32f":
		return Float32, nil
	}
	return 0, fmt.Errorf("sample format %q: give pcm16 or float32", s)
}

// WriteWAV writes a RIFF/WAVE file of the given channels (equal lengths).
// PCM16 rounds and clips at full scale.
func WriteWAV(w io.Writer, rate int, f SampleFormat, channels ...[]float64) error {
	if len(channels) == 0 || len(channels) > 16 {
		return fmt.Errorf("%d channels: give 1–16", len(channels))
	}
	n := len(channels[0])
	for _, c := range channels {
		if len(c) != n {
			return errors.New("channels of different lengths")
		}
	}
	bits, tag := 16, uint16(1)
	if f == Float32 {
		bits, tag = 32, 3
	}
	nc := len(channels)
	block := nc * bits / 8
	dataLen := n * block
	if uint64(dataLen)+36 > math.MaxUint32 {
		return errors.New("too long for a WAV file (4 GB)")
	}
	le := binary.LittleEndian
	h := []byte("RIFF")
	h = le.AppendUint32(h, uint32(36+dataLen))
	h = append(h, "WAVEfmt "...)
	h = le.AppendUint32(h, 16)
	h = le.AppendUint16(h, tag)
	h = le.AppendUint16(h, uint16(nc))
	h = le.AppendUint32(h, uint32(rate))
	h = le.AppendUint32(h, uint32(rate*block))
	h = le.AppendUint16(h, uint16(block))
	h = le.AppendUint16(h, uint16(bits))
	h = append(h, "data"...)
	h = le.AppendUint32(h, uint32(dataLen))
	body := make([]byte, 0, dataLen)
	for i := range n {
		for _, c := range channels {
			v := c[i]
			if f == Float32 {
				body = le.AppendUint32(body, math.Float32bits(float32(v)))
				continue
			}
			s := math.Round(v * 32767)
			s = math.Max(-32768, math.Min(32767, s))
			body = le.AppendUint16(body, uint16(int16(s)))
		}
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// ReadWAV decodes a RIFF/WAVE file: integer PCM of 8, 16, 24 or 32 bits,
// or IEEE float of 32 or 64 bits, plain or WAVE_FORMAT_EXTENSIBLE.
func ReadWAV(r io.Reader) (*Clip, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<31))
	if err != nil {
		return nil, err
	}
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, errors.New("not a WAV file (no RIFF/WAVE header)")
	}
	le := binary.LittleEndian
	var (
		tag, nc, bits uint16
		rate          uint32
		haveFmt       bool
		samples       []byte
		haveData      bool
	)
	for i := 12; i+8 <= len(data); {
		id, size := string(data[i:i+4]), int(le.Uint32(data[i+4:]))
		body := data[i+8:]
		if size > len(body) {
			if id != "data" {
				return nil, fmt.Errorf("WAV chunk %q runs past the end of the file", id)
			}
			size = len(body) // a truncated stream: keep what is there
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, errors.New("WAV fmt chunk too short")
			}
			tag, nc, rate, bits = le.Uint16(body), le.Uint16(body[2:]), le.Uint32(body[4:]), le.Uint16(body[14:])
			if tag == 0xFFFE && size >= 26 {
				tag = le.Uint16(body[24:]) // the sub-format GUID starts with the format tag
			}
			haveFmt = true
		case "data":
			samples, haveData = body, true
		}
		i += 8 + size + size%2
	}
	if !haveFmt || !haveData {
		return nil, errors.New("WAV file without a fmt or data chunk")
	}
	if nc == 0 || rate == 0 {
		return nil, fmt.Errorf("WAV file with %d channels at %d Hz", nc, rate)
	}
	width := int(bits) / 8
	ok := tag == 1 && (bits == 8 || bits == 16 || bits == 24 || bits == 32) || tag == 3 && (bits == 32 || bits == 64)
	if !ok || width*8 != int(bits) {
		return nil, fmt.Errorf("WAV sample format %d with %d bits is not supported: give PCM 8/16/24/32 or float 32/64", tag, bits)
	}
	frames := len(samples) / (width * int(nc))
	c := &Clip{Rate: int(rate), Channels: make([][]float64, nc)}
	for ch := range c.Channels {
		c.Channels[ch] = make([]float64, frames)
	}
	for i := range frames {
		for ch := range int(nc) {
			s := samples[(i*int(nc)+ch)*width:]
			var v float64
			switch {
			case tag == 3 && bits == 32:
				v = float64(math.Float32frombits(le.Uint32(s)))
			case tag == 3:
				v = math.Float64frombits(le.Uint64(s))
			case bits == 8:
				v = (float64(s[0]) - 128) / 128
			case bits == 16:
				v = float64(int16(le.Uint16(s))) / 32768
			case bits == 24:
				v = float64(int32(uint32(s[0])<<8|uint32(s[1])<<16|uint32(s[2])<<24)>>8) / (1 << 23)
			default:
				v = float64(int32(le.Uint32(s))) / (1 << 31)
			}
			c.Channels[ch][i] = v
		}
	}
	return c, nil
}

// Resample converts x from rate `from` to rate `to` by windowed-sinc
// interpolation (a Hann-windowed sinc of 16 zero crossings, cut-off at the
// lower Nyquist frequency): good enough to bring an input clip to the
// model's rate.
func Resample(x []float64, from, to int) []float64 {
	if from == to || len(x) == 0 {
		return x
	}
	n := int(int64(len(x)) * int64(to) / int64(from))
	out := make([]float64, n)
	ratio := float64(from) / float64(to)
	cut := math.Min(1, 1/ratio) // relative to the input Nyquist
	const zeros = 16
	half := int(math.Ceil(zeros / cut))
	parallel(n, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			pos := float64(i) * ratio
			c := int(math.Floor(pos))
			var s, ws float64
			for j := c - half + 1; j <= c+half; j++ {
				if j < 0 || j >= len(x) {
					continue
				}
				d := (pos - float64(j)) * cut
				if math.Abs(d) >= zeros {
					continue
				}
				k := cut * sinc(d) * (0.5 + 0.5*math.Cos(math.Pi*d/zeros))
				s += k * x[j]
				ws += k
			}
			if ws != 0 {
				out[i] = s * cut / ws
			}
		}
	})
	return out
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}
