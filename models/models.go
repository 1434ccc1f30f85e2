// Package models embeds ldm's default model, a small KL-VAE, CLIP text
// encoder and U-Net trained by this project on the Twemoji and Noto emoji
// sets (see default/MODEL_CARD.md), so that `ldm generate` works offline with
// no download. Default exposes the diffusers folder as an fs.FS; Path
// materialises it once into the user's cache folder for loaders that read
// files.
package models

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/ldm-project/ldm/internal/fsutil"
)

//go:embed all:default
var files embed.FS

// Name is the default model's name, shown in image metadata.
const Name = "ldm-emoji-small"

// Default returns the embedded diffusers folder (model_index.json,
// scheduler/, tokenizer/, text_encoder/, unet/, vae/, MODEL_CARD.md).
func Default() fs.FS {
	sub, err := fs.Sub(files, "default")
	if err != nil {
		panic(err) // unreachable: "default" is embedded at build time
	}
	return sub
}

//go:generate go run ./gensum

// sum is TreeHash of the embedded folder, computed when the model changes
// (`go generate ./models`) rather than on every start: reading the 27 MB
// of embedded weights to hash them took 0.2–0.4 s of page faults per
// `ldm generate`. TestSumIsCurrent fails when it is stale.
//
//go:embed default.sum
var sum string

// Hash names the embedded model's content (the first 16 hex digits of a
// SHA-256 over its files' names, sizes and contents): it names the cache
// folder, so a binary with other weights never reads a stale copy.
func Hash() (string, error) {
	h := strings.TrimSpace(sum)
	if len(h) != 16 {
		return "", fmt.Errorf("models/default.sum holds %q, not a hash: run go generate ./models", h)
	}
	return h, nil
}

// TreeHash is the SHA-256 (first 16 hex digits) over the names, sizes and
// contents of every file of fsys, in name order.
func TreeHash(fsys fs.FS) (string, error) {
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Path returns a folder holding the default model, extracting it on first
// use to <cache>/ldm/default-<hash> (cache: $LDM_CACHE, else
// os.UserCacheDir(), else the temp folder). Extraction writes a temporary
// folder and renames it into place, so a killed process never leaves a
// partial model and concurrent processes agree on one copy. A cached copy
// is checked against default.sum once per process (tens of milliseconds),
// and extracted again when a file was changed, truncated or removed.
func Path() (string, error) {
	h, err := Hash()
	if err != nil {
		return "", err
	}
	base := fsutil.CacheDir()
	dir := filepath.Join(base, "default-"+h)
	verified.Lock()
	defer verified.Unlock()
	if verified.dir == dir {
		return dir, nil
	}
	stale := false
	if _, err := os.Stat(dir); err == nil {
		if got, err := TreeHash(os.DirFS(dir)); err == nil && got == h {
			verified.dir = dir
			return dir, nil
		}
		stale = true
		slog.Warn("the cached copy of the default model does not match models/default.sum: extracting it again", "dir", dir)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("default model cache: %w", err)
	}
	tmp, err := os.MkdirTemp(base, ".default-"+h+"-*")
	if err != nil {
		return "", fmt.Errorf("default model cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op after a successful rename
	if err := extract(Default(), tmp); err != nil {
		return "", fmt.Errorf("extracting the default model: %w", err)
	}
	if stale {
		// Move the bad copy aside first: a rename does not replace a folder.
		old := tmp + ".stale"
		if err := os.Rename(dir, old); err == nil {
			defer os.RemoveAll(old)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process finished first: use its copy if it is whole.
		if got, herr := TreeHash(os.DirFS(dir)); herr == nil && got == h {
			verified.dir = dir
			return dir, nil
		}
		return "", fmt.Errorf("default model cache: %w", err)
	}
	verified.dir = dir
	return dir, nil
}

// verified remembers the cached copy this process has checked.
var verified struct {
	sync.Mutex
	dir string
}

func extract(src fs.FS, dst string) error {
	return fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := src.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
