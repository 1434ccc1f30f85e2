package fsutil

import (
	"os"
	"path/filepath"
)

// CacheDir is ldm's cache folder: $LDM_CACHE, else <user cache>/ldm, else
// <temp>/ldm. It is not created here.
func CacheDir() string {
	if d := os.Getenv("LDM_CACHE"); d != "" {
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "ldm")
	}
	return filepath.Join(os.TempDir(), "ldm")
}
