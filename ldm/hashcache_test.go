package ldm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestShortHashCache: the model hash is the file's SHA-256, kept in
// <cache>/hashes.json; a matching entry is used without reading the file,
// and a changed file (size or time) is hashed again.
func TestShortHashCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("LDM_CACHE", cache)
	model := filepath.Join(t.TempDir(), "m.safetensors")
	if err := os.WriteFile(model, []byte("weights v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := func(b string) string { s := sha256.Sum256([]byte(b)); return hex.EncodeToString(s[:]) }
	if got := shortHash(model); got != sum("weights v1")[:10] {
		t.Fatalf("hash %q, want %q", got, sum("weights v1")[:10])
	}
	file := filepath.Join(cache, "hashes.json")
	var m map[string]hashEntry
	data, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(data, &m) != nil || m[model].SHA256 != sum("weights v1") {
		t.Fatalf("cache %s: %v %s", file, err, data)
	}
	// An entry that matches size and time is trusted: plant a marker.
	e := m[model]
	e.SHA256 = sum("planted")
	m[model] = e
	data, _ = json.Marshal(m)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := shortHash(model); got != sum("planted")[:10] {
		t.Errorf("hash %q: the matching cache entry was not used", got)
	}
	// Same size, new time: hashed again.
	if err := os.WriteFile(model, []byte("weights v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(model, later, later); err != nil {
		t.Fatal(err)
	}
	if got := shortHash(model); got != sum("weights v2")[:10] {
		t.Errorf("hash %q after the file changed, want %q", got, sum("weights v2")[:10])
	}
	// A broken cache file costs only the hashing.
	if err := os.WriteFile(file, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := shortHash(model); got != sum("weights v2")[:10] {
		t.Errorf("hash %q with a broken cache", got)
	}
}
