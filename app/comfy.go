package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

// The ComfyUI API (the subset Open WebUI, SillyTavern and scripts use):
// POST /prompt takes an API-format workflow, which comfy_graph.go turns
// into one ldm.Request that goes through submit like every other route
// (queue, limits, memory budget); /history, /view, /queue, /interrupt,
// /upload/image, /object_info, /system_stats, /embeddings and the /ws
// event stream (comfy_ws.go) answer in ComfyUI's shapes.

// comfyState is the ComfyUI front end's own state: prompts by id (the job
// id), uploaded images, output file names and websocket clients.
type comfyState struct {
	s       *Server
	uploads *comfyUploads
	hub     *comfyHub

	mu      sync.Mutex
	number  int
	counter int
	prompts map[string]*comfyPrompt
	files   map[string]comfyFile // "output/name.png" → image of a job
}

// comfyPrompt is one queued workflow.
type comfyPrompt struct {
	id       string
	number   int
	prompt   map[string]*comfyNode
	raw      json.RawMessage
	extra    map[string]any
	clientID string
	plan     *comfyPlan
	job      *Job

	mu       sync.Mutex
	done     bool
	outputs  map[string]any // node → {"images": [...]}
	messages [][2]any
	status   string
}

type comfyFile struct {
	job   string
	index int
}

func (s *Server) comfyRoutes(e *gin.Engine) {
	c := &comfyState{s: s, uploads: newComfyUploads(s.cfg.FileBytes), prompts: map[string]*comfyPrompt{},
		files: map[string]comfyFile{}}
	c.hub = newComfyHub(c)
	e.GET("/prompt", c.getPrompt)
	e.POST("/prompt", c.postPrompt)
	e.GET("/history", c.history)
	e.GET("/history/:id", c.history)
	e.POST("/history", c.editHistory)
	e.GET("/view", c.view)
	e.GET("/queue", c.queue)
	e.POST("/queue", c.editQueue)
	e.POST("/interrupt", c.interrupt)
	e.POST("/upload/image", c.upload)
	e.GET("/object_info", c.objectInfo)
	e.GET("/object_info/:node_class", c.objectInfo)
	e.GET("/system_stats", c.systemStats)
	e.GET("/embeddings", func(ctx *gin.Context) { ctx.JSON(http.StatusOK, []string{}) }) // ldm loads no textual inversions
	e.GET("/models", c.modelFolders)
	e.GET("/models/:folder", c.modelFolder)
	e.GET("/ws", c.ws)
}

// comfyFolders are the model folders /models lists, each with the
// choices of the loader that reads it.
var comfyFolders = map[string]func(*comfyGraph) []string{
	"checkpoints": (*comfyGraph).checkpoints, "loras": (*comfyGraph).loraNames,
	"controlnet": (*comfyGraph).controlNets, "vae": (*comfyGraph).vaeNames,
	"embeddings": func(*comfyGraph) []string { return []string{} },
}

func (c *comfyState) modelFolders(ctx *gin.Context) {
	names := make([]string, 0, len(comfyFolders))
	for n := range comfyFolders {
		names = append(names, n)
	}
	sort.Strings(names)
	ctx.JSON(http.StatusOK, names)
}

func (c *comfyState) modelFolder(ctx *gin.Context) {
	list, ok := comfyFolders[ctx.Param("folder")]
	if !ok {
		comfyFail(ctx, http.StatusNotFound, "invalid_request", fmt.Sprintf("no model folder %q: /models lists them", ctx.Param("folder")))
		return
	}
	ctx.JSON(http.StatusOK, list(&comfyGraph{c: c}))
}

