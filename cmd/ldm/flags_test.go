package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

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

// The request flags restate no library default: each defaults to the unset
// value and its help quotes Request.Defaults; --mask-blur stays unset
// (the library's default) unless given, and 0 is no blur.
func TestRequestFlagsTakeTheLibrarysDefaults(t *testing.T) {
	d := libraryDefaults()
	var r requestFlags
	fs := pflag.NewFlagSet("req", pflag.ContinueOnError)
	r.register(fs)
	for name, want := range map[string]string{
		"steps": fmt.Sprintf("(default %d)", d.Steps), "cfg": fmt.Sprintf("(default %g;", d.GuidanceScale),
		"sampler": "(default " + d.Sampler + ")", "strength": fmt.Sprintf("(default %g)", d.Strength),
		"mask-blur": fmt.Sprintf("(default %d)", *d.MaskBlur), "noise": "(default " + d.Noise + ")",
		"batch-size": fmt.Sprintf("(default %d)", d.BatchSize), "batch-count": fmt.Sprintf("(default %d)", d.BatchCount),
	} {
		f := fs.Lookup(name)
		if f == nil || !strings.Contains(f.Usage, want) {
			t.Errorf("--%s help does not quote the library default %q: %v", name, want, f)
		}
		if f != nil && f.DefValue != "" && f.DefValue != "0" {
			t.Errorf("--%s defaults to %q, not the unset value", name, f.DefValue)
		}
	}
	if r.req.MaskBlur != nil {
		t.Errorf("--mask-blur not given is %d, want unset", *r.req.MaskBlur)
	}
	if err := fs.Parse([]string{"--mask-blur", "0"}); err != nil {
		t.Fatal(err)
	}
	if r.req.MaskBlur == nil || *r.req.MaskBlur != 0 {
		t.Errorf("--mask-blur 0 is %v, want 0 (no blur)", r.req.MaskBlur)
	}
}
