package app

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ldm-project/ldm/ldm"
)

// fuzzDecode checks one API family's JSON decoding on arbitrary bodies: it
// must not panic, a body it refuses is a 400 naming a field, and a request
// it accepts goes through Defaults and Validate, which answer a 400 or
// accept it.
func fuzzDecode(f *testing.F, seeds []string, decode func(s *Server, body []byte) (ldm.Request, error)) {
	for _, sd := range seeds {
		f.Add([]byte(sd))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	s, err := New(fake(), Config{Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.hardCancel(); _ = s.Shutdown(f.Context()) })
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decode(s, body)
		if err != nil {
			if st := statusOf(err); st != http.StatusBadRequest {
				t.Fatalf("decode error %v answers %d, want 400", err, st)
			}
			if field, _ := ldm.IsFieldError(err); field == "" {
				t.Fatalf("decode error %v names no field", err)
			}
			return
		}
		req.Defaults(64)
		if err := req.Validate(s.cfg.Limits, 8); err != nil {
			if st := statusOf(err); st != http.StatusBadRequest {
				t.Fatalf("validation error %v answers %d, want 400", err, st)
			}
		}
	})
}

func FuzzDecodeNative(f *testing.F) {
	tinyPNG := pngB64(f, blank(8, 8))
	fuzzDecode(f, []string{
		`{"prompt":"a cat","steps":4,"width":64,"height":64,"seed":7,"sampler":"Euler a","loras":[{"name":"x","weight":0.5}]}`,
		`{"prompt":"a cat","init_image":"` + tinyPNG + `","strength":0.5,"mask":"` + tinyPNG + `"}`,
		`{"prompt":1}`, `{"steps":"x"}`, `[]`, `null`, `{"loras":"x"}`,
	}, func(_ *Server, body []byte) (ldm.Request, error) { return decodeNative(body) })
}

func FuzzDecodeA1111(f *testing.F) {
	tinyPNG := pngB64(f, blank(8, 8))
	fuzzDecode(f, []string{
		`{"prompt":"a cat","steps":"4","cfg_scale":"7.5","width":64.0,"height":64,"seed":-1,"sampler_name":"DPM++ 2M","scheduler":"karras","n_iter":2}`,
		`{"prompt":"a cat","override_settings":{"CLIP_stop_at_last_layers":2,"sd_model_checkpoint":"fake"}}`,
		`{"prompt":"x","init_images":["data:image/png;base64,` + tinyPNG + `"],"mask":"` + tinyPNG + `","inpainting_mask_invert":1,"mask_blur":0}`,
		`{"prompt":"x","init_images":[""]}`, `{"seed":1e400}`, `{"cfg_scale":"NaN"}`,
	}, func(s *Server, body []byte) (ldm.Request, error) {
		var ar a1111Request
		if err := unmarshal(body, &ar); err != nil {
			return ldm.Request{}, err
		}
		return s.a1111ToRequest(&ar, len(body)%2 == 0)
	})
}

func FuzzDecodeOpenAI(f *testing.F) {
	fuzzDecode(f, []string{
		`{"prompt":"a cat","n":2,"size":"64x64","response_format":"b64_json","model":"dall-e-3"}`,
		`{"prompt":"a cat","size":"auto","seed":"5","steps":4,"guidance_scale":3}`,
		`{"size":"x"}`, `{"response_format":"gif"}`, `{"model":"nope"}`,
	}, func(s *Server, body []byte) (ldm.Request, error) {
		req, _, err := s.decodeOpenAI(body)
		return req, err
	})
}