func init() {
	addAPIGroup(apiGroup{Tag: "comfyui", Description: "ComfyUI API: API-format workflows of the core nodes, history, images and the websocket events.", Ops: []apiOp{
		{Method: "GET", Path: "/prompt", Summary: "Queue length (exec_info.queue_remaining)"},
		{Method: "POST", Path: "/prompt", Summary: "Queue an API-format workflow ({prompt, client_id}); 400 with node_errors when it does not validate", Body: ctJSON,
			Notes: "Nodes: " + strings.Join(comfyClassNames(), ", ") + ". The workflow becomes one generation request: one sampler per prompt."},
		{Method: "GET", Path: "/history", Summary: "Finished prompts (max_items)"},
		{Method: "GET", Path: "/history/:id", Summary: "One finished prompt, with its outputs' images"},
		{Method: "POST", Path: "/history", Summary: "Delete ({delete: [ids]}) or clear ({clear: true}) history", Body: ctJSON},
		{Method: "GET", Path: "/view", Summary: "An output or uploaded image (filename, subfolder, type)", Resp: ctPNG},
		{Method: "GET", Path: "/queue", Summary: "Running and pending prompts"},
		{Method: "POST", Path: "/queue", Summary: "Remove pending prompts ({delete: [ids]} or {clear: true})", Body: ctJSON},
		{Method: "POST", Path: "/interrupt", Summary: "Stop the running prompt (optionally {prompt_id})", Body: ctJSON},
		{Method: "POST", Path: "/upload/image", Summary: "Upload an input image for LoadImage", Body: ctMultipart},
		{Method: "GET", Path: "/object_info", Summary: "The node classes served, with their inputs and choices"},
		{Method: "GET", Path: "/object_info/:node_class", Summary: "One node class"},
		{Method: "GET", Path: "/system_stats", Summary: "System and device"},
		{Method: "GET", Path: "/embeddings", Summary: "Textual inversions (none: ldm loads none)"},
		{Method: "GET", Path: "/models", Summary: "Model folders (checkpoints, loras, controlnet, vae, embeddings)"},
		{Method: "GET", Path: "/models/:folder", Summary: "A model folder's files, as the loaders' choices list them"},
		{Method: "GET", Path: "/ws", Summary: "WebSocket of ComfyUI's events (clientId): status, execution_start, executing, progress, executed, execution_success, binary previews", Resp: ctText},
	}})
}

// comfyFail answers a ComfyUI-shaped error for a route error.
func comfyFail(c *gin.Context, status int, typ, msg string) {
	c.AbortWithStatusJSON(status, comfyFailure{Error: comfyError{Type: typ, Message: msg, ExtraInfo: map[string]any{}}, NodeErrors: map[string]any{}})
}

func (c *comfyState) queueRemaining() int {
	c.s.mu.Lock()
	n := len(c.s.running)
	c.s.mu.Unlock()
	return n + c.s.q.len()
}

func (c *comfyState) getPrompt(ctx *gin.Context) {
	ctx.JSON(http.StatusOK, gin.H{"exec_info": gin.H{"queue_remaining": c.queueRemaining()}})
}

