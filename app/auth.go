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

// auth checks credentials when any are configured: missing or wrong ones
// are 401 with WWW-Authenticate (a browser asks again; 403 would stop it),
// in the route family's error shape. /healthz (probes) and /v1/files/ (URLs
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
	if s.credentialsOK(c.Request) {
		c.Next()
		return
	}
	if len(s.cfg.BasicAuth) > 0 {
		c.Header("WWW-Authenticate", `Basic realm="ldm", charset="UTF-8"`)
	} else {
		c.Header("WWW-Authenticate", `Bearer realm="ldm"`)
	}
	msg := "authentication required: send \"Authorization: Bearer <api key>\" or HTTP Basic credentials"
	if c.GetHeader("Authorization") != "" {
		msg = "the credentials are not valid"
	}
	s.fail(c, http.StatusUnauthorized, "", errors.New(msg))
}

func (s *Server) credentialsOK(r *http.Request) bool {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	// The scheme is case-insensitive (RFC 9110 §11.1).
	if scheme, key, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		key = strings.TrimSpace(key)
		return s.cfg.APIKey != "" && key != "" && equal(key, s.cfg.APIKey)
	}
	user, pass, ok := r.BasicAuth() // case-insensitive "Basic"
	if !ok || user == "" || pass == "" {
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

// ParseBasicAuth reads "user:password[,user2:password2]" (spaces around
// pairs ignored). An empty user or password is an error: it would count as
// authentication and open the server to the network.
func ParseBasicAuth(s string) ([]string, error) {
	var out []string
	for _, up := range strings.Split(s, ",") {
		if up = strings.TrimSpace(up); up == "" {
			continue
		}
		if err := checkBasicPair(up); err != nil {
			return nil, err
		}
		out = append(out, up)
	}
	return out, nil
}

func checkBasicPair(up string) error {
	user, pass, ok := strings.Cut(up, ":")
	switch {
	case !ok:
		return errors.New("API auth: a pair has no ':': use user:password")
	case user == "":
		return errors.New("API auth: a pair has an empty user name: use user:password")
	case pass == "":
		return fmt.Errorf("API auth: user %q has an empty password: use user:password", user)
	}
	return nil
}

// checkCredentials refuses configured credentials with empty parts.
func checkCredentials(cfg Config) error {
	if cfg.APIKey != "" && strings.TrimSpace(cfg.APIKey) == "" {
		return errors.New("API key is blank: set a key or none")
	}
	for _, up := range cfg.BasicAuth {
		if err := checkBasicPair(up); err != nil {
			return err
		}
	}
	return nil
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
