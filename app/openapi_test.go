package app

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAPIDescribesEveryRoute: every route the engine serves has its
// description in /openapi.json and every description a route (a route
// added without one fails here).
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	s, ts := testServer(t, fake(), Config{})
	spec := call(t, "GET", ts.URL+"/openapi.json", nil)
	if spec.Status != http.StatusOK {
		t.Fatalf("/openapi.json: %d %s", spec.Status, spec.Body)
	}
	doc := spec.json(t)
	paths, _ := doc["paths"].(map[string]any)
	served := map[string]bool{}
	for _, r := range servedRoutes(s.engine) {
		served[r] = true
		method, path, _ := strings.Cut(r, " ")
		p, _ := openAPIPath(path)
		item, _ := paths[p].(map[string]any)
		if _, ok := item[strings.ToLower(method)]; !ok {
			t.Errorf("%s is served but not described in /openapi.json: add it to an apiGroup (app/openapi.go)", r)
		}
	}
	for _, g := range apiGroups {
		for _, op := range g.Ops {
			if !served[op.Method+" "+op.Path] {
				t.Errorf("%s %s is described but not served", op.Method, op.Path)
			}
		}
	}
}

// TestOpenAPIStructure checks the document against OpenAPI 3.0's rules
// for what it uses: version, info, paths starting with "/", operations
// with responses and unique ids, every path template parameter declared
// as a required path parameter, tags declared, security schemes defined.
func TestOpenAPIStructure(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	doc := call(t, "GET", ts.URL+"/openapi.json", nil).json(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.\d+\.\d+$`).MatchString(v) {
		t.Errorf("openapi = %q, want 3.x.y", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == "" || info["title"] == nil || info["version"] == "" || info["version"] == nil {
		t.Errorf("info needs title and version: %v", info)
	}
	tags := map[string]bool{}
	for _, tg := range doc["tags"].([]any) {
		tags[tg.(map[string]any)["name"].(string)] = true
	}
	schemes := get(doc, "components", "securitySchemes").(map[string]any)
	ids := map[string]string{}
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}
	tmpl := regexp.MustCompile(`\{([^}]+)\}`)
	paths := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatal("no paths")
	}
	for p, it := range paths {
		if !strings.HasPrefix(p, "/") {
			t.Errorf("path %q does not start with /", p)
		}
		for m, o := range it.(map[string]any) {
			where := m + " " + p
			if !methods[m] {
				t.Errorf("%s: %q is not an HTTP method", where, m)
				continue
			}
			op := o.(map[string]any)
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] != "" {
				t.Errorf("%s: operationId %q empty or also used by %s", where, id, ids[id])
			}
			ids[id] = where
			rs, _ := op["responses"].(map[string]any)
			if len(rs) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for code, r := range rs {
				if code != "default" && !regexp.MustCompile(`^[1-5](\d\d|XX)$`).MatchString(code) {
					t.Errorf("%s: response code %q", where, code)
				}
				if d, _ := r.(map[string]any)["description"].(string); d == "" {
					t.Errorf("%s %s: a response needs a description", where, code)
				}
			}
			declared := map[string]bool{}
			if ps, ok := op["parameters"].([]any); ok {
				for _, x := range ps {
					pm := x.(map[string]any)
					if pm["in"] == "path" {
						if pm["required"] != true {
							t.Errorf("%s: path parameter %v must be required", where, pm["name"])
						}
						declared[pm["name"].(string)] = true
					}
					if pm["schema"] == nil {
						t.Errorf("%s: parameter %v has no schema", where, pm["name"])
					}
				}
			}
			for _, mt := range tmpl.FindAllStringSubmatch(p, -1) {
				if !declared[mt[1]] {
					t.Errorf("%s: path parameter {%s} not declared", where, mt[1])
				}
			}
			if len(declared) != len(tmpl.FindAllString(p, -1)) {
				t.Errorf("%s: declares path parameters the path lacks", where)
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				if c, _ := rb["content"].(map[string]any); len(c) == 0 {
					t.Errorf("%s: requestBody without content", where)
				}
			}
			for _, tg := range op["tags"].([]any) {
				if !tags[tg.(string)] {
					t.Errorf("%s: tag %v not declared", where, tg)
				}
			}
			for _, req := range op["security"].([]any) {
				for name := range req.(map[string]any) {
					if schemes[name] == nil {
						t.Errorf("%s: security scheme %q not defined", where, name)
					}
				}
			}
		}
	}
	page := call(t, "GET", ts.URL+"/docs", nil)
	if page.Status != http.StatusOK || !strings.Contains(string(page.Body), "openapi.json") {
		t.Errorf("/docs: %d %.200s", page.Status, page.Body)
	}
}
