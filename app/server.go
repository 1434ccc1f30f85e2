// Package app is the HTTP server: a native jobs API, AUTOMATIC1111- and
// OpenAI-compatible routes and an embedded web page, all translating into
// ldm.Request and sharing one bounded job queue run by one worker. It knows
// nothing of how a model works: it calls Model.Prepare and Model.Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

// Model is what the server runs: an *ldm.Pipeline, or a stand-in in tests.
// Run calls are serialised by the server.
type Model interface {
	// Prepare applies defaults, draws the seed and validates: the job
	// stores the plan and echoes its request.
	Prepare(req ldm.Request, l ldm.Limits) (*ldm.Plan, error)
	// Run executes plans; those with equal keys may share a model batch.
	// Result i belongs to task i; a task whose Ctx ends drops out without
	// stopping the others, and each task's Opts.Progress hears only about
	// that task.
	Run(ctx context.Context, tasks []ldm.Task) []ldm.BatchResult
	SampleSize() int
	Factor() int
}

var _ Model = (*ldm.Pipeline)(nil)

// Loaded is a model with the names the APIs show.
type Loaded struct {
	Model Model
	Name  string // "tiny_sd15"
	Hash  string // AUTOMATIC1111 short hash (may be empty)
	Path  string
}

// Loader loads the model at path (a diffusers folder or a single file);
// switching models through /sdapi/v1/options uses it.
type Loader func(path string) (*Loaded, error)

// Config tunes a Server; zero fields take the defaults noted.
type Config struct {
	// Limits bound every request (default ldm.DefaultLimits).
	Limits ldm.Limits
	// MaxMemory is the memory budget: a request whose estimated peak
	// (MemoryEstimator, with the loaded model) exceeds it is refused with
	// 413 naming the field to lower, and request batching never combines
	// jobs beyond it. 0 takes 3/4 of MachineMemory; <0 turns it off.
	MaxMemory int64
	// QueueSize is how many jobs may wait behind the running one (default 16).
	QueueSize int
	// JobTimeout bounds one job's run time (default 10 minutes).
	JobTimeout time.Duration
	// PreviewEvery sends a preview image every n steps (default 1; <0: never).
	PreviewEvery int
	// APIKey, when set, is accepted as "Authorization: Bearer <key>".
	APIKey string
	// BasicAuth lists "user:password" pairs accepted as HTTP Basic auth.
	BasicAuth []string
	// ModelsDir holds the models /sdapi/v1/options may switch to (diffusers
	// folders and .safetensors files); Loader loads them.
	ModelsDir string
	Loader    Loader
	// LoRADir is the models' LoRA folder (ldm.LoadOptions.LoRADir), which
	// /sdapi/v1/loras lists.
	LoRADir string
	// FileTTL is how long an OpenAI response_format=url image is served
	// (default 1 hour); FileBytes caps the memory they take (default 256 MiB).
	FileTTL   time.Duration
	FileBytes int64
	// JobTTL is how long a finished asynchronous job stays readable
	// (default 1 hour); MaxJobs caps how many are kept (default 256).
	JobTTL  time.Duration
	MaxJobs int
	// MaxBodyBytes caps a request body (default 64 MiB: init images).
	MaxBodyBytes int64
	// PublicURL is the base of absolute URLs handed out (default: from the
	// request's Host); its host is an allowed Host and its origin counts
	// as the server's own.
	PublicURL string
	// AllowedHosts are Host names served besides loopback names and IP
	// addresses ("*": any; DNS-rebinding protection).
	AllowedHosts []string
	// CORSOrigins ("*": any) and CORSOriginRegex (matching the whole
	// origin) name the origins whose pages may call the API, as
	// AUTOMATIC1111's --cors-allow-origins and --cors-allow-origins-regex.
	CORSOrigins     []string
	CORSOriginRegex string
	// ReadTimeout bounds reading a whole request (default 1 minute: a 64 MiB
	// body on a slow link), WriteTimeout writing an answer (default 1
	// minute; event streams and the wait of a synchronous request for its
	// job are not counted), IdleTimeout a kept-alive connection's idle time
	// (default 2 minutes). HTTPServer applies them.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// UpscaleAbove: a request wider or taller than this many times the
	// model's native size is drawn at about the native area and resized
	// (Lanczos) to the size asked for, saying so in the infotext (see
	// nativesize.go; default 2; <0: draw every size as asked).
	UpscaleAbove float64
	// BatchJobs is the most queued jobs with equal plan keys run together
	// in one model batch (default: the model's PreferredBatchJobs when it
	// has one, else 4; 1 turns batching off).
	BatchJobs int
	// Outputs is the folder where every result is kept (history.go) and
	// listed by GET /api/v1/history; "" keeps none. OutputsMax caps the
	// images kept, the oldest going first (default 1000; <0: no cap).
	Outputs    string
	OutputsMax int
	Logger     *slog.Logger
}

