package app

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

// a1111UpscaleRoutes are AUTOMATIC1111's upscaler listings and extras.
func (s *Server) a1111UpscaleRoutes(g *gin.RouterGroup) {
	g.GET("/upscalers", func(c *gin.Context) {
		var out []gin.H
		for _, n := range ldm.PixelUpscalers {
			out = append(out, gin.H{"name": n, "model_name": nil, "model_path": nil, "model_url": nil, "scale": 4})
		}
		c.JSON(http.StatusOK, out)
	})
	g.GET("/latent-upscale-modes", func(c *gin.Context) {
		var out []gin.H
		for _, n := range ldm.LatentUpscaleModes {
			out = append(out, gin.H{"name": n})
		}
		c.JSON(http.StatusOK, out)
	})
	g.POST("/extra-single-image", s.a1111ExtraSingle)
	g.POST("/extra-batch-images", s.a1111ExtraBatch)
}

// a1111Extras are the extras fields this server uses.
type a1111Extras struct {
	ResizeMode flexInt   `json:"resize_mode"` // 0: by upscaling_resize, 1: to upscaling_resize_w×h
	Resize     flexFloat `json:"upscaling_resize"`
	ResizeW    flexInt   `json:"upscaling_resize_w"`
	ResizeH    flexInt   `json:"upscaling_resize_h"`
	Upscaler1  string    `json:"upscaler_1"`
	Image      string    `json:"image"`
	ImageList  []struct {
		Data string `json:"data"`
		Name string `json:"name"`
	} `json:"imageList"`
}

func (s *Server) extrasUpscale(e *a1111Extras, field, b64 string) (string, error) {
	img, err := decodeImage(field, b64)
	if err != nil {
		return "", err
	}
	scale := 2.0
	if e.Resize.Set {
		scale = e.Resize.V
	}
	w, h := 0, 0
	if e.ResizeMode.V == 1 {
		w, h = e.ResizeW.Int(512), e.ResizeH.Int(512)
	}
	l := s.cfg.Limits
	out, err := ldm.Upscale(img, e.Upscaler1, scale, w, h, 2*l.MaxWidth, 2*l.MaxHeight)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := ldm.EncodePNG(&buf, out, nil); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func (s *Server) a1111ExtraSingle(c *gin.Context) {
	var e a1111Extras
	if !s.readExtras(c, &e) {
		return
	}
	out, err := s.extrasUpscale(&e, "image", e.Image)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	c.JSON(http.StatusOK, gin.H{"html_info": "", "image": out})
}

func (s *Server) a1111ExtraBatch(c *gin.Context) {
	var e a1111Extras
	if !s.readExtras(c, &e) {
		return
	}
	var out []string
	for i, im := range e.ImageList {
		b, err := s.extrasUpscale(&e, fmt.Sprintf("imageList[%d].data", i), im.Data)
		if err != nil {
			s.failErr(c, err, nil)
			return
		}
		out = append(out, b)
	}
	c.JSON(http.StatusOK, gin.H{"html_info": "", "images": out})
}

func (s *Server) readExtras(c *gin.Context, e *a1111Extras) bool {
	body, err := readBody(c)
	if err == nil {
		err = unmarshal(body, e)
	}
	if err != nil {
		s.failErr(c, err, nil)
		return false
	}
	return true
}
