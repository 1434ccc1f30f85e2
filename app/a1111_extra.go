package app

import (
	"bufio"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// More of AUTOMATIC1111's API: /memory, /interrogate, /refresh-vae and
// /refresh-embeddings.

func init() {
	addAPIGroup(apiGroup{Tag: "automatic1111", Ops: []apiOp{
		{Method: "GET", Path: "/sdapi/v1/memory", Summary: "RAM in AUTOMATIC1111's shape (ram: free, used = this process's RSS, total); cuda: an error (no CUDA)"},
		{Method: "POST", Path: "/sdapi/v1/interrogate", Summary: "Caption an image: 501, no interrogation model is loaded", Body: ctJSON},
		{Method: "POST", Path: "/sdapi/v1/refresh-vae", Summary: "Rescan VAEs (listed fresh on every GET)"},
		{Method: "POST", Path: "/sdapi/v1/refresh-embeddings", Summary: "Rescan textual inversions"},
	}})
}

func (s *Server) a1111ExtraRoutes(g *gin.RouterGroup) {
	g.GET("/memory", s.a1111Memory)
	g.POST("/interrogate", func(c *gin.Context) {
		s.fail(c, http.StatusNotImplemented, "model", errors.New("no interrogation (CLIP or DeepBooru captioning) model is loaded: ldm cannot caption images"))
	})
	// The listings read their folders on every GET: a refresh has nothing
	// to do beyond answering as A1111 does.
	g.POST("/refresh-vae", func(c *gin.Context) { c.JSON(http.StatusOK, nil) })
	g.POST("/refresh-embeddings", func(c *gin.Context) { c.JSON(http.StatusOK, nil) })
}

// a1111Memory answers A1111's /memory: ram.used is this process's resident
// memory, ram.total the memory it may use (cgroup limit or machine), free
// the difference, as A1111 computes them from psutil.
func (s *Server) a1111Memory(c *gin.Context) {
	total := float64(MachineMemory())
	used := float64(processRSS())
	c.JSON(http.StatusOK, gin.H{
		"ram":  gin.H{"free": max(0, total-used), "used": used, "total": total},
		"cuda": gin.H{"error": "ldm reports no CUDA memory"},
	})
}

// processRSS is this process's resident set size in bytes (0 if unknown).
func processRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
