package ldm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"reflect"
	"strings"
	"testing"
)

func TestInfotextRoundTripsThroughPNG(t *testing.T) {
	for _, tc := range []struct {
		name string
		it   Infotext
	}{
		{"plain", Infotext{Prompt: "a red apple", NegativePrompt: "blurry, low quality",
			Params: []KV{{"Steps", "20"}, {"Sampler", "Euler a"}, {"CFG scale", "7.5"}, {"Seed", "42"}, {"Size", "64x64"}, {"Model", "ldm-emoji"}}}},
		{"no negative, unicode, quoted value", Infotext{Prompt: "🍎 pomme (rouge:1.2)\nsecond line",
			Params: []KV{{"Steps", "5"}, {"Lora hashes", "a: 1, b: 2"}, {"Seed", "1"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := image.NewRGBA(image.Rect(0, 0, 4, 3))
			img.Set(1, 1, color.RGBA{200, 10, 10, 255})
			var buf bytes.Buffer
			if err := EncodePNG(&buf, img, []KV{{"parameters", tc.it.String()}}); err != nil {
				t.Fatal(err)
			}
			// Still a valid PNG with the same pixels.
			dec, err := png.Decode(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if r, _, _, _ := dec.At(1, 1).RGBA(); r>>8 != 200 {
				t.Fatalf("pixel changed: %v", dec.At(1, 1))
			}
			text, err := ReadPNGText(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseInfotext(text["parameters"])
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.it.String() {
				t.Fatalf("round trip:\n got %q\nwant %q", got.String(), tc.it.String())
			}
		})
	}
}

func TestInfotextMatchesA1111Layout(t *testing.T) {
	it := Infotext{Prompt: "cat", NegativePrompt: "dog", Params: []KV{{"Steps", "20"}, {"Sampler", "DPM++ 2M"}, {"Schedule type", "Karras"}, {"CFG scale", "7"}, {"Seed", "3"}, {"Size", "512x512"}}}
	want := "cat\nNegative prompt: dog\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3, Size: 512x512"
	if it.String() != want {
		t.Fatalf("got %q want %q", it.String(), want)
	}
	if v, _ := it.Get("Seed"); v != "3" {
		t.Fatalf("Seed = %q", v)
	}
}

func TestReadPNGTextRejectsGarbage(t *testing.T) {
	if _, err := ReadPNGText(bytes.NewReader([]byte("GIF89a...."))); err == nil {
		t.Fatal("want error for a non-PNG")
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(r *Request)
	}{
		{"prompt", func(r *Request) { r.Prompt = " " }},
		{"width", func(r *Request) { r.Width = 65 }},
		{"steps", func(r *Request) { r.Steps = 1000 }},
		{"batch_size", func(r *Request) { r.BatchSize = 99 }},
		{"noise", func(r *Request) { r.Noise = "mt" }},
		{"strength", func(r *Request) { r.Strength = 0.5 }},
		{"seed", func(r *Request) { r.Seed = -5 }},
		{"sampler", func(r *Request) { r.Sampler = "Euler b" }},
		{"schedule", func(r *Request) { r.Schedule = "cosine" }},
		{"mask", func(r *Request) { r.Mask = image.NewGray(image.Rect(0, 0, 8, 8)) }},
	} {
		r := Request{Prompt: "x"}
		r.Defaults(64)
		tc.mod(&r)
		field, ok := IsFieldError(r.Validate(DefaultLimits, 8))
		if !ok || field != tc.field {
			t.Errorf("%s: got field %q (ok=%v)", tc.field, field, ok)
		}
	}
	r := Request{Prompt: "x"}
	r.Defaults(64)
	if err := r.Validate(DefaultLimits, 8); err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
}

func TestInfotextRequestRebuildsTheRequest(t *testing.T) {
	it, err := ParseInfotext("a fox, (red:1.2)\nNegative prompt: blurry\nSteps: 12, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 123, Size: 512x768, Model hash: abc, Model: m, Denoising strength: 0.4, Mask blur: 2, Clip skip: 2, Eta: 0.3, RNG: CPU, Lora hashes: \"x: 1\"")
	if err != nil {
		t.Fatal(err)
	}
	got, err := it.Request()
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Prompt: "a fox, (red:1.2)", NegativePrompt: "blurry", Steps: 12, Sampler: "DPM++ 2M", Schedule: "Karras", GuidanceScale: 5.5,
		Seed: 123, Width: 512, Height: 768, Strength: 0.4, MaskBlur: Blur(2), ClipSkip: 2, Eta: 0.3, Noise: "torch"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	bad, _ := ParseInfotext("x\nSteps: many, Size: 5")
	if _, err := bad.Request(); err == nil || !strings.Contains(err.Error(), "Steps") || !strings.Contains(err.Error(), "Size") {
		t.Fatalf("malformed values: %v", err)
	}
}

// Mask blur has one representation everywhere: absent (nil) is the
// default, 0 is no blur. JSON, Defaults, the infotext written and the
// infotext read agree, with no front end translating.
func TestMaskBlurAbsentZeroAndSetMeanTheSameEverywhere(t *testing.T) {
	mask := image.NewGray(image.Rect(0, 0, 64, 64))
	var p Pipeline
	for _, c := range []struct {
		json string
		want int
	}{{`{}`, DefaultMaskBlur}, {`{"mask_blur":0}`, 0}, {`{"mask_blur":4}`, 4}, {`{"mask_blur":7}`, 7}} {
		var r Request
		if err := json.Unmarshal([]byte(c.json), &r); err != nil {
			t.Fatal(err)
		}
		r.Mask = mask
		r.Defaults(64)
		if r.MaskBlur == nil || *r.MaskBlur != c.want {
			t.Errorf("%s: mask blur after Defaults %v, want %d", c.json, r.MaskBlur, c.want)
			continue
		}
		s := p.infotext(r, 1).String()
		if !strings.Contains(s, fmt.Sprintf("Mask blur: %d", c.want)) {
			t.Errorf("%s: infotext %s", c.json, s)
		}
		it, err := ParseInfotext("a fox\n" + s[strings.Index(s, "Steps:"):])
		if err != nil {
			t.Fatal(err)
		}
		back, err := it.Request()
		if err != nil {
			t.Fatal(err)
		}
		back.Mask = mask
		back.Defaults(64)
		if back.MaskBlur == nil || *back.MaskBlur != c.want {
			t.Errorf("%s: infotext read back as mask blur %v, want %d", c.json, back.MaskBlur, c.want)
		}
	}
	r := Request{Prompt: "x", MaskBlur: Blur(-1)}
	r.Defaults(64)
	if err := r.Validate(DefaultLimits, 8); err == nil || !strings.Contains(err.Error(), "mask_blur") {
		t.Errorf("mask_blur -1: err %v", err)
	}
}
