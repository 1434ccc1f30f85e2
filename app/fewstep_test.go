package app

import (
	"net/http"
	"strings"
	"testing"
)

// Few-step generation through the A1111 API: TCD and SD-Turbo style (one
// step, SGM Uniform, CFG off) and LCM; infotext as A1111 records it.
func TestA1111FewStepSamplers(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"sampler_name": "LCM", "steps": 4}, "Steps: 4, Sampler: LCM, CFG scale: 1,"},
		{map[string]any{"sampler_name": "TCD", "steps": 4}, "Steps: 4, Sampler: TCD, CFG scale: 1,"},
		{map[string]any{"sampler_name": "Euler a", "scheduler": "SGM Uniform", "steps": 1}, "Steps: 1, Sampler: Euler a, Schedule type: SGM Uniform, CFG scale: 1,"},
		{map[string]any{"sampler_name": "DPM++ SDE Karras", "steps": 2}, "Steps: 2, Sampler: DPM++ SDE, Schedule type: Karras, CFG scale: 1,"},
	} {
		tc.body["prompt"], tc.body["width"], tc.body["height"], tc.body["seed"], tc.body["cfg_scale"] = "a boat", 32, 32, 7, 1
		r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", tc.body)
		if r.Status != http.StatusOK {
			t.Fatalf("%v: status %d: %s", tc.body, r.Status, r.Body)
		}
		_, params := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
		if !strings.Contains(params, tc.want) {
			t.Errorf("%v: infotext %q lacks %q", tc.body, params, tc.want)
		}
	}
}
