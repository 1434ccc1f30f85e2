// Package pyjson reads the JSON Python writes: the one helper every config
// reader shares, a leaf so that the model packages need not import weights.
package pyjson

import "bytes"

// Sanitize rewrites the non-standard literals Python's json module emits
// (NaN, Infinity, -Infinity) outside strings, so encoding/json accepts the
// file. diffusers writes them into real configs (e.g. DPMSolverMultistep's
// lambda_min_clipped = -inf). Infinities become ±1e308 and NaN becomes null.
func Sanitize(b []byte) []byte {
	if !bytes.Contains(b, []byte("Infinity")) && !bytes.Contains(b, []byte("NaN")) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			out = append(out, c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
			out = append(out, c)
		case bytes.HasPrefix(b[i:], []byte("-Infinity")):
			out = append(out, "-1e308"...)
			i += len("-Infinity") - 1
		case bytes.HasPrefix(b[i:], []byte("Infinity")):
			out = append(out, "1e308"...)
			i += len("Infinity") - 1
		case bytes.HasPrefix(b[i:], []byte("NaN")):
			out = append(out, "null"...)
			i += len("NaN") - 1
		default:
			out = append(out, c)
		}
	}
	return out
}
