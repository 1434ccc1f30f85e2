package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// modelEntry is one model the server can show or switch to.
type modelEntry struct {
	Name   string // "v1-5-pruned-emaonly"
	File   string // "v1-5-pruned-emaonly.safetensors", or the folder name
	Hash   string // known only for the loaded model (hashing a file is slow)
	Path   string
	Loaded bool
	Native int // native width = height in pixels; known for loaded models only (0: unknown)
}

// nativeJSON is the listing's "native_size": {"width", "height"}, or null
// when unknown (a model not loaded).
func (m modelEntry) nativeJSON() any {
	if m.Native == 0 {
		return nil
	}
	return map[string]int{"width": m.Native, "height": m.Native}
}

// title is AUTOMATIC1111's checkpoint title: "file [hash]".
func (m modelEntry) title() string {
	if m.Hash != "" {
		return m.File + " [" + m.Hash + "]"
	}
	return m.File
}

// matches reports whether a client's name for a checkpoint (title, file,
// name, hash or path) means this model.
func (m modelEntry) matches(q string) bool {
	q = strings.TrimSpace(q)
	if q == "" {
		return false
	}
	if i := strings.LastIndex(q, " ["); i > 0 && strings.HasSuffix(q, "]") {
		if m.Hash != "" && q[i+2:len(q)-1] == m.Hash {
			return true
		}
		q = q[:i]
	}
	return q == m.Name || q == m.File || q == m.Path || (m.Hash != "" && q == m.Hash) ||
		filepath.Clean(q) == filepath.Clean(m.Path)
}

// entryOf is a loaded model's listing. Its file is the checkpoint file or
// folder name, as AUTOMATIC1111's titles show it ("name.safetensors"); a
// model loaded under a name of its own (the embedded model, extracted to
// a cache folder) is listed under that name.
func entryOf(m *Loaded, loaded bool) modelEntry {
	e := modelEntry{Name: m.Name, File: filepath.Base(filepath.Clean(m.Path)), Hash: m.Hash, Path: m.Path, Loaded: loaded}
	if m.Model != nil {
		e.Native = nativeSize(m.Model)
	}
	if m.Path == "" || (m.Name != "" && m.Name != strings.TrimSuffix(e.File, filepath.Ext(e.File)) && m.Name != e.File) {
		e.File = m.Name
	}
	return e
}

// models lists the loaded model first, then every model loaded before
// (the start model stays listed after a switch), then the others in
// ModelsDir.
func (s *Server) models() []modelEntry {
	s.mu.Lock()
	cur := s.model
	seen := []modelEntry{entryOf(cur, true)}
	for _, k := range s.known {
		if filepath.Clean(k.Path) != filepath.Clean(cur.Path) {
			seen = append(seen, entryOf(&k, false))
		}
	}
	s.mu.Unlock()
	out := seen
	listed := func(p string) bool {
		for _, e := range seen {
			if e.Path != "" && filepath.Clean(e.Path) == filepath.Clean(p) {
				return true
			}
		}
		return false
	}
	if s.cfg.ModelsDir == "" {
		return out
	}
	entries, err := os.ReadDir(s.cfg.ModelsDir)
	if err != nil {
		s.log.Warn("cannot list the models folder", "dir", s.cfg.ModelsDir, "err", err)
		return out
	}
	for _, e := range entries {
		p := filepath.Join(s.cfg.ModelsDir, e.Name())
		if listed(p) {
			continue
		}
		st, err := os.Stat(p) // follows symbolic links
		if err != nil {
			continue
		}
		switch {
		case st.IsDir():
			if _, err := os.Stat(filepath.Join(p, "model_index.json")); err != nil {
				continue
			}
			out = append(out, modelEntry{Name: e.Name(), File: e.Name(), Path: p})
		case strings.HasSuffix(e.Name(), ".safetensors"):
			out = append(out, modelEntry{Name: strings.TrimSuffix(e.Name(), ".safetensors"), File: e.Name(), Path: p})
		}
	}
	return out
}

// switchModel makes the named model the loaded one. It waits for the
// running job; jobs still waiting run on the new model.
func (s *Server) switchModel(name string) error {
	var target *modelEntry
	for _, m := range s.models() {
		if m.matches(name) {
			target = &m
			break
		}
	}
	if target == nil {
		return fmt.Errorf("no model %q: see /sdapi/v1/sd-models", name)
	}
	if target.Loaded {
		return nil
	}
	if s.cfg.Loader == nil {
		return errors.New("this server cannot load other models")
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.log.Info("loading model", "path", target.Path)
	m, err := s.cfg.Loader(target.Path)
	if err != nil {
		return fmt.Errorf("loading %s: %w", target.Path, err)
	}
	countWeights(m.Model)
	s.mu.Lock()
	s.model = m
	s.remember(m)
	s.mu.Unlock()
	s.log.Info("model loaded", "name", m.Name, "hash", m.Hash)
	return nil
}

// remember adds a loaded model's names to the models listed (not the
// model itself: a switch frees the old one); s.mu must be held.
func (s *Server) remember(m *Loaded) {
	k := Loaded{Name: m.Name, Hash: m.Hash, Path: m.Path}
	for i, old := range s.known {
		if filepath.Clean(old.Path) == filepath.Clean(m.Path) {
			s.known[i] = k
			return
		}
	}
	s.known = append(s.known, k)
}