// DefaultConfig is the Config New runs with when nothing is set: the
// values each zero field of a Config stands for. Commands take their flag
// defaults from it, so a changed default changes their help too.
func DefaultConfig() Config {
	var c Config
	c.defaults()
	return c
}

func (c *Config) defaults() {
	if c.Limits == (ldm.Limits{}) {
		c.Limits = ldm.DefaultLimits
	}
	c.Limits.LoRAPaths = false // clients name LoRAs in the model's LoRA folder: a path could open any file here
	if c.QueueSize <= 0 {
		c.QueueSize = 16
	}
	if c.MaxMemory == 0 {
		c.MaxMemory = int64(defaultMemoryShare * float64(MachineMemory()))
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 10 * time.Minute
	}
	if c.PreviewEvery == 0 {
		c.PreviewEvery = 1
	}
	if c.FileTTL <= 0 {
		c.FileTTL = time.Hour
	}
	if c.FileBytes <= 0 {
		c.FileBytes = 256 << 20
	}
	if c.JobTTL <= 0 {
		c.JobTTL = time.Hour
	}
	if c.MaxJobs <= 0 {
		c.MaxJobs = 256
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 20
	}
	if c.BatchJobs <= 0 {
		c.BatchJobs = 4
	}
	if c.UpscaleAbove == 0 {
		c.UpscaleAbove = defaultUpscaleAbove
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Check reports settings New would refuse (credentials with empty parts, a
// malformed CORS regex or public URL), so a command can refuse them before
// it loads a model.
func (c Config) Check() error {
	if err := checkCredentials(c); err != nil {
		return err
	}
	_, err := newPolicy(c)
	return err
}

// Server serves one loaded model at a time through a bounded queue and one
// worker.
type Server struct {
	cfg     Config
	engine  *gin.Engine
	q       *queue
	files   *fileStore
	metrics *metrics
	log     *slog.Logger
	policy  *policy

	mu      sync.Mutex
	model   *Loaded
	known   []Loaded // names of every model loaded so far (Model nil), for listing and switching back
	jobs    map[string]*Job
	running []*Job         // started, not finished (several when batched)
	options map[string]any // A1111 options clients have set
	avgJob  time.Duration  // moving average of run times, for Retry-After

	// runMu is held while a job runs, so a model switch waits for it.
	runMu sync.Mutex

	// hardCtx is cancelled at the shutdown deadline: running jobs stop.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	quit       chan struct{} // closed when shutdown starts
	quitOnce   sync.Once
	workerDone chan struct{}
	history    *history // nil: no Outputs folder
}

// New starts a server's worker around a loaded model. Serve its Handler;
// call Shutdown to stop.
func New(model *Loaded, cfg Config) (*Server, error) {
	if model == nil || model.Model == nil {
		return nil, errors.New("app: no model")
	}
	if bp, ok := model.Model.(interface{ PreferredBatchJobs() int }); ok && cfg.BatchJobs <= 0 {
		cfg.BatchJobs = bp.PreferredBatchJobs()
	}
	cfg.defaults()
	if err := cfg.Limits.Check(); err != nil {
		return nil, fmt.Errorf("app: limits: %w", err)
	}
	if err := checkCredentials(cfg); err != nil {
		return nil, err
	}
	pol, err := newPolicy(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{policy: pol,
		cfg: cfg, q: newQueue(cfg.QueueSize), files: newFileStore(cfg.FileTTL, cfg.FileBytes),
		metrics: newMetrics(), log: cfg.Logger, model: model,
		jobs: map[string]*Job{}, options: map[string]any{}, known: []Loaded{{Name: model.Name, Hash: model.Hash, Path: model.Path}},
		quit: make(chan struct{}), workerDone: make(chan struct{}),
	}
	if cfg.Outputs != "" {
		if s.history, err = openHistory(cfg.Outputs, cfg.OutputsMax); err != nil {
			return nil, err
		}
	}
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	countWeights(model.Model)
	s.engine = s.routes()
	if cfg.MaxMemory > 0 {
		s.log.Info("memory budget", "max", ldm.FormatBytes(cfg.MaxMemory))
	}
	go s.work()
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// HTTPServer is an http.Server for Handler with the configured timeouts.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{Handler: s.engine, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: s.cfg.ReadTimeout, WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout}
}

// noWriteDeadline lifts the write timeout for an answer that waits for a
// job or streams; the job's own timeout and the client's disconnection
// bound it instead.
func noWriteDeadline(c *gin.Context) {
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{})
}

// writeDeadline gives the answer a fresh write timeout.
func (s *Server) writeDeadline(c *gin.Context) {
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
}

// Shutdown stops accepting jobs, cancels those still waiting, lets the
// running one finish until ctx is done, then cancels it and waits for the
// worker to stop.
func (s *Server) Shutdown(ctx context.Context) error {
	s.quitOnce.Do(func() { close(s.quit) })
	for _, j := range s.q.close() {
		if j.finish(Cancelled, nil, errShuttingDown, "shutdown") {
			s.metrics.finished(Cancelled, 0)
		}
	}
	select {
	case <-s.workerDone:
		return nil
	case <-ctx.Done():
		s.hardCancel()
		<-s.workerDone
		return fmt.Errorf("shutdown deadline passed: the running job was cancelled: %w", ctx.Err())
	}
}

func (s *Server) current() *Loaded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model
}

func (s *Server) draining() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// submit prepares a request (defaults, seed, validation), then queues its
// plan. It returns the job and its 1-based queue position.
func (s *Server) submit(req ldm.Request, ephemeral bool) (*Job, int, error) {
	if s.draining() {
		s.metrics.rejected("shutting_down")
		return nil, 0, errShuttingDown
	}
	m := s.current()
	req, up := s.fitNative(m.Model, req)
	pl, err := m.Model.Prepare(req, s.cfg.Limits)
	if err != nil {
		s.metrics.rejected("invalid")
		return nil, 0, err
	}
	if err := s.checkMemory(m.Model, pl.Request()); err != nil {
		s.metrics.rejected("memory")
		return nil, 0, err
	}
	j := newJob(pl, m.Name, ephemeral)
	j.upscale = up
	s.mu.Lock()
	s.gcJobsLocked()
	s.jobs[j.ID] = j
	s.mu.Unlock()
	pos, err := s.q.push(j, func(pos int) {
		j.mu.Lock()
		j.emit("queued", map[string]any{"id": j.ID, "position": pos})
		j.mu.Unlock()
	})
	if err != nil {
		s.forget(j)
		if errors.Is(err, errQueueFull) {
			s.metrics.rejected("queue_full")
		} else {
			s.metrics.rejected("shutting_down")
		}
		return nil, 0, err
	}
	s.metrics.submitted()
	return j, pos, nil
}

// gcJobsLocked drops finished jobs past their TTL, then the oldest beyond
// MaxJobs; s.mu must be held.
func (s *Server) gcJobsLocked() {
	type fin struct {
		id string
		at time.Time
	}
	var done []fin
	now := time.Now()
	for id, j := range s.jobs {
		sn := j.snapshot()
		if !sn.State.final() {
			continue
		}
		if now.Sub(sn.Finished) > s.cfg.JobTTL {
			delete(s.jobs, id)
			continue
		}
		done = append(done, fin{id, sn.Finished})
	}
	if extra := len(done) - s.cfg.MaxJobs + 1; extra > 0 {
		sort.Slice(done, func(a, b int) bool { return done[a].at.Before(done[b].at) })
		for _, f := range done[:extra] {
			delete(s.jobs, f.id)
		}
	}
}

// job finds a job; one past its TTL is gone, whether or not a later
// submission has swept it yet.
func (s *Server) job(id string) *Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return nil
	}
	if sn := j.snapshot(); sn.State.final() && time.Since(sn.Finished) > s.cfg.JobTTL {
		delete(s.jobs, id)
		return nil
	}
	return j
}

