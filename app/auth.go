package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// auth checks credentials when any are configured: a missing Authorization
// header is 401, a wrong one 403. /healthz (probes) and /v1/files/ (URLs
// with unguessable names handed out by the OpenAI route, fetched by clients
// that send no credentials) stay open, and so does the page itself when only
// an API key is set (the page asks for the key).
func (s *Server) auth(c *gin.Context) {
	if s.cfg.APIKey == "" && len(s.cfg.BasicAuth) == 0 {
		c.Next()
		return
	}
	path := c.Request.URL.Path
	if path == "/healthz" || strings.HasPrefix(path, "/v1/files/") || (path == "/" && len(s.cfg.BasicAuth) == 0) {
		c.Next()
		return
	}
	if c.GetHeader("Authorization") == "" {
		if len(s.cfg.BasicAuth) > 0 {
			c.Header("WWW-Authenticate", `Basic realm="ldm", charset="UTF-8"`)
		} else {
			c.Header("WWW-Authenticate", `Bearer realm="ldm"`)
		}
		s.fail(c, http.StatusUnauthorized, "", errors.New("authentication required: send \"Authorization: Bearer <api key>\" or HTTP Basic credentials"))
		return
	}
	if !s.credentialsOK(c.Request) {
		s.fail(c, http.StatusForbidden, "", errors.New("the credentials are not valid"))
		return
	}
	c.Next()
}

func (s *Server) credentialsOK(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if key, ok := strings.CutPrefix(h, "Bearer "); ok && s.cfg.APIKey != "" {
		return equal(strings.TrimSpace(key), s.cfg.APIKey)
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	found := false
	for _, up := range s.cfg.BasicAuth {
		// Check every pair, so the time taken does not tell which matched.
		if equal(user+":"+pass, up) {
			found = true
		}
	}
	return found
}

// equal compares secrets in constant time (hashing first hides lengths).
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// CheckListen refuses a non-loopback listen address without credentials
// unless insecure is set: an open image generator on a network is an
// invitation to burn someone's GPU.
func CheckListen(addr string, authConfigured, insecure bool) error {
	if authConfigured || insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if isLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without authentication: set --api-key or --api-auth, bind 127.0.0.1, or pass --insecure", addr)
}

func isLoopback(host string) bool {
	if host == "" {
		return false // all interfaces
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}
