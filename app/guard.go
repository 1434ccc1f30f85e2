package app

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
)

// Browsers are the hostile clients of a server on loopback: any page the
// user opens can send it requests. guard stands between them and every
// route:
//
//   - Host must be a loopback name, an IP address, or a configured host,
//     so a DNS-rebinding page (its own domain resolving to 127.0.0.1)
//     cannot read answers;
//   - a state-changing request whose Origin is neither this server's nor
//     an allowed CORS origin is refused (a foreign page's form or
//     text/plain POST never reaches a handler);
//   - allowed CORS origins get Access-Control-Allow-Origin on every
//     answer, errors included, and a preflight answer, so a web UI on
//     another origin sees the server's errors instead of nothing.
//
// JSON routes further require a JSON Content-Type (readBody).

// corsMethods and corsHeaders are what a preflight allows.
const (
	corsMethods = "GET, POST, DELETE, OPTIONS"
	corsHeaders = "Content-Type, Authorization, Last-Event-ID"
)

// policy is the compiled Host/Origin configuration.
type policy struct {
	hosts      map[string]bool // lower-case host names allowed besides loopback and IPs
	anyHost    bool
	origins    map[string]bool
	anyOrigin  bool
	originRe   *regexp.Regexp
	publicOrig string // the origin of Config.PublicURL, counted as this server's own
	publicHost string
}

func newPolicy(cfg Config) (*policy, error) {
	p := &policy{hosts: map[string]bool{}, origins: map[string]bool{}}
	for _, h := range cfg.AllowedHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case h == "":
		case h == "*":
			p.anyHost = true
		default:
			if host, _, err := net.SplitHostPort(h); err == nil {
				h = host
			}
			p.hosts[strings.Trim(h, "[]")] = true
		}
	}
	for _, o := range cfg.CORSOrigins {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
		case o == "*":
			p.anyOrigin = true
		default:
			p.origins[strings.TrimSuffix(o, "/")] = true
		}
	}
	if cfg.CORSOriginRegex != "" {
		// Anchored: the whole origin must match, as Starlette's
		// allow_origin_regex (AUTOMATIC1111's --cors-allow-origins-regex) does.
		re, err := regexp.Compile(`^(?:` + cfg.CORSOriginRegex + `)$`)
		if err != nil {
			return nil, fmt.Errorf("CORS origin regex %q: %w", cfg.CORSOriginRegex, err)
		}
		p.originRe = re
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("public URL %q: want http(s)://host[:port][/path]", cfg.PublicURL)
		}
		p.publicOrig = u.Scheme + "://" + strings.ToLower(u.Host)
		p.publicHost = strings.ToLower(u.Hostname())
	}
	return p, nil
}

// hostAllowed: loopback names, IP literals (a rebinding attack needs a
// domain name) and configured hosts.
func (p *policy) hostAllowed(hostport string) bool {
	if p.anyHost {
		return true
	}
	host := strings.ToLower(hostport)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	switch {
	case host == "":
		return false
	case host == "localhost" || strings.HasSuffix(host, ".localhost"): // RFC 6761: always loopback
		return true
	case net.ParseIP(host) != nil:
		return true
	}
	return p.hosts[host] || host == p.publicHost
}

// corsAllowed: an origin the configuration lets read answers.
func (p *policy) corsAllowed(origin string) bool {
	if origin == "" || origin == "null" {
		return false
	}
	return p.anyOrigin || p.origins[origin] || (p.originRe != nil && p.originRe.MatchString(origin))
}

// sameOrigin: the Origin is the server as the request addressed it, or as
// its public URL names it.
func (p *policy) sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, host) || (p.publicOrig != "" && strings.EqualFold(origin, p.publicOrig))
}

func (s *Server) guard(c *gin.Context) {
	r := c.Request
	origin := r.Header.Get("Origin")
	allowed := s.policy.corsAllowed(origin)
	if allowed {
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "Retry-After, Location, WWW-Authenticate")
	}
	if origin != "" || len(s.policy.origins) > 0 || s.policy.anyOrigin || s.policy.originRe != nil {
		c.Writer.Header().Add("Vary", "Origin")
	}
	if !s.policy.hostAllowed(r.Host) {
		s.fail(c, http.StatusForbidden, "", fmt.Errorf("Host %q is not allowed (DNS-rebinding protection): serve it with --allowed-hosts %s", r.Host, hostOnly(r.Host)))
		return
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		if !allowed {
			s.fail(c, http.StatusForbidden, "", fmt.Errorf("origin %q is not allowed: list it with --cors-allow-origins", origin))
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Methods", corsMethods)
		h.Set("Access-Control-Allow-Headers", corsHeaders)
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if origin != "" && !allowed && !s.policy.sameOrigin(origin, r.Host) {
			s.fail(c, http.StatusForbidden, "", fmt.Errorf("cross-origin %s from %q refused: allow the origin with --cors-allow-origins", r.Method, origin))
			return
		}
	}
	c.Next()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// errContentType: a JSON route got a body of another type.
type errContentType struct{ got string }

func (e *errContentType) Error() string {
	got := e.got
	if got == "" {
		got = "none"
	}
	return fmt.Sprintf("Content-Type %s: send application/json (curl: -H 'Content-Type: application/json')", got)
}

// checkJSONType refuses a body that is not declared JSON: a browser sends
// text/plain, form or multipart bodies cross-origin without asking first.
func checkJSONType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return &errContentType{got: ct}
	}
	return nil
}

func isContentTypeError(err error) bool {
	var e *errContentType
	return errors.As(err, &e)
}