func (s *Server) forget(j *Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, j.ID)
}

// cancel stops a job: a waiting one leaves the queue at once, a running one
// stops at its next step.
func (s *Server) cancel(j *Job, cause string) {
	if s.q.remove(j) {
		if j.finish(Cancelled, nil, errors.New(cause), "cancelled") {
			s.metrics.finished(Cancelled, 0)
		}
		return
	}
	j.requestCancel(cause)
}

// retryAfter estimates how long until the queue has room, in whole seconds.
func (s *Server) retryAfter() int {
	s.mu.Lock()
	avg := s.avgJob
	s.mu.Unlock()
	if avg <= 0 {
		avg = time.Second
	}
	return max(1, int(math.Ceil(avg.Seconds())))
}

func (s *Server) work() {
	defer close(s.workerDone)
	for {
		j := s.q.pop(s.hardCtx)
		if j == nil {
			return
		}
		jobs := []*Job{j}
		if s.cfg.BatchJobs > 1 {
			// Jobs batched together share one U-Net batch: together they
			// must fit the memory budget as one request would.
			model := s.current().Model
			together := j.plan.Request()
			jobs = append(jobs, s.q.takeIf(s.cfg.BatchJobs-1, func(k *Job) bool {
				if k.plan.Key() != j.plan.Key() {
					return false
				}
				t, kr := together, k.plan.Request()
				t.BatchSize += kr.BatchSize
				t.BatchCount = max(t.BatchCount, kr.BatchCount)
				if s.checkMemory(model, t) != nil {
					return false
				}
				together = t
				return true
			})...)
		}
		s.run(jobs)
	}
}

