package app

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func TestAuthAnswers401WithWWWAuthenticateWithoutOrWithWrongCredentials(t *testing.T) {
	basic := func(up string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(up)) }
	routes := []struct{ method, path, body string }{
		{"POST", "/api/v1/jobs", `{"prompt":"a","steps":1}`},
		{"POST", "/api/v1/generate", `{"prompt":"a","steps":1}`},
		{"GET", "/api/v1/jobs/x", ""},
		{"GET", "/api/v1/jobs/x/events", ""},
		{"DELETE", "/api/v1/jobs/x", ""},
		{"GET", "/api/v1/models", ""},
		{"GET", "/api/v1/samplers", ""},
		{"GET", "/metrics", ""},
		{"POST", "/sdapi/v1/txt2img", `{"prompt":"a","steps":1}`},
		{"POST", "/sdapi/v1/img2img", `{"prompt":"a"}`},
		{"GET", "/sdapi/v1/progress", ""},
		{"POST", "/sdapi/v1/interrupt", ""},
		{"GET", "/sdapi/v1/sd-models", ""},
		{"GET", "/sdapi/v1/samplers", ""},
		{"GET", "/sdapi/v1/schedulers", ""},
		{"GET", "/sdapi/v1/options", ""},
		{"POST", "/sdapi/v1/options", `{}`},
		{"POST", "/sdapi/v1/png-info", `{"image":""}`},
		{"POST", "/v1/images/generations", `{"prompt":"a"}`},
		{"GET", "/v1/models", ""},
	}
	_, ts := testServer(t, fake(), Config{APIKey: "k3y", BasicAuth: []string{"ann:pw1", "bob:pw2"}})
	creds := []struct {
		name, header string
		status       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong bearer", "Bearer nope", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"wrong password", basic("ann:pw2"), http.StatusUnauthorized},
		{"empty password", basic("ann:"), http.StatusUnauthorized},
		{"empty user and password", basic(":"), http.StatusUnauthorized},
		{"unknown scheme", "Digest x", http.StatusUnauthorized},
	}
	for _, rt := range routes {
		for _, c := range creds {
			var hdr []string
			if c.header != "" {
				hdr = []string{"Authorization", c.header}
			}
			var body any
			if rt.body != "" {
				body = rt.body
			}
			r := call(t, rt.method, ts.URL+rt.path, body, hdr...)
			if r.Status != c.status {
				t.Errorf("%s %s with %s: status %d, want %d", rt.method, rt.path, c.name, r.Status, c.status)
				continue
			}
			if c.status == http.StatusUnauthorized && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("%s %s: WWW-Authenticate %q", rt.method, rt.path, r.Header.Get("WWW-Authenticate"))
			}
			if styleFor(rt.path) == styleOpenAI && (get(r.json(t), "error", "code") != "invalid_api_key" || get(r.json(t), "error", "type") != "authentication_error") {
				t.Errorf("%s: not OpenAI's error shape: %s", rt.path, r.Body)
			}
		}
		// Schemes are case-insensitive (RFC 9110 §11.1).
		for _, ok := range []string{"Bearer k3y", "bearer k3y", "BEARER  k3y", basic("ann:pw1"), "basic " + basic("bob:pw2")[6:]} {
			var body any
			if rt.body != "" {
				body = rt.body
			}
			r := call(t, rt.method, ts.URL+rt.path, body, "Authorization", ok)
			if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
				t.Errorf("%s %s with %q: status %d", rt.method, rt.path, ok, r.Status)
			}
		}
	}
	// Open: probes and the handed-out image URLs. The page needs Basic auth
	// when it is configured, so the browser asks for it.
	for path, want := range map[string]int{"/healthz": 200, "/v1/files/none.png": 404, "/": 401} {
		if r := call(t, "GET", ts.URL+path, nil); r.Status != want {
			t.Errorf("GET %s without credentials: %d, want %d", path, r.Status, want)
		}
	}
}

func TestPageIsOpenWhenOnlyAnAPIKeyIsSet(t *testing.T) {
	_, ts := testServer(t, fake(), Config{APIKey: "k3y"})
	if r := call(t, "GET", ts.URL+"/", nil); r.Status != http.StatusOK {
		t.Errorf("page: %d", r.Status)
	}
	r := call(t, "GET", ts.URL+"/api/v1/models", nil)
	if r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != `Bearer realm="ldm"` {
		t.Errorf("api without key: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
}

func TestCheckListenRefusesOpenAddressesWithoutAuth(t *testing.T) {
	for _, c := range []struct {
		addr           string
		auth, insecure bool
		ok             bool
	}{
		{"127.0.0.1:7860", false, false, true},
		{"[::1]:7860", false, false, true},
		{"localhost:7860", false, false, true},
		{"0.0.0.0:7860", false, false, false},
		{":7860", false, false, false},
		{"[::]:7860", false, false, false},
		{"0.0.0.0:7860", true, false, true},
		{"0.0.0.0:7860", false, true, true},
		{"no-port", false, false, false},
	} {
		err := CheckListen(c.addr, c.auth, c.insecure)
		if (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, auth=%v, insecure=%v) = %v, want ok=%v", c.addr, c.auth, c.insecure, err, c.ok)
		}
		if err != nil && c.addr != "no-port" && !strings.Contains(err.Error(), "--insecure") {
			t.Errorf("%q: error %q does not say how to proceed", c.addr, err)
		}
	}
}

func TestCredentialsWithEmptyPartsAreRefused(t *testing.T) {
	for _, c := range []struct {
		auth string
		ok   bool
	}{
		{"ann:pw", true}, {"ann:pw, bob:p:w", true}, {"", true},
		{":", false}, {"ann:", false}, {":pw", false}, {"nocolon", false}, {"ann:pw,:", false},
	} {
		_, err := ParseBasicAuth(c.auth)
		if (err == nil) != c.ok {
			t.Errorf("ParseBasicAuth(%q) = %v, want ok=%v", c.auth, err, c.ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("ParseBasicAuth(%q): the error shows the password: %v", c.auth, err)
		}
	}
	for _, cfg := range []Config{{BasicAuth: []string{":"}}, {BasicAuth: []string{"ann:"}}, {APIKey: "  "}} {
		if _, err := New(fake(), cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}
