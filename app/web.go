package app

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// indexHTML is the whole web page: markup, style and script inline, no
// external assets, so it works offline and behind any proxy.
//
//go:embed web/index.html
var indexHTML []byte

func (s *Server) webRoutes(e *gin.Engine) {
	e.GET("/", func(c *gin.Context) {
		c.Header("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
		c.Header("X-Content-Type-Options", "nosniff")
		c.Data(http.StatusOK, "text/html; charset=utf-8", indexHTML)
	})
	e.GET("/favicon.ico", func(c *gin.Context) { c.Status(http.StatusNoContent) })
}