// run starts the jobs and executes them on the current model, as one
// batch when there are several.
func (s *Server) run(jobs []*Job) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	m := s.current()
	var act []*active
	var tasks []ldm.Task
	for _, j := range jobs {
		if a := s.begin(j); a != nil {
			act = append(act, a)
			tasks = append(tasks, ldm.Task{Ctx: a.ctx, Plan: j.plan, Opts: a.opts})
		}
	}
	if len(act) == 0 {
		return
	}
	s.metrics.batch(len(act))
	out := s.execute(m.Model, tasks)
	for i, a := range act {
		var r ldm.BatchResult
		if i < len(out) {
			r = out[i]
		} else {
			r.Err = fmt.Errorf("internal error: the model returned %d results for %d jobs", len(out), len(act))
		}
		s.complete(a, r.Results, r.Err)
	}
}

// execute runs the tasks and turns a panic into an error for each, so that
// a bug fails the jobs and the worker lives on.
func (s *Server) execute(m Model, tasks []ldm.Task) (out []ldm.BatchResult) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("generate panicked", "panic", r, "stack", string(debug.Stack()))
			out = make([]ldm.BatchResult, len(tasks))
			for i := range out {
				out[i].Err = fmt.Errorf("internal error: %v", r)
			}
		}
	}()
	return m.Run(s.hardCtx, tasks)
}

// active is a job that has started.
type active struct {
	j      *Job
	ctx    context.Context
	cancel context.CancelFunc
	opts   ldm.Options
	start  time.Time
}

// begin starts a job with its own deadline and progress reporting; nil
// when the job was cancelled while it waited.
func (s *Server) begin(j *Job) *active {
	ctx, cancel := context.WithTimeout(s.hardCtx, s.cfg.JobTimeout)
	if !j.start(cancel) {
		cancel()
		if j.finish(Cancelled, nil, errors.New(j.cause()), "cancelled") {
			s.metrics.finished(Cancelled, 0)
		}
		return nil
	}
	// The model that draws the image is the one current now (a switch
	// waits for runMu, which the caller holds), not the one at submission.
	m := s.current()
	j.mu.Lock()
	j.Model, j.modelHash = m.Name, m.Hash
	j.mu.Unlock()
	s.mu.Lock()
	s.running = append(s.running, j)
	s.mu.Unlock()
	a := &active{j: j, ctx: ctx, cancel: cancel, start: time.Now()}
	last := a.start
	a.opts = ldm.Options{PreviewEvery: max(0, s.cfg.PreviewEvery), Progress: func(p ldm.Progress) {
		now := time.Now()
		s.metrics.step(now.Sub(last))
		last = now
		var preview []byte
		if p.Preview != nil {
			preview = encodePreview(p.Preview)
		}
		j.setProgress(p, preview)
	}}
	return a
}

