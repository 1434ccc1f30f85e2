package app

import (
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
)

// The API description: /openapi.json (OpenAPI 3.0) and /docs, a page that
// lists it. Every route served is described here; TestOpenAPIDescribesEveryRoute
// fails when a route is served but not listed (or listed but not served).
// A route family adds its group with addAPIGroup, in its own file.

// apiOp describes one route.
type apiOp struct {
	Method  string // "GET", "POST", …
	Path    string // gin syntax: "/api/v1/jobs/:id"
	Summary string
	Body    string // request content type ("" none): "application/json", "multipart/form-data"
	Resp    string // success content type (default "application/json")
	Notes   string // longer description (optional)
}

// apiGroup is a route family: one OpenAPI tag.
type apiGroup struct {
	Tag, Description string
	Ops              []apiOp
}

var apiGroups []apiGroup

// addAPIGroup adds a route family's description (call it from an init in
// the family's file); a second group with the same tag adds its routes to
// the first (init order is file order).
func addAPIGroup(g apiGroup) {
	for i := range apiGroups {
		if apiGroups[i].Tag == g.Tag {
			apiGroups[i].Ops = append(apiGroups[i].Ops, g.Ops...)
			if apiGroups[i].Description == "" {
				apiGroups[i].Description = g.Description
			}
			return
		}
	}
	apiGroups = append(apiGroups, g)
}

const (
	ctJSON      = "application/json"
	ctMultipart = "multipart/form-data"
	ctSSE       = "text/event-stream"
	ctPNG       = "image/png"
	ctHTML      = "text/html"
	ctText      = "text/plain"
	ctImage     = "image/*"
)

