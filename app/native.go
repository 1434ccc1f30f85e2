package app

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(gin.CustomRecovery(func(c *gin.Context, r any) {
		s.log.Error("handler panicked", "path", c.Request.URL.Path, "panic", r)
		s.fail(c, http.StatusInternalServerError, "", errors.New("internal error"))
	}), s.logRequests, s.guard, s.limitBody, s.auth)

	e.GET("/healthz", s.healthz)
	e.GET("/metrics", s.serveMetrics)

	api := e.Group("/api/v1")
	api.POST("/jobs", s.createJob)
	api.GET("/jobs/:id", s.getJob)
	api.DELETE("/jobs/:id", s.deleteJob)
	api.GET("/jobs/:id/events", s.jobEvents)
	api.GET("/jobs/:id/images/:file", s.jobImage)
	api.POST("/generate", s.generateSync)
	api.GET("/models", s.listModels)
	api.GET("/samplers", s.listSamplers)
	api.GET("/defaults", s.requestDefaults)

	s.a1111Routes(e.Group("/sdapi/v1"))
	s.controlNetRoutes(e.Group("/controlnet"))
	s.openAIRoutes(e.Group("/v1"))
	s.comfyRoutes(e)
	s.audioRoutes(api)
	s.historyRoutes(api)
	s.webRoutes(e)
	s.docRoutes(e)
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, http.StatusNotFound, "", fmt.Errorf("no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	return e
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.log.Debug("http", "method", c.Request.Method, "path", c.Request.URL.Path,
		"status", c.Writer.Status(), "took", time.Since(start))
}

func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	}
	c.Next()
}

// nativeRequest is ldm.Request's JSON plus base64 images.
type nativeRequest struct {
	ldm.Request
	InitImage   string       `json:"init_image"`
	Mask        string       `json:"mask"`
	ControlNets []nativeUnit `json:"controlnets"` // each with its image, base64
}

func (s *Server) readNative(c *gin.Context) (ldm.Request, error) {
	body, err := readBody(c)
	if err != nil {
		return ldm.Request{}, err
	}
	return decodeNative(body)
}

// decodeNative reads the native API's JSON request.
func decodeNative(body []byte) (ldm.Request, error) {
	nr := nativeRequest{Request: ldm.Blank()}
	if err := unmarshal(body, &nr); err != nil {
		var fe *ldm.FieldError
		if errors.As(err, &fe) {
			// Fields of the embedded Request are reported as "Request.steps".
			fe.Field = strings.TrimPrefix(fe.Field, "Request.")
		}
		return ldm.Request{}, err
	}
	req := nr.Request
	var err error
	if req.ControlNets, err = nativeControlNets(nr.ControlNets); err != nil {
		return req, err
	}
	if nr.InitImage != "" {
		if req.InitImage, err = decodeImage("init_image", nr.InitImage); err != nil {
			return req, err
		}
	}
	if nr.Mask != "" {
		if req.Mask, err = decodeImage("mask", nr.Mask); err != nil {
			return req, err
		}
	}
	return req, nil
}

// createJob queues a request and answers at once with its id.
func (s *Server) createJob(c *gin.Context) {
	req, err := s.readNative(c)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	j, pos, err := s.submit(req, false)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	c.Header("Location", "/api/v1/jobs/"+j.ID)
	c.JSON(http.StatusAccepted, gin.H{"id": j.ID, "state": Queued, "position": pos,
		"url": "/api/v1/jobs/" + j.ID, "events_url": "/api/v1/jobs/" + j.ID + "/events"})
}

func (s *Server) view(j *Job) jobJSON {
	j.mu.Lock()
	v := j.viewLocked(true)
	if j.preview != nil && j.state == Running {
		v.PreviewB64 = b64(j.preview)
	}
	j.mu.Unlock()
	if v.State == Queued {
		v.Position = s.q.position(j)
	}
	if v.Finished != nil {
		t := v.Finished.Add(s.cfg.JobTTL)
		v.Expires = &t
	}
	return v
}

func (s *Server) findJob(c *gin.Context) *Job {
	j := s.job(c.Param("id"))
	if j == nil {
		s.fail(c, http.StatusNotFound, "id", fmt.Errorf("no job %q (finished jobs are kept for %v)", c.Param("id"), s.cfg.JobTTL))
	}
	return j
}

func (s *Server) getJob(c *gin.Context) {
	if j := s.findJob(c); j != nil {
		c.JSON(http.StatusOK, s.view(j))
	}
}

