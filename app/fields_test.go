package app

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/ldm"
)

// TestAPIFieldsAreDeclaredOnce: every field an API tags with the Request
// field it stands for reaches that field, and a FieldError on that field is
// renamed back to the API's name, both from the one tag.
func TestAPIFieldsAreDeclaredOnce(t *testing.T) {
	for _, api := range []any{&a1111Request{}, &openAIRequest{}} {
		typ := reflect.TypeOf(api).Elem()
		body := map[string]any{}
		want := map[string]any{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			names, byHand := ldmTag(f)
			if len(names) == 0 || byHand {
				continue
			}
			jsonName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			var v any = float64(10 + i) // distinct per field
			if f.Type.Kind() == reflect.String {
				v = fmt.Sprintf("value of %s", jsonName)
			}
			body[jsonName], want[names[0]] = v, v
		}
		if len(want) < 5 {
			t.Fatalf("%s: only %d tagged fields", typ.Name(), len(want))
		}
		b, _ := json.Marshal(body)
		if err := json.Unmarshal(b, api); err != nil {
			t.Fatal(err)
		}
		req := ldm.Blank()
		copyFields(api, &req)
		got := requestJSON(req)
		for name, v := range want {
			if got[name] != v {
				t.Errorf("%s: Request.%s = %v, want %v (sent as %v)", typ.Name(), name, got[name], v, v)
			}
		}
	}
	for _, tc := range []struct {
		names      map[string]string
		field, api string
	}{
		{a1111Params, "guidance_scale", "cfg_scale"}, {a1111Params, "batch_count", "n_iter"},
		{a1111Params, "sampler", "sampler_name"}, {a1111Params, "schedule", "scheduler"},
		{a1111Params, "strength", "denoising_strength"}, {a1111Params, "steps", ""},
		{openAIParams, "batch_size", "n"}, {openAIParams, "width", "size"}, {openAIParams, "height", "size"},
		{openAIParams, "guidance_scale", ""},
	} {
		if got := tc.names[tc.field]; got != tc.api {
			t.Errorf("%s renames to %q, want %q", tc.field, got, tc.api)
		}
	}
}
