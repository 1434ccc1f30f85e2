package data

import (
	"bufio"
	"encoding/json"
	"image"
	"image/png"
	"io"

	"github.com/ldm-project/ldm/internal/fsutil"
)

func writePNG(path string, img image.Image) error {
	return fsutil.WriteAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// writeJSONL writes one JSON object per line, atomically.
func writeJSONL[T any](path string, rows []T) error {
	return fsutil.WriteAtomic(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}