// deleteJob cancels a job; a running one is given a few seconds to stop.
func (s *Server) deleteJob(c *gin.Context) {
	j := s.findJob(c)
	if j == nil {
		return
	}
	if j.snapshot().State.final() {
		s.fail(c, http.StatusConflict, "", fmt.Errorf("job %s has already finished", j.ID))
		return
	}
	s.cancel(j, "cancelled by request")
	select {
	case <-j.Done():
	case <-time.After(5 * time.Second):
	case <-c.Request.Context().Done():
	}
	c.JSON(http.StatusOK, s.view(j))
}

// jobEvents streams a job's events (queued, running, progress, preview,
// done) as server-sent events, from the start or from Last-Event-ID. The
// stream ends with the job; at shutdown every job ends.
func (s *Server) jobEvents(c *gin.Context) {
	j := s.findJob(c)
	if j == nil {
		return
	}
	i, _ := strconv.Atoi(c.GetHeader("Last-Event-ID"))
	noWriteDeadline(c)
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		evs, changed, over := j.eventsSince(i)
		for _, e := range evs {
			i++
			if e.data == nil {
				continue // a superseded preview
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", i, e.name, e.data); err != nil {
				return
			}
		}
		w.Flush()
		if over {
			return
		}
		select {
		case <-changed:
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
		case <-c.Request.Context().Done():
			return
		}
	}
}

func (s *Server) jobImage(c *gin.Context) {
	j := s.findJob(c)
	if j == nil {
		return
	}
	n, err := strconv.Atoi(strings.TrimSuffix(c.Param("file"), ".png"))
	sn := j.snapshot()
	if err != nil || n < 0 || n >= len(sn.Images) {
		s.fail(c, http.StatusNotFound, "file", fmt.Errorf("job %s has no image %q", j.ID, c.Param("file")))
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`inline; filename="ldm-%d.png"`, sn.Images[n].Seed))
	c.Data(http.StatusOK, "image/png", sn.Images[n].PNG)
}

// generateSync runs a request and answers with the finished job. A client
// that disconnects cancels it.
func (s *Server) generateSync(c *gin.Context) {
	req, err := s.readNative(c)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	j, _, err := s.submit(req, true)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	if !s.waitJob(c, j) {
		s.forget(j)
		return
	}
	status, err := outcome(j.snapshot())
	if err != nil {
		s.forget(j)
		field, _ := ldm.IsFieldError(err)
		s.fail(c, status, field, err)
		return
	}
	// The job stays, as an asynchronous one does, so that its image URLs
	// answer until the "expires" the response gives.
	c.JSON(status, s.view(j))
}

type modelJSON struct {
	Name   string `json:"name"`
	Title  string `json:"title"`
	Hash   string `json:"hash,omitempty"`
	Path   string `json:"path"`
	Loaded bool   `json:"loaded"`
	// NativeSize is {"width","height"} the model was trained at (null: not loaded).
	NativeSize any `json:"native_size"`
}

func (s *Server) listModels(c *gin.Context) {
	var out []modelJSON
	for _, m := range s.models() {
		out = append(out, modelJSON{Name: m.Name, Title: m.title(), Hash: m.Hash, Path: m.Path, Loaded: m.Loaded, NativeSize: m.nativeJSON()})
	}
	c.JSON(http.StatusOK, gin.H{"models": out})
}

func (s *Server) listSamplers(c *gin.Context) {
	type samplerJSON struct {
		Name     string   `json:"name"`
		Aliases  []string `json:"aliases"`
		Class    string   `json:"class,omitempty"`
		KSampler string   `json:"k_sampler,omitempty"`
		Schedule string   `json:"schedule,omitempty"`
		Karras   bool     `json:"karras"`
	}
	type scheduleJSON struct {
		Name    string   `json:"name"`
		Label   string   `json:"label"`
		Aliases []string `json:"aliases"`
	}
	var out []samplerJSON
	for _, si := range ldm.Samplers() {
		out = append(out, samplerJSON{si.Name, si.Aliases, si.Class, si.KSampler, si.Schedule, si.Karras})
	}
	var sch []scheduleJSON
	for _, si := range ldm.Schedules() {
		sch = append(sch, scheduleJSON{si.Name, si.Label, si.Aliases})
	}
	c.JSON(http.StatusOK, gin.H{"samplers": out, "schedules": sch})
}

func (s *Server) healthz(c *gin.Context) {
	m := s.current()
	body := gin.H{"status": "ok", "model": m.Name, "queue": s.q.len(), "queue_size": s.cfg.QueueSize}
	if s.draining() {
		body["status"] = "shutting down"
		c.JSON(http.StatusServiceUnavailable, body)
		return
	}
	c.JSON(http.StatusOK, body)
}