func init() {
	addAPIGroup(apiGroup{Tag: "native", Description: "ldm's own API: asynchronous jobs with events, synchronous generation, listings.", Ops: []apiOp{
		{Method: "GET", Path: "/healthz", Summary: "Liveness and the loaded model"},
		{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics", Resp: ctText},
		{Method: "POST", Path: "/api/v1/jobs", Summary: "Queue a generation job (ldm.Request JSON, images base64)", Body: ctJSON},
		{Method: "GET", Path: "/api/v1/jobs/:id", Summary: "A job's state, progress and images"},
		{Method: "DELETE", Path: "/api/v1/jobs/:id", Summary: "Cancel a job"},
		{Method: "GET", Path: "/api/v1/jobs/:id/events", Summary: "A job's events (queued, progress, preview, done)", Resp: ctSSE},
		{Method: "GET", Path: "/api/v1/jobs/:id/images/:file", Summary: "One of a job's images", Resp: ctPNG},
		{Method: "POST", Path: "/api/v1/generate", Summary: "Generate and wait for the images", Body: ctJSON},
		{Method: "GET", Path: "/api/v1/models", Summary: "Models, the loaded one marked, with native sizes"},
		{Method: "GET", Path: "/api/v1/samplers", Summary: "Sampler names"},
		{Method: "GET", Path: "/api/v1/defaults", Summary: "What each absent field of a native request means on the loaded model (ldm.Request JSON)"},
		{Method: "POST", Path: "/api/v1/audio", Summary: "Generate audio (riffusion spectrogram models)", Body: ctJSON},
		{Method: "GET", Path: "/", Summary: "The web page", Resp: ctHTML},
		{Method: "GET", Path: "/favicon.ico", Summary: "No icon (204)", Resp: ctText},
		{Method: "GET", Path: "/openapi.json", Summary: "This description (OpenAPI 3.0)"},
		{Method: "GET", Path: "/docs", Summary: "A page listing every route, read from /openapi.json", Resp: ctHTML},
	}})
	addAPIGroup(apiGroup{Tag: "automatic1111", Description: "AUTOMATIC1111 web UI API (/sdapi/v1).", Ops: []apiOp{
		{Method: "POST", Path: "/sdapi/v1/txt2img", Summary: "Text to image", Body: ctJSON},
		{Method: "POST", Path: "/sdapi/v1/img2img", Summary: "Image to image and inpainting", Body: ctJSON},
		{Method: "GET", Path: "/sdapi/v1/progress", Summary: "Progress of the running job, with a preview"},
		{Method: "POST", Path: "/sdapi/v1/interrupt", Summary: "Stop the running job"},
		{Method: "GET", Path: "/sdapi/v1/sd-models", Summary: "Checkpoints, with native sizes"},
		{Method: "POST", Path: "/sdapi/v1/refresh-checkpoints", Summary: "Rescan the models folder"},
		{Method: "GET", Path: "/sdapi/v1/samplers", Summary: "Samplers"},
		{Method: "GET", Path: "/sdapi/v1/schedulers", Summary: "Schedules"},
		{Method: "GET", Path: "/sdapi/v1/options", Summary: "Options"},
		{Method: "POST", Path: "/sdapi/v1/options", Summary: "Set options; sd_model_checkpoint switches the model (empty: keep it)", Body: ctJSON},
		{Method: "POST", Path: "/sdapi/v1/png-info", Summary: "Read a PNG's generation parameters", Body: ctJSON},
		{Method: "GET", Path: "/sdapi/v1/sd-vae", Summary: "VAEs"},
		{Method: "GET", Path: "/sdapi/v1/upscalers", Summary: "Upscalers"},
		{Method: "GET", Path: "/sdapi/v1/latent-upscale-modes", Summary: "Latent upscale modes"},
		{Method: "POST", Path: "/sdapi/v1/extra-single-image", Summary: "Upscale an image (Lanczos, Nearest)", Body: ctJSON},
		{Method: "POST", Path: "/sdapi/v1/extra-batch-images", Summary: "Upscale images (Lanczos, Nearest)", Body: ctJSON},
		{Method: "GET", Path: "/sdapi/v1/hypernetworks", Summary: "Hypernetworks (none)"},
		{Method: "GET", Path: "/sdapi/v1/face-restorers", Summary: "Face restorers (none)"},
		{Method: "GET", Path: "/sdapi/v1/prompt-styles", Summary: "Prompt styles"},
		{Method: "GET", Path: "/sdapi/v1/realesrgan-models", Summary: "RealESRGAN models (none)"},
		{Method: "GET", Path: "/sdapi/v1/loras", Summary: "LoRAs in the LoRA folder"},
		{Method: "POST", Path: "/sdapi/v1/refresh-loras", Summary: "Rescan the LoRA folder"},
		{Method: "GET", Path: "/sdapi/v1/embeddings", Summary: "Textual inversions"},
		{Method: "GET", Path: "/sdapi/v1/cmd-flags", Summary: "The server's settings"},
		{Method: "GET", Path: "/sdapi/v1/scripts", Summary: "Scripts (none)"},
	}})
	addAPIGroup(apiGroup{Tag: "controlnet", Description: "sd-webui-controlnet extension API.", Ops: []apiOp{
		{Method: "GET", Path: "/controlnet/version", Summary: "Extension API version"},
		{Method: "GET", Path: "/controlnet/model_list", Summary: "ControlNet models"},
		{Method: "GET", Path: "/controlnet/module_list", Summary: "Preprocessors"},
		{Method: "POST", Path: "/controlnet/detect", Summary: "Run a preprocessor", Body: ctJSON},
	}})
	addAPIGroup(apiGroup{Tag: "openai", Description: "OpenAI images API (/v1), as the official SDKs call it.", Ops: []apiOp{
		{Method: "POST", Path: "/v1/images/generations", Summary: "Create images", Body: ctJSON},
		{Method: "GET", Path: "/v1/models", Summary: "Models, with native sizes"},
		{Method: "GET", Path: "/v1/files/:name", Summary: "An image handed out as a URL (expires)", Resp: ctImage},
	}})
}

// describedOp finds a route's description.
func describedOp(method, path string) (apiGroup, apiOp, bool) {
	for _, g := range apiGroups {
		for _, op := range g.Ops {
			if op.Method == method && op.Path == path {
				return g, op, true
			}
		}
	}
	return apiGroup{}, apiOp{}, false
}

// openAPIPath turns gin's "/a/:id/*rest" into OpenAPI's "/a/{id}/{rest}"
// and returns the parameter names.
func openAPIPath(p string) (string, []string) {
	parts := strings.Split(p, "/")
	var params []string
	for i, s := range parts {
		if len(s) > 1 && (s[0] == ':' || s[0] == '*') {
			params = append(params, s[1:])
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/"), params
}

// openAPISpec builds the OpenAPI 3.0 document from apiGroups.
func openAPISpec() map[string]any {
	paths := map[string]any{}
	var tags []map[string]any
	security := []map[string][]string{{}, {"bearer": {}}, {"basic": {}}} // auth is optional: on when configured
	for _, g := range apiGroups {
		tags = append(tags, map[string]any{"name": g.Tag, "description": g.Description})
		for _, op := range g.Ops {
			p, params := openAPIPath(op.Path)
			item, _ := paths[p].(map[string]any)
			if item == nil {
				item = map[string]any{}
				paths[p] = item
			}
			resp := op.Resp
			if resp == "" {
				resp = ctJSON
			}
			o := map[string]any{
				"operationId": operationID(op),
				"summary":     op.Summary,
				"tags":        []string{g.Tag},
				"security":    security,
				"responses": map[string]any{
					"200":     map[string]any{"description": "OK", "content": map[string]any{resp: map[string]any{}}},
					"default": map[string]any{"description": "An error, in the shape of the route's API family", "content": map[string]any{ctJSON: map[string]any{}}},
				},
			}
			if op.Notes != "" {
				o["description"] = op.Notes
			}
			if len(params) > 0 {
				var ps []map[string]any
				for _, n := range params {
					ps = append(ps, map[string]any{"name": n, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
				}
				o["parameters"] = ps
			}
			if op.Body != "" {
				o["requestBody"] = map[string]any{"required": true, "content": map[string]any{op.Body: map[string]any{"schema": map[string]any{"type": "object"}}}}
			}
			item[strings.ToLower(op.Method)] = o
		}
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "ldm", "version": "1",
			"description": "Latent diffusion server: native, AUTOMATIC1111, ControlNet and OpenAI routes. All of them share one queue, the request limits and the configured authentication."},
		"paths": paths,
		"tags":  tags,
		"components": map[string]any{"securitySchemes": map[string]any{
			"bearer": map[string]any{"type": "http", "scheme": "bearer"},
			"basic":  map[string]any{"type": "http", "scheme": "basic"},
		}},
	}
}

// operationID is a unique name for an operation: "post_sdapi_v1_txt2img".
func operationID(op apiOp) string {
	r := strings.NewReplacer("/", "_", ":", "", "*", "", "-", "_", ".", "_")
	id := strings.ToLower(op.Method) + r.Replace(op.Path)
	if op.Path == "/" {
		id += "root"
	}
	return id
}

func (s *Server) docRoutes(e *gin.Engine) {
	e.GET("/openapi.json", func(c *gin.Context) { c.JSON(http.StatusOK, openAPISpec()) })
	e.GET("/docs", func(c *gin.Context) {
		c.Header("Content-Security-Policy", "default-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
		c.Header("X-Content-Type-Options", "nosniff")
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(docsHTML))
	})
}

// servedRoutes lists "METHOD path" of every route an engine serves.
func servedRoutes(e *gin.Engine) []string {
	var out []string
	for _, r := range e.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	sort.Strings(out)
	return out
}

const docsHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ldm API</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}h2{margin-top:1.5em}
code{background:#eee;padding:1px 4px}td{padding:2px 8px;vertical-align:top}.m{font-weight:bold}</style></head>
<body><h1>ldm API</h1><p>Every route this server serves, from <a href="openapi.json">/openapi.json</a> (OpenAPI 3).</p>
<div id="out">Loading…</div>
<script>
fetch("openapi.json").then(r => r.json()).then(spec => {
  const out = document.getElementById("out"); out.textContent = "";
  for (const tag of spec.tags) {
    const h = document.createElement("h2"); h.textContent = tag.name; out.appendChild(h);
    const p = document.createElement("p"); p.textContent = tag.description; out.appendChild(p);
    const t = document.createElement("table"); out.appendChild(t);
    for (const [path, item] of Object.entries(spec.paths).sort()) {
      for (const [method, op] of Object.entries(item)) {
        if (!op.tags.includes(tag.name)) continue;
        const tr = t.insertRow();
        tr.insertCell().textContent = method.toUpperCase(); tr.cells[0].className = "m";
        const c = document.createElement("code"); c.textContent = path; tr.insertCell().appendChild(c);
        tr.insertCell().textContent = op.summary + (op.description ? " — " + op.description : "");
      }
    }
  }
}).catch(e => { document.getElementById("out").textContent = "Could not read openapi.json: " + e; });
</script></body></html>
`
