package app

import (
	"errors"
	"image"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

// requestDefaults answers GET /api/v1/defaults: the native request every
// absent field stands for on the loaded model (ldm.Blank with
// Request.Defaults applied at the model's size; strength and mask_blur as
// an img2img or inpainting request gets them), so that a front end such as
// the web page shows the library's defaults instead of restating them.
func (s *Server) requestDefaults(c *gin.Context) {
	m := s.current()
	if m == nil || m.Model == nil {
		s.fail(c, http.StatusServiceUnavailable, "", errors.New("no model is loaded yet: try again shortly"))
		return
	}
	c.JSON(http.StatusOK, defaultRequest(m.Model.SampleSize()))
}

// defaultRequest is the request GET /api/v1/defaults describes.
func defaultRequest(sampleSize int) ldm.Request {
	r := ldm.Blank()
	px := image.NewGray(image.Rect(0, 0, 1, 1))
	r.InitImage, r.Mask = px, px
	r.Defaults(sampleSize)
	r.InitImage, r.Mask = nil, nil // not part of the JSON; only there for their defaults
	return r
}
