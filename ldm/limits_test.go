package ldm

import (
	"strings"
	"testing"
)

func TestLoRAsAndBreakChunksAreBounded(t *testing.T) {
	lora := func(n int) []LoRASpec {
		out := make([]LoRASpec, n)
		for i := range out {
			out[i] = LoRASpec{Name: "x", Weight: 1}
		}
		return out
	}
	for _, c := range []struct {
		name  string
		req   Request
		field string
	}{
		{"16 LoRAs", Request{Prompt: "a", LoRAs: lora(16)}, ""},
		{"17 LoRAs", Request{Prompt: "a", LoRAs: lora(17)}, "loras"},
		{"2000 LoRAs", Request{Prompt: "a", LoRAs: lora(2000)}, "loras"},
		{"tags count too", Request{Prompt: "a" + strings.Repeat(" <lora:x:0.5>", 10), LoRAs: lora(7)}, "loras"},
		{"32 chunks", Request{Prompt: strings.Repeat("a BREAK ", 31) + "b"}, ""},
		{"33 chunks", Request{Prompt: strings.Repeat("a BREAK ", 32) + "b"}, "prompt"},
		{"a 10 KB prompt of BREAKs", Request{Prompt: strings.Repeat("BREAK ", 1600)}, "prompt"},
		{"negative prompt", Request{Prompt: "a", NegativePrompt: strings.Repeat("BREAK ", 40)}, "negative_prompt"},
		{"custom limit", Request{Prompt: "a BREAK b BREAK c", LoRAs: lora(2)}, "prompt"},
	} {
		l := DefaultLimits
		if c.name == "custom limit" {
			l.MaxPromptChunks, l.MaxLoRAs = 2, 2
		}
		c.req.Defaults(64)
		err := c.req.Validate(l, 8)
		field, _ := IsFieldError(err)
		if field != c.field {
			t.Errorf("%s: %v, want a fault in %q", c.name, err, c.field)
		}
	}
}
