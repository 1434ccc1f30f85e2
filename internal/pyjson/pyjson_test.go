package pyjson

import (
	"encoding/json"
	"testing"
)

func TestSanitizeAcceptsPythonLiterals(t *testing.T) {
	in := `{"a": -Infinity, "b": Infinity, "c": NaN, "s": "NaN -Infinity \" Infinity"}`
	var v map[string]any
	if err := json.Unmarshal(Sanitize([]byte(in)), &v); err != nil {
		t.Fatal(err)
	}
	if v["a"].(float64) != -1e308 || v["b"].(float64) != 1e308 || v["c"] != nil {
		t.Errorf("got %v", v)
	}
	if v["s"] != `NaN -Infinity " Infinity` {
		t.Errorf("string changed: %q", v["s"])
	}
}