// complete records a started job's outcome.
func (s *Server) complete(a *active, results []ldm.Result, err error) {
	defer a.cancel()
	j := a.j
	images, encErr := encodeResults(upscaleResults(results, j.upscale))
	if err == nil {
		err = encErr
	}
	s.keepResults(j, images)
	took := time.Since(a.start)
	state, code := Succeeded, ""
	switch {
	case err == nil:
	case j.cause() != "":
		state, code, err = Cancelled, "cancelled", errors.New(j.cause())
	case s.hardCtx.Err() != nil:
		state, code, err = Cancelled, "shutdown", errShuttingDown
	case errors.Is(a.ctx.Err(), context.DeadlineExceeded):
		state, code, err = Failed, "timeout", fmt.Errorf("the job ran longer than the %v limit", s.cfg.JobTimeout)
	default:
		state, code = Failed, "internal"
		if _, ok := ldm.IsFieldError(err); ok {
			code = "invalid"
		}
	}
	if err != nil && state == Failed {
		s.log.Warn("job failed", "id", j.ID, "code", code, "err", err)
	}
	if j.finish(state, images, err, code) {
		s.metrics.finished(state, took)
		s.metrics.images(len(images))
	}
	s.mu.Lock()
	for i, r := range s.running {
		if r == j {
			s.running = append(s.running[:i], s.running[i+1:]...)
			break
		}
	}
	if s.avgJob == 0 {
		s.avgJob = took
	} else {
		s.avgJob = (4*s.avgJob + took) / 5
	}
	s.mu.Unlock()
}

// waitJob waits for a synchronous request's job; when the client goes away
// first the job is cancelled and false is returned.
func (s *Server) waitJob(c *gin.Context, j *Job) bool {
	noWriteDeadline(c)
	select {
	case <-j.Done():
		s.writeDeadline(c)
		upscaledHeader(c, j)
		return true
	case <-c.Request.Context().Done():
		s.cancel(j, "the client disconnected")
		return false
	}
}

// outcome maps a finished job to an HTTP status and error.
func outcome(sn Snapshot) (int, error) {
	switch {
	case sn.State == Succeeded:
		return http.StatusOK, nil
	case sn.Code == "shutdown":
		return http.StatusServiceUnavailable, sn.Err
	case sn.Code == "cancelled":
		return http.StatusConflict, sn.Err
	case sn.Code == "timeout":
		return http.StatusGatewayTimeout, sn.Err
	case sn.Code == "invalid":
		return http.StatusBadRequest, sn.Err
	}
	return http.StatusInternalServerError, sn.Err
}

// statusOf maps a submit or decode error to an HTTP status.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case isContentTypeError(err):
		return http.StatusUnsupportedMediaType
	case isOverBudget(err):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errQueueFull):
		return http.StatusTooManyRequests
	case errors.Is(err, errShuttingDown):
		return http.StatusServiceUnavailable
	}
	if _, ok := ldm.IsFieldError(err); ok {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// apiStyle is the error shape a route family answers with.
type apiStyle int

const (
	styleNative apiStyle = iota
	styleA1111
	styleOpenAI
)

func styleFor(path string) apiStyle {
	switch {
	case len(path) >= 8 && path[:8] == "/sdapi/v":
		return styleA1111
	case len(path) >= 4 && path[:4] == "/v1/":
		return styleOpenAI
	}
	return styleNative
}

// fail answers an error in the shape of the route's family. field names
// the request field at fault ("" if none).
func (s *Server) fail(c *gin.Context, status int, field string, err error) {
	if status == http.StatusTooManyRequests {
		c.Header("Retry-After", strconv.Itoa(s.retryAfter()))
	}
	msg := err.Error()
	switch styleFor(c.Request.URL.Path) {
	case styleOpenAI:
		var param any
		if field != "" {
			param = field
		}
		c.AbortWithStatusJSON(status, gin.H{"error": gin.H{
			"message": msg, "type": openAIErrorType(status), "param": param, "code": openAIErrorCode(status)}})
	case styleA1111:
		body := gin.H{"error": http.StatusText(status), "detail": msg}
		if field != "" {
			body["field"] = field
		}
		c.AbortWithStatusJSON(status, body)
	default:
		body := gin.H{"error": msg}
		if field != "" {
			body["field"] = field
		}
		c.AbortWithStatusJSON(status, body)
	}
}

// failErr answers a submit or decode error, naming the field if it has one.
func (s *Server) failErr(c *gin.Context, err error, rename map[string]string) {
	status := statusOf(err)
	field, _ := ldm.IsFieldError(err)
	if r, ok := rename[field]; ok {
		var fe *ldm.FieldError
		if errors.As(err, &fe) {
			err = &ldm.FieldError{Field: r, Msg: fe.Msg}
		}
		field = r
	}
	s.fail(c, status, field, err)
}
