package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"sync"
	"time"

	"github.com/ldm-project/ldm/ldm"
)

// State is where a job is in its life.
type State string

// The states of a job; the last three are final.
const (
	Queued    State = "queued"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

func (s State) final() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Image is one finished image: a PNG carrying its infotext in the
// "parameters" chunk.
type Image struct {
	PNG      []byte
	Seed     int64
	Infotext string
	Width    int
	Height   int
}

// event is one server-sent event, JSON already encoded. A preview's data is
// dropped when a newer preview arrives, so a job holds at most one (a late
// subscriber sees the last).
type event struct {
	name string
	data []byte
}

// Job is one generation request going through the queue.
type Job struct {
	ID      string
	Req     ldm.Request // as it runs: defaulted, validated, the seed drawn
	plan    *ldm.Plan
	Model   string // the model's name; set again when the job starts (j.mu)
	Created time.Time

	// ephemeral jobs belong to a synchronous request and are forgotten
	// when it returns.
	ephemeral bool
	// upscale is the size the images are resized to (nativesize.go).
	upscale upscale

	mu        sync.Mutex
	modelHash string
	state     State
	started   time.Time
	finished  time.Time
	progress  ldm.Progress
	preview   []byte
	images    []Image
	err       error
	// code classifies err: "timeout", "cancelled", "shutdown", "invalid", "internal".
	code        string
	cancel      context.CancelFunc
	cancelCause string
	events      []event
	lastPreview int
	changed     chan struct{}
	done        chan struct{}
}

func newJob(pl *ldm.Plan, model string, ephemeral bool) *Job {
	req := pl.Request()
	return &Job{
		ID: newID(), Req: req, plan: pl, Model: model, Created: time.Now(), ephemeral: ephemeral,
		state: Queued, changed: make(chan struct{}), done: make(chan struct{}), lastPreview: -1,
	}
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// emit appends an event and wakes the listeners; j.mu must be held.
func (j *Job) emit(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		data = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	if name == "preview" {
		if j.lastPreview >= 0 {
			j.events[j.lastPreview].data = nil
		}
		j.lastPreview = len(j.events)
	}
	j.events = append(j.events, event{name, data})
	close(j.changed)
	j.changed = make(chan struct{})
}

// eventsSince returns the events from index i on, a channel closed at the
// next change, and whether the job is over (no more events will come).
func (j *Job) eventsSince(i int) ([]event, <-chan struct{}, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var evs []event
	if i < len(j.events) {
		evs = append(evs, j.events[i:]...)
	}
	return evs, j.changed, j.state.final()
}

// start moves a queued job to running; false if it was cancelled meanwhile.
func (j *Job) start(cancel context.CancelFunc) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state != Queued || j.cancelCause != "" {
		return false
	}
	j.state, j.started, j.cancel = Running, time.Now(), cancel
	j.emit("running", map[string]any{"id": j.ID})
	return true
}

// Done is closed when the job reaches a final state.
func (j *Job) Done() <-chan struct{} { return j.done }

// finish records the outcome; only the first call counts.
func (j *Job) finish(state State, images []Image, err error, code string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state.final() {
		return false
	}
	j.state, j.images, j.err, j.code, j.finished = state, images, err, code, time.Now()
	j.preview = nil
	j.emit("done", j.viewLocked(true))
	close(j.done)
	return true
}

func (j *Job) setProgress(p ldm.Progress, preview []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state != Running {
		return
	}
	p.Preview = nil
	j.progress = p
	j.emit("progress", progressView(p))
	if preview != nil {
		j.preview = preview
		j.emit("preview", map[string]any{"step": p.Step, "image": base64.StdEncoding.EncodeToString(preview)})
	}
}

// requestCancel cancels a running job's context; a queued job is finished
// as cancelled right away by the caller (the queue removes it).
func (j *Job) requestCancel(cause string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cancelCause == "" {
		j.cancelCause = cause
	}
	if j.cancel != nil {
		j.cancel()
	}
}

// Snapshot is a consistent copy of a job's public state.
type Snapshot struct {
	Model, ModelHash string
	State            State
	Progress         ldm.Progress
	Preview          []byte
	Images           []Image
	Err              error
	Code             string
	Started          time.Time
	Finished         time.Time
}

func (j *Job) snapshot() Snapshot {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Snapshot{j.Model, j.modelHash, j.state, j.progress, j.preview, j.images, j.err, j.code, j.started, j.finished}
}

type progressJSON struct {
	Step      int     `json:"step"`
	Total     int     `json:"total"`
	Image     int     `json:"image"`
	Images    int     `json:"images"`
	Fraction  float64 `json:"fraction"`
	ElapsedMS int64   `json:"elapsed_ms"`
	ETAMS     int64   `json:"eta_ms"`
}

func progressView(p ldm.Progress) progressJSON {
	return progressJSON{Step: p.Step, Total: p.Total, Image: p.Image, Images: p.Images, Fraction: fraction(p),
		ElapsedMS: p.Elapsed.Milliseconds(), ETAMS: p.ETA.Milliseconds()}
}

// fraction is the share of the whole job done, over all batches.
func fraction(p ldm.Progress) float64 {
	if p.Total == 0 || p.Images == 0 {
		return 0
	}
	return (float64(p.Image-1) + float64(p.Step)/float64(p.Total)) / float64(p.Images)
}

type imageJSON struct {
	Seed     int64  `json:"seed"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Infotext string `json:"infotext"`
	URL      string `json:"url"`
	PNG      string `json:"png,omitempty"` // base64
}

type errorJSON struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
}

type jobJSON struct {
	ID       string     `json:"id"`
	State    State      `json:"state"`
	Model    string     `json:"model"`
	Created  time.Time  `json:"created"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Expires is when a finished job, its image URLs included, is dropped.
	Expires    *time.Time    `json:"expires,omitempty"`
	Position   int           `json:"position,omitempty"`
	Progress   *progressJSON `json:"progress,omitempty"`
	Request    ldm.Request   `json:"request"`
	Images     []imageJSON   `json:"images,omitempty"`
	Error      *errorJSON    `json:"error,omitempty"`
	EventsURL  string        `json:"events_url"`
	PreviewB64 string        `json:"preview,omitempty"`
}

// viewLocked is the job's JSON form; j.mu must be held.
func (j *Job) viewLocked(withPNG bool) jobJSON {
	v := jobJSON{ID: j.ID, State: j.state, Model: j.Model, Created: j.Created, Request: j.Req,
		EventsURL: "/api/v1/jobs/" + j.ID + "/events"}
	if !j.started.IsZero() {
		t := j.started
		v.Started = &t
	}
	if !j.finished.IsZero() {
		t := j.finished
		v.Finished = &t
	}
	if j.state == Running || j.state.final() && j.progress.Total > 0 {
		p := progressView(j.progress)
		v.Progress = &p
	}
	for i, im := range j.images {
		ij := imageJSON{Seed: im.Seed, Width: im.Width, Height: im.Height, Infotext: im.Infotext,
			URL: fmt.Sprintf("/api/v1/jobs/%s/images/%d.png", j.ID, i)}
		if withPNG {
			ij.PNG = base64.StdEncoding.EncodeToString(im.PNG)
		}
		v.Images = append(v.Images, ij)
	}
	if j.err != nil {
		field, _ := ldm.IsFieldError(j.err)
		v.Error = &errorJSON{Message: j.err.Error(), Code: j.code, Field: field}
	}
	return v
}

// encodeResults turns the pipeline's results into PNGs with infotext.
func encodeResults(results []ldm.Result) ([]Image, error) {
	out := make([]Image, 0, len(results))
	for _, r := range results {
		info := r.Infotext.String()
		var buf bytes.Buffer
		if err := ldm.EncodeImage(&buf, r.Image, r.Infotext, ldm.PNG, 0); err != nil {
			return out, fmt.Errorf("encoding image: %w", err)
		}
		b := r.Image.Bounds()
		out = append(out, Image{PNG: buf.Bytes(), Seed: r.Seed, Infotext: info, Width: b.Dx(), Height: b.Dy()})
	}
	return out, nil
}

func encodePreview(img image.Image) []byte {
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
		return nil
	}
	return buf.Bytes()
}

