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

// models lists the loaded model first, then the others in ModelsDir.
func (s *Server) models() []modelEntry {
	cur := s.current()
	loaded := modelEntry{Name: cur.Name, File: filepath.Base(filepath.Clean(cur.Path)), Hash: cur.Hash, Path: cur.Path, Loaded: true}
	if cur.Path == "" {
		loaded.File = cur.Name
	}
	out := []modelEntry{loaded}
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
		if filepath.Clean(p) == filepath.Clean(cur.Path) {
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
	s.mu.Lock()
	s.model = m
	s.mu.Unlock()
	s.log.Info("model loaded", "name", m.Name, "hash", m.Hash)
	return nil
}
