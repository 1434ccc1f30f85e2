package app

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

func (s *Server) openAIRoutes(g *gin.RouterGroup) {
	g.POST("/images/generations", s.openAIGenerate)
	g.GET("/models", s.openAIModels)
	g.GET("/files/:name", s.serveFile)
	s.openAIEditRoutes(g)
}

// openAIRequest is OpenAI's images API request. negative_prompt, seed,
// steps, guidance_scale and sampler are this server's extensions.
type openAIRequest struct {
	Prompt         string    `json:"prompt" ldm:"prompt"`
	N              flexInt   `json:"n" ldm:"batch_size"`
	Size           string    `json:"size" ldm:"width,height"`
	ResponseFormat string    `json:"response_format"`
	Model          string    `json:"model"`
	NegativePrompt string    `json:"negative_prompt" ldm:"negative_prompt"`
	Seed           flexInt   `json:"seed" ldm:"seed"`
	Steps          flexInt   `json:"steps" ldm:"steps"`
	GuidanceScale  flexFloat `json:"guidance_scale" ldm:"guidance_scale"`
	Sampler        string    `json:"sampler" ldm:"sampler"`
}

// openAIParams names OpenAI's fields for ldm.Request's (from the ldm tags).
var openAIParams = fieldNames(openAIRequest{})

func (s *Server) openAIGenerate(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	req, _, err := s.decodeOpenAI(body)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	out, err := openAIRequestOpts(body, &req) // gpt-image fields (openai_edits.go)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	j, _, err := s.submit(req, true)
	if err != nil {
		s.failErr(c, err, openAIParams)
		return
	}
	s.openAIAnswer(c, j, out, "image_generation", nil)
}

// decodeOpenAI reads an OpenAI images request: the ldm.Request and the
// response format ("url" or "b64_json").
func (s *Server) decodeOpenAI(body []byte) (ldm.Request, string, error) {
	var or openAIRequest
	if err := unmarshal(body, &or); err != nil {
		return ldm.Request{}, "", err
	}
	format := or.ResponseFormat
	switch format {
	case "":
		format = "url" // OpenAI's default
	case "url", "b64_json":
	default:
		return ldm.Request{}, "", &ldm.FieldError{Field: "response_format", Msg: fmt.Sprintf("%q is not supported: use \"url\" or \"b64_json\"", format)}
	}
	if err := s.checkOpenAIModel(or.Model); err != nil {
		return ldm.Request{}, "", &ldm.FieldError{Field: "model", Msg: err.Error()}
	}
	w, h, err := parseSize(or.Size)
	if err != nil {
		return ldm.Request{}, "", &ldm.FieldError{Field: "size", Msg: err.Error()}
	}
	req := ldm.Blank()
	copyFields(&or, &req)
	req.Width, req.Height = w, h
	return req, format, nil
}

// checkOpenAIModel accepts no model, the loaded one, or OpenAI's own names
// (SDK defaults), which mean the loaded model.
func (s *Server) checkOpenAIModel(name string) error {
	if name == "" || strings.HasPrefix(name, "dall-e") || strings.HasPrefix(name, "gpt-image") {
		return nil
	}
	for _, m := range s.models() {
		if m.matches(name) {
			if m.Loaded {
				return nil
			}
			return fmt.Errorf("model %q is not loaded (the loaded model is %q; switch with POST /sdapi/v1/options)", name, s.current().Name)
		}
	}
	return fmt.Errorf("no model %q: see GET /v1/models", name)
}

// parseSize reads OpenAI's "WIDTHxHEIGHT"; "" and "auto" leave the model's
// default size.
func parseSize(size string) (int, int, error) {
	if size == "" || size == "auto" {
		return 0, 0, nil
	}
	ws, hs, ok := strings.Cut(strings.ToLower(size), "x")
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if !ok || err1 != nil || err2 != nil || w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("%q is not a size: use WIDTHxHEIGHT, e.g. \"512x512\"", size)
	}
	return w, h, nil
}

func (s *Server) openAIModels(c *gin.Context) {
	var data []gin.H
	for _, m := range s.models() {
		data = append(data, gin.H{"id": m.Name, "object": "model", "created": 0, "owned_by": "ldm", "native_size": m.nativeJSON()})
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

// baseURL is the configured public URL, else the address the connection
// came in on (the listen address as the client reached it). Never the
// request's Host: a client could make the server hand out links to any
// site.
func (s *Server) baseURL(c *gin.Context) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	if a, ok := c.Request.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return scheme + "://" + a.String()
	}
	return scheme + "://localhost"
}

func (s *Server) serveFile(c *gin.Context) {
	data, ok := s.files.get(strings.TrimSuffix(c.Param("name"), ".png"))
	if !ok {
		s.fail(c, http.StatusNotFound, "", fmt.Errorf("no file %q: image URLs expire after %v", c.Param("name"), s.cfg.FileTTL))
		return
	}
	c.Header("Cache-Control", "private, max-age="+strconv.Itoa(int(s.cfg.FileTTL.Seconds())))
	c.Data(http.StatusOK, "image/png", data)
}

func openAIErrorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "authentication_error"
	}
	return "invalid_request_error"
}

func openAIErrorCode(status int) any {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return "invalid_api_key"
	case http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	}
	return nil
}

// fileStore keeps images handed out as URLs for a limited time and within
// a memory cap, evicting the oldest first.
type fileStore struct {
	mu    sync.Mutex
	ttl   time.Duration
	cap   int64
	size  int64
	files map[string]storedFile
	order []string // insertion order = expiry order
	now   func() time.Time
}

type storedFile struct {
	data    []byte
	expires time.Time
}

func newFileStore(ttl time.Duration, cap int64) *fileStore {
	return &fileStore{ttl: ttl, cap: cap, files: map[string]storedFile{}, now: time.Now}
}

func (f *fileStore) put(data []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	for len(f.order) > 0 {
		old := f.files[f.order[0]]
		if now.Before(old.expires) && f.size+int64(len(data)) <= f.cap {
			break
		}
		f.size -= int64(len(old.data))
		delete(f.files, f.order[0])
		f.order = f.order[1:]
	}
	name := newID()
	f.files[name] = storedFile{data, now.Add(f.ttl)}
	f.order = append(f.order, name)
	f.size += int64(len(data))
	return name
}

func (f *fileStore) get(name string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sf, ok := f.files[name]
	if !ok || f.now().After(sf.expires) {
		return nil, false
	}
	return sf.data, true
}