// Errors the queue answers with.
var (
	errQueueFull    = errors.New("the queue is full: retry later")
	errShuttingDown = errors.New("the server is shutting down")
)

// queue is a bounded FIFO of waiting jobs.
type queue struct {
	mu      sync.Mutex
	pending []*Job
	max     int
	closed  bool
	wake    chan struct{}
}

func newQueue(max int) *queue { return &queue{max: max, wake: make(chan struct{}, 1)} }

// push adds a job and returns its 1-based position. queued runs before the
// worker can see the job, so the "queued" event comes first.
func (q *queue) push(j *Job, queued func(pos int)) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, errShuttingDown
	}
	if len(q.pending) >= q.max {
		return 0, errQueueFull
	}
	q.pending = append(q.pending, j)
	queued(len(q.pending))
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return len(q.pending), nil
}

// pop waits for the next job; nil when ctx is done or the queue is closed
// and empty.
func (q *queue) pop(ctx context.Context) *Job {
	for {
		q.mu.Lock()
		if len(q.pending) > 0 {
			j := q.pending[0]
			q.pending[0] = nil
			q.pending = q.pending[1:]
			q.mu.Unlock()
			return j
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// takeIf removes and returns up to n waiting jobs for which ok is true, in
// queue order (request batching takes compatible jobs this way).
func (q *queue) takeIf(n int, ok func(*Job) bool) []*Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*Job
	kept := q.pending[:0]
	for _, j := range q.pending {
		if len(out) < n && ok(j) {
			out = append(out, j)
		} else {
			kept = append(kept, j)
		}
	}
	for i := len(kept); i < len(q.pending); i++ {
		q.pending[i] = nil
	}
	q.pending = kept
	return out
}

// remove takes a waiting job out; false if it is not waiting.
func (q *queue) remove(j *Job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, p := range q.pending {
		if p == j {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			return true
		}
	}
	return false
}

// position is a waiting job's 1-based place, 0 when not waiting.
func (q *queue) position(j *Job) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, p := range q.pending {
		if p == j {
			return i + 1
		}
	}
	return 0
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// close stops accepting and returns the jobs still waiting.
func (q *queue) close() []*Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	out := q.pending
	q.pending = nil
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return out
}

// cause is why the job was asked to stop ("" if it was not).
func (j *Job) cause() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cancelCause
}
