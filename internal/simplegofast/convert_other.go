//go:build !amd64 || purego

package simplegofast

import "github.com/x448/float16"

// halfToFloat32 converts float16 values to float32, exactly.
func halfToFloat32(dst []float32, src []float16.Float16) { halfToFloat32Go(dst, src) }
