package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/ldm"
)

// TestEveryRequestFieldHasItsFlag: the field → flag names that error
// messages use come from the flags' registration (by the bound field's
// address); a Request field without a flag is one the CLI cannot set.
func TestEveryRequestFieldHasItsFlag(t *testing.T) {
	var missing []string
	rt := reflect.TypeFor[ldm.Request]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if _, ok := flagOfField[name]; !ok {
			missing = append(missing, name)
		}
	}
	// vae: the CLI picks its VAE when loading (--vae), servers per request.
	if want := []string{"vae"}; !slices.Equal(missing, want) {
		t.Errorf("Request fields without a flag: %q", missing)
	}
	for field, flag := range map[string]string{"guidance_scale": "--cfg", "negative_prompt": "--negative", "batch_count": "--batch-count", "mask_blur": "--mask-blur"} {
		if flagOfField[field] != flag {
			t.Errorf("%s: flag %q, want %q", field, flagOfField[field], flag)
		}
	}
}
