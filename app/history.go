package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/internal/fsutil"
)

// history keeps every generated image in a folder, as ID.png (with its
// infotext in the PNG) beside ID.json (the parameters), so results survive
// a reload of the page and a restart of the server. The JSON file is
// written last: an entry without one is an interrupted write and is
// ignored. Oldest entries are removed beyond max.
type history struct {
	dir string
	max int

	mu      sync.Mutex
	entries []historyEntry // newest first
}

// historyEntry is one kept image, as GET /api/v1/history lists it.
type historyEntry struct {
	ID       string          `json:"id"`
	Job      string          `json:"job"`
	Created  time.Time       `json:"created"`
	Model    string          `json:"model,omitempty"`
	Seed     int64           `json:"seed"`
	Width    int             `json:"width"`
	Height   int             `json:"height"`
	Infotext string          `json:"infotext"`
	Request  json.RawMessage `json:"request,omitempty"` // ldm.Request's JSON with this image's seed
	ImageURL string          `json:"image_url"`
}

var historyID = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}-[0-9a-z_-]{1,64}$`)

// openHistory reads the entries already in dir (created if missing).
func openHistory(dir string, max int) (*history, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("outputs folder: %w (choose another with --outputs, or --outputs '' to keep no history)", err)
	}
	if max == 0 {
		max = 1000
	}
	h := &history{dir: dir, max: max}
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		id := strings.TrimSuffix(filepath.Base(name), ".json")
		if !historyID.MatchString(id) {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		var e historyEntry
		if json.Unmarshal(data, &e) != nil || e.ID != id {
			continue // not ours
		}
		if _, err := os.Stat(h.png(id)); err != nil {
			continue
		}
		e.ImageURL = imageURL(id)
		h.entries = append(h.entries, e)
	}
	// Newest first: by time, then (the images of one job) by index.
	sort.Slice(h.entries, func(a, b int) bool {
		ea, eb := h.entries[a], h.entries[b]
		if !ea.Created.Equal(eb.Created) {
			return ea.Created.After(eb.Created)
		}
		return ea.ID > eb.ID
	})
	h.mu.Lock()
	h.trimLocked()
	h.mu.Unlock()
	return h, nil
}

func imageURL(id string) string          { return "/api/v1/history/" + id + "/image" }
func (h *history) png(id string) string  { return filepath.Join(h.dir, id+".png") }
func (h *history) meta(id string) string { return filepath.Join(h.dir, id+".json") }

// keep stores a finished job's images.
func (h *history) keep(j *Job, model string, images []Image) error {
	now := time.Now().UTC()
	for i, im := range images {
		req := j.Req
		req.Seed = im.Seed
		rj, err := json.Marshal(req)
		if err != nil {
			rj = nil
		}
		e := historyEntry{ID: fmt.Sprintf("%s-%s-%03d", now.Format("20060102-150405"), strings.ToLower(j.ID), i),
			Job: j.ID, Created: now, Model: model, Seed: im.Seed, Width: im.Width, Height: im.Height,
			Infotext: im.Infotext, Request: rj}
		if !historyID.MatchString(e.ID) {
			return fmt.Errorf("history: bad id %q", e.ID)
		}
		e.ImageURL = imageURL(e.ID)
		if err := fsutil.WriteFileAtomic(h.png(e.ID), im.PNG); err != nil {
			return err
		}
		data, err := json.MarshalIndent(e, "", "  ")
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(h.meta(e.ID), data); err != nil {
			os.Remove(h.png(e.ID))
			return err
		}
		h.mu.Lock()
		h.entries = append([]historyEntry{e}, h.entries...)
		h.trimLocked()
		h.mu.Unlock()
	}
	return nil
}

// trimLocked removes the oldest entries beyond max.
func (h *history) trimLocked() {
	for h.max > 0 && len(h.entries) > h.max {
		old := h.entries[len(h.entries)-1]
		h.entries = h.entries[:len(h.entries)-1]
		os.Remove(h.meta(old.ID))
		os.Remove(h.png(old.ID))
	}
}

func (h *history) find(id string) (historyEntry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.entries {
		if e.ID == id {
			return e, true
		}
	}
	return historyEntry{}, false
}

func (h *history) remove(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, e := range h.entries {
		if e.ID == id {
			h.entries = append(h.entries[:i], h.entries[i+1:]...)
			os.Remove(h.meta(id)) // the JSON first: without it the PNG is no entry
			os.Remove(h.png(id))
			return true
		}
	}
	return false
}

// keepResults is called as a job finishes, before its clients hear it
// has (a page that then lists the history sees the images); a failure to write is
// logged, never fails the job.
func (s *Server) keepResults(j *Job, images []Image) {
	if s.history == nil || len(images) == 0 {
		return
	}
	if err := s.history.keep(j, j.snapshot().Model, images); err != nil {
		s.log.Warn("history: could not keep the images", "job", j.ID, "err", err)
	}
}

func init() {
	addAPIGroup(apiGroup{Tag: "native", Ops: []apiOp{
		{Method: "GET", Path: "/api/v1/history", Summary: "Kept results, newest first (?offset=&limit=, at most 200)",
			Notes: "Every image the server generated, kept in its --outputs folder with its parameters; {\"enabled\": false} when it keeps none."},
		{Method: "GET", Path: "/api/v1/history/:id", Summary: "One kept result's parameters"},
		{Method: "GET", Path: "/api/v1/history/:id/image", Summary: "One kept result's PNG (infotext in its parameters chunk)", Resp: ctPNG},
		{Method: "DELETE", Path: "/api/v1/history/:id", Summary: "Delete a kept result (204)"},
	}})
}

func (s *Server) historyRoutes(api *gin.RouterGroup) {
	api.GET("/history", s.listHistory)
	api.GET("/history/:id", s.historyItem)
	api.GET("/history/:id/image", s.historyImage)
	api.DELETE("/history/:id", s.deleteHistory)
}

func (s *Server) noHistory(c *gin.Context) bool {
	if s.history == nil {
		s.fail(c, http.StatusNotFound, "", fmt.Errorf("this server keeps no history (start it with --outputs DIR)"))
		return true
	}
	return false
}

// listHistory answers a page of entries, newest first:
// ?offset=0&limit=50 (limit at most 200). A server without an outputs
// folder answers an empty list with "enabled": false.
func (s *Server) listHistory(c *gin.Context) {
	if s.history == nil {
		c.JSON(http.StatusOK, gin.H{"enabled": false, "total": 0, "items": []historyEntry{},
			"note": "this server keeps no history (start it with --outputs DIR)"})
		return
	}
	offset, limit := 0, 50
	for _, p := range []struct {
		name string
		v    *int
		max  int
	}{{"offset", &offset, 1 << 30}, {"limit", &limit, 200}} {
		if q := c.Query(p.name); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 0 || (p.name == "limit" && n == 0) || n > p.max {
				s.fail(c, http.StatusBadRequest, p.name, fmt.Errorf("%s=%q: want a whole number from %d to %d", p.name, q, map[bool]int{true: 1, false: 0}[p.name == "limit"], p.max))
				return
			}
			*p.v = n
		}
	}
	s.history.mu.Lock()
	total := len(s.history.entries)
	lo, hi := min(offset, total), min(offset+limit, total)
	items := append([]historyEntry{}, s.history.entries[lo:hi]...)
	s.history.mu.Unlock()
	c.JSON(http.StatusOK, gin.H{"enabled": true, "total": total, "offset": offset, "limit": limit, "items": items})
}

func (s *Server) historyEntry(c *gin.Context) (historyEntry, bool) {
	if s.noHistory(c) {
		return historyEntry{}, false
	}
	e, ok := s.history.find(c.Param("id"))
	if !ok {
		s.fail(c, http.StatusNotFound, "id", fmt.Errorf("no history entry %q", c.Param("id")))
	}
	return e, ok
}

func (s *Server) historyItem(c *gin.Context) {
	if e, ok := s.historyEntry(c); ok {
		c.JSON(http.StatusOK, e)
	}
}

func (s *Server) historyImage(c *gin.Context) {
	e, ok := s.historyEntry(c)
	if !ok {
		return
	}
	data, err := os.ReadFile(s.history.png(e.ID))
	if err != nil {
		s.fail(c, http.StatusNotFound, "id", fmt.Errorf("history entry %s: %w", e.ID, err))
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`inline; filename="ldm-%d.png"`, e.Seed))
	c.Header("Cache-Control", "private, max-age=86400, immutable")
	c.Data(http.StatusOK, "image/png", data)
}

func (s *Server) deleteHistory(c *gin.Context) {
	if s.noHistory(c) {
		return
	}
	if !s.history.remove(c.Param("id")) {
		s.fail(c, http.StatusNotFound, "id", fmt.Errorf("no history entry %q", c.Param("id")))
		return
	}
	c.Status(http.StatusNoContent)
}