func (c *comfyState) postPrompt(ctx *gin.Context) {
	body, err := readBody(ctx)
	if err != nil {
		comfyFail(ctx, statusOf(err), "invalid_prompt", err.Error())
		return
	}
	var in struct {
		Prompt    json.RawMessage `json:"prompt"`
		ClientID  string          `json:"client_id"`
		ExtraData map[string]any  `json:"extra_data"`
		Number    *float64        `json:"number"`
		Front     bool            `json:"front"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		comfyFail(ctx, http.StatusBadRequest, "invalid_prompt", "the body is not ComfyUI's {\"prompt\": {...}} JSON: "+err.Error())
		return
	}
	var nodes map[string]*comfyNode
	if len(in.Prompt) == 0 || json.Unmarshal(in.Prompt, &nodes) != nil || nodes == nil {
		comfyFail(ctx, http.StatusBadRequest, "invalid_prompt", "\"prompt\" must be an API-format workflow: an object of node id → {class_type, inputs} (ComfyUI's \"Save (API Format)\")")
		return
	}
	if in.ExtraData == nil {
		in.ExtraData = map[string]any{}
	}
	if in.ClientID != "" {
		in.ExtraData["client_id"] = in.ClientID
	} else if id, ok := in.ExtraData["client_id"].(string); ok {
		in.ClientID = id
	}
	p, fail := c.plan(nodes)
	if fail != nil {
		ctx.JSON(http.StatusBadRequest, fail)
		return
	}
	if p.ckpt != "" && !c.isCurrent(p.ckpt) {
		if err := c.s.switchModel(p.ckpt); err != nil {
			ctx.JSON(http.StatusBadRequest, p.fieldFailure(nodes, &ldm.FieldError{Field: "ckpt", Msg: err.Error()}))
			return
		}
	}
	j, _, err := c.s.submit(p.req, false)
	if err != nil {
		if _, ok := ldm.IsFieldError(err); ok && statusOf(err) == http.StatusBadRequest {
			ctx.JSON(http.StatusBadRequest, p.fieldFailure(nodes, err))
			return
		}
		if statusOf(err) == http.StatusTooManyRequests {
			ctx.Header("Retry-After", strconv.Itoa(c.s.retryAfter()))
		}
		comfyFail(ctx, statusOf(err), "prompt_refused", err.Error())
		return
	}
	c.mu.Lock()
	c.number++
	pr := &comfyPrompt{id: j.ID, number: c.number, prompt: nodes, raw: in.Prompt, extra: in.ExtraData, clientID: in.ClientID, plan: p, job: j}
	c.gcLocked()
	c.prompts[j.ID] = pr
	c.mu.Unlock()
	go c.watch(pr)
	c.hub.broadcastStatus()
	ctx.JSON(http.StatusOK, gin.H{"prompt_id": j.ID, "number": pr.number, "node_errors": gin.H{}})
}

func (c *comfyState) isCurrent(name string) bool {
	return entryOf(c.s.current(), true).matches(name)
}

// gcLocked drops prompts whose job the server no longer keeps.
func (c *comfyState) gcLocked() {
	for id := range c.prompts {
		if c.s.job(id) == nil {
			delete(c.prompts, id)
		}
	}
	for name, f := range c.files {
		if _, ok := c.prompts[f.job]; !ok {
			delete(c.files, name)
		}
	}
}

// prompt finds a prompt whose job is still kept.
func (c *comfyState) prompt(id string) *comfyPrompt {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.prompts[id]
	if p != nil && c.s.job(id) == nil {
		delete(c.prompts, id)
		return nil
	}
	return p
}

// finishOutputs names the finished job's images for each output node.
func (c *comfyState) finishOutputs(p *comfyPrompt, sn Snapshot) map[string]any {
	out := map[string]any{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, node := range p.plan.saves {
		n := p.prompt[node]
		typ, prefix := "output", "ComfyUI"
		if n.ClassType == "PreviewImage" {
			typ, prefix = "temp", "ComfyUI_temp"
		} else {
			var s string
			if json.Unmarshal(n.Inputs["filename_prefix"], &s) == nil && s != "" {
				prefix = s
			}
		}
		sub, base := path.Split(path.Clean("/" + strings.ReplaceAll(prefix, "\\", "/")))
		sub = strings.Trim(sub, "/")
		if base == "" || base == "." {
			base = "ComfyUI"
		}
		images := []gin.H{}
		for i := range sn.Images {
			c.counter++
			name := fmt.Sprintf("%s_%05d_.png", base, c.counter)
			c.files[typ+"/"+sub+"/"+name] = comfyFile{job: p.id, index: i}
			images = append(images, gin.H{"filename": name, "subfolder": sub, "type": typ})
		}
		out[node] = gin.H{"images": images}
	}
	return out
}

func (c *comfyState) historyEntry(p *comfyPrompt) gin.H {
	p.mu.Lock()
	defer p.mu.Unlock()
	meta := gin.H{}
	for node := range p.outputs {
		meta[node] = gin.H{"node_id": node, "display_node": node, "parent_node": nil, "real_node_id": node}
	}
	msgs := p.messages
	if msgs == nil {
		msgs = [][2]any{}
	}
	return gin.H{
		"prompt":  []any{p.number, p.id, p.raw, p.extra, p.plan.saves},
		"outputs": p.outputs, "meta": meta,
		"status": gin.H{"status_str": p.status, "completed": p.status == "success", "messages": msgs},
	}
}

func (c *comfyState) finished() []*comfyPrompt {
	c.mu.Lock()
	var out []*comfyPrompt
	for _, p := range c.prompts {
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		if done {
			out = append(out, p)
		}
	}
	c.mu.Unlock()
	sort.Slice(out, func(a, b int) bool { return out[a].number < out[b].number })
	return out
}

func (c *comfyState) history(ctx *gin.Context) {
	res := gin.H{}
	if id := ctx.Param("id"); id != "" {
		if p := c.prompt(id); p != nil {
			p.mu.Lock()
			done := p.done
			p.mu.Unlock()
			if done {
				res[id] = c.historyEntry(p)
			}
		}
		ctx.JSON(http.StatusOK, res)
		return
	}
	list := c.finished()
	if m, err := strconv.Atoi(ctx.Query("max_items")); err == nil && m >= 0 && m < len(list) {
		list = list[len(list)-m:]
	}
	for _, p := range list {
		res[p.id] = c.historyEntry(p)
	}
	ctx.JSON(http.StatusOK, res)
}

func (c *comfyState) editHistory(ctx *gin.Context) {
	var in struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if err := decodeJSON(ctx, &in); err != nil {
		comfyFail(ctx, statusOf(err), "invalid_request", err.Error())
		return
	}
	drop := map[string]bool{}
	for _, id := range in.Delete {
		drop[id] = true
	}
	for _, p := range c.finished() {
		if in.Clear || drop[p.id] {
			c.mu.Lock()
			delete(c.prompts, p.id)
			c.mu.Unlock()
			c.s.forget(p.job)
		}
	}
	c.mu.Lock()
	c.gcLocked()
	c.mu.Unlock()
	ctx.Status(http.StatusOK)
}

func (c *comfyState) view(ctx *gin.Context) {
	name, sub, typ := ctx.Query("filename"), strings.Trim(ctx.Query("subfolder"), "/"), ctx.DefaultQuery("type", "output")
	if name == "" || strings.ContainsAny(name, "/\\") || strings.Contains(sub, "..") {
		comfyFail(ctx, http.StatusBadRequest, "invalid_request", "filename (without a folder) is required; subfolder may not climb")
		return
	}
	var data []byte
	switch typ {
	case "input":
		if sub == "" {
			data, _ = c.uploads.get(name)
		}
	case "output", "temp":
		c.mu.Lock()
		f, ok := c.files[typ+"/"+sub+"/"+name]
		c.mu.Unlock()
		if ok {
			if j := c.s.job(f.job); j != nil {
				if sn := j.snapshot(); f.index < len(sn.Images) {
					data = sn.Images[f.index].PNG
				}
			}
		}
	default:
		comfyFail(ctx, http.StatusBadRequest, "invalid_request", "type must be output, temp or input")
		return
	}
	if data == nil {
		ctx.AbortWithStatus(http.StatusNotFound)
		return
	}
	ctx.Header("Content-Disposition", fmt.Sprintf("filename=%q", name))
	ctx.Data(http.StatusOK, http.DetectContentType(data), data)
}

func (c *comfyState) queueItem(p *comfyPrompt) []any {
	return []any{p.number, p.id, p.raw, p.extra, p.plan.saves}
}

func (c *comfyState) queue(ctx *gin.Context) {
	running, pending := []any{}, []any{}
	c.mu.Lock()
	ps := make([]*comfyPrompt, 0, len(c.prompts))
	for _, p := range c.prompts {
		ps = append(ps, p)
	}
	c.mu.Unlock()
	sort.Slice(ps, func(a, b int) bool { return ps[a].number < ps[b].number })
	for _, p := range ps {
		switch p.job.snapshot().State {
		case Running:
			running = append(running, c.queueItem(p))
		case Queued:
			pending = append(pending, c.queueItem(p))
		}
	}
	ctx.JSON(http.StatusOK, gin.H{"queue_running": running, "queue_pending": pending})
}

func (c *comfyState) editQueue(ctx *gin.Context) {
	var in struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	if err := decodeJSON(ctx, &in); err != nil {
		comfyFail(ctx, statusOf(err), "invalid_request", err.Error())
		return
	}
	drop := map[string]bool{}
	for _, id := range in.Delete {
		drop[id] = true
	}
	c.mu.Lock()
	var victims []*Job
	for _, p := range c.prompts {
		if (in.Clear || drop[p.id]) && p.job.snapshot().State == Queued {
			victims = append(victims, p.job)
		}
	}
	c.mu.Unlock()
	for _, j := range victims {
		c.s.cancel(j, "removed from the queue")
	}
	ctx.Status(http.StatusOK)
}

func (c *comfyState) interrupt(ctx *gin.Context) {
	var in struct {
		PromptID string `json:"prompt_id"`
	}
	if body, err := readBody(ctx); err == nil && len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			comfyFail(ctx, http.StatusBadRequest, "invalid_request", "the body must be JSON ({\"prompt_id\": …} or nothing): "+err.Error())
			return
		}
	}
	c.s.mu.Lock()
	running := append([]*Job(nil), c.s.running...)
	c.s.mu.Unlock()
	for _, j := range running {
		if in.PromptID == "" || j.ID == in.PromptID {
			c.s.cancel(j, "interrupted")
		}
	}
	ctx.Status(http.StatusOK)
}

func (c *comfyState) upload(ctx *gin.Context) {
	fh, err := ctx.FormFile("image")
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			comfyFail(ctx, http.StatusRequestEntityTooLarge, "invalid_request", err.Error())
			return
		}
		comfyFail(ctx, http.StatusBadRequest, "invalid_request", "a multipart form with the file in \"image\" is required: "+err.Error())
		return
	}
	if t := ctx.PostForm("type"); t != "" && t != "input" {
		comfyFail(ctx, http.StatusBadRequest, "invalid_request", "only type \"input\" uploads are kept (LoadImage reads them)")
		return
	}
	if sub := ctx.PostForm("subfolder"); sub != "" {
		comfyFail(ctx, http.StatusBadRequest, "invalid_request", "subfolders are not supported: upload without one")
		return
	}
	f, err := fh.Open()
	if err != nil {
		comfyFail(ctx, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		comfyFail(ctx, statusOf(err), "invalid_request", err.Error())
		return
	}
	if _, _, err := image.DecodeConfig(bytes.NewReader(data)); err != nil {
		comfyFail(ctx, http.StatusBadRequest, "invalid_request", "\"image\" is not a PNG, JPEG or WebP image: "+err.Error())
		return
	}
	name := path.Base(strings.ReplaceAll(fh.Filename, "\\", "/"))
	if name == "" || name == "." || name == "/" {
		name = "image.png"
	}
	name, err = c.uploads.put(name, data, ctx.PostForm("overwrite") == "true" || ctx.PostForm("overwrite") == "1")
	if err != nil {
		comfyFail(ctx, http.StatusRequestEntityTooLarge, "invalid_request", err.Error())
		return
	}
	ctx.JSON(http.StatusOK, gin.H{"name": name, "subfolder": "", "type": "input"})
}

func (c *comfyState) objectInfo(ctx *gin.Context) {
	g := &comfyGraph{c: c}
	res := gin.H{}
	names := comfyClassNames()
	if one := ctx.Param("node_class"); one != "" {
		if comfyClasses[one] == nil {
			ctx.JSON(http.StatusOK, gin.H{})
			return
		}
		names = []string{one}
	}
	native := c.s.current().Model.SampleSize()
	for _, n := range names {
		cls := comfyClasses[n]
		req, opt := gin.H{}, gin.H{}
		var reqOrder, optOrder []string
		for _, in := range cls.Inputs {
			var spec []any
			switch in.Type {
			case "COMBO":
				spec = []any{in.Choices(g), gin.H{}}
			case "INT", "FLOAT":
				def := in.Default
				if n == "EmptyLatentImage" && in.Name != "batch_size" {
					def = native // the model's native size
				}
				o := gin.H{"default": def, "min": in.Min, "max": in.Max}
				if in.Step != 0 {
					o["step"] = in.Step
				}
				spec = []any{in.Type, o}
			case "STRING":
				spec = []any{in.Type, gin.H{"default": in.Default, "multiline": in.Multi}}
			default:
				spec = []any{in.Type}
			}
			if in.Optional {
				opt[in.Name] = spec
				optOrder = append(optOrder, in.Name)
			} else {
				req[in.Name] = spec
				reqOrder = append(reqOrder, in.Name)
			}
		}
		input := gin.H{"required": req}
		order := gin.H{"required": reqOrder}
		if len(opt) > 0 {
			input["optional"] = opt
			order["optional"] = optOrder
		}
		isList := make([]bool, len(cls.Outputs))
		res[n] = gin.H{"input": input, "input_order": order, "output": cls.Outputs, "output_is_list": isList,
			"output_name": cls.OutputNames, "name": n, "display_name": cls.Display, "description": cls.Description,
			"python_module": "nodes", "category": cls.Category, "output_node": cls.OutputNode}
	}
	ctx.JSON(http.StatusOK, res)
}

func (c *comfyState) systemStats(ctx *gin.Context) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	total := MachineMemory()
	free := total - int64(ms.Sys)
	if free < 0 {
		free = 0
	}
	ctx.JSON(http.StatusOK, gin.H{
		"system": gin.H{"os": runtime.GOOS, "ram_total": total, "ram_free": free, "comfyui_version": "ldm",
			"python_version": "none (Go " + runtime.Version() + ")", "pytorch_version": "none (GoMLX)", "embedded_python": false, "argv": []string{"ldm", "serve"}},
		"devices": []gin.H{{"name": "cpu", "type": "cpu", "index": 0, "vram_total": total, "vram_free": free,
			"torch_vram_total": 0, "torch_vram_free": 0}},
	})
}

// comfyUploads keeps uploaded input images in memory, the oldest dropped
// beyond the byte cap.
type comfyUploads struct {
	mu    sync.Mutex
	cap   int64
	size  int64
	data  map[string][]byte
	order []string
}

func newComfyUploads(cap int64) *comfyUploads {
	return &comfyUploads{cap: cap, data: map[string][]byte{}}
}

func (u *comfyUploads) put(name string, data []byte, overwrite bool) (string, error) {
	if int64(len(data)) > u.cap {
		return "", fmt.Errorf("the image is %d bytes, more than the %d the server keeps for uploads", len(data), u.cap)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if old, ok := u.data[name]; ok && !overwrite && !bytes.Equal(old, data) {
		// ComfyUI's rule: "name (1).ext", "name (2).ext", …
		ext := path.Ext(name)
		stem := strings.TrimSuffix(name, ext)
		for i := 1; ; i++ {
			n := fmt.Sprintf("%s (%d)%s", stem, i, ext)
			if old, ok := u.data[n]; !ok || bytes.Equal(old, data) {
				name = n
				break
			}
		}
	}
	if old, ok := u.data[name]; ok {
		u.size -= int64(len(old))
		for i, n := range u.order {
			if n == name {
				u.order = append(u.order[:i], u.order[i+1:]...)
				break
			}
		}
	}
	for u.size+int64(len(data)) > u.cap && len(u.order) > 0 {
		u.size -= int64(len(u.data[u.order[0]]))
		delete(u.data, u.order[0])
		u.order = u.order[1:]
	}
	u.data[name] = data
	u.order = append(u.order, name)
	u.size += int64(len(data))
	return name, nil
}

func (u *comfyUploads) get(name string) ([]byte, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	d, ok := u.data[name]
	return d, ok
}

func (u *comfyUploads) names() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := append([]string{}, u.order...)
	sort.Strings(out)
	return out
}

// unixMillis is ComfyUI's message timestamp.
func unixMillis() int64 { return time.Now().UnixMilli() }
