package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/audio"
	"github.com/ldm-project/ldm/audio/music"
	"github.com/ldm-project/ldm/ldm"
)

// audioRequest is music.Request's JSON plus a base64 WAV for audio-to-audio.
type audioRequest struct {
	music.Request
	InitAudio string `json:"init_audio"`
	// Format of the WAV samples: "pcm16" (default) or "float32".
	Format string `json:"format"`
}

// audioRoutes serves text to music on the loaded model (Riffusion's
// method, see package music).
func (s *Server) audioRoutes(api *gin.RouterGroup) {
	api.POST("/audio", s.generateAudio)
}

// generateAudio runs one music request synchronously, serialised with the
// image jobs, and answers the WAV (Accept: audio/wav) or JSON with the WAV
// and the spectrogram images in base64.
func (s *Server) generateAudio(c *gin.Context) {
	var ar audioRequest
	if err := decodeJSON(c, &ar); err != nil {
		s.failErr(c, err, nil)
		return
	}
	req := ar.Request
	if strings.TrimSpace(req.Prompt) == "" {
		s.fail(c, http.StatusBadRequest, "prompt", errors.New("prompt: give what the music should be"))
		return
	}
	if len(req.Prompt) > s.cfg.Limits.MaxPromptChars || len(req.To) > s.cfg.Limits.MaxPromptChars {
		s.fail(c, http.StatusBadRequest, "prompt", errors.New("prompt: too long"))
		return
	}
	if req.Steps > s.cfg.Limits.MaxSteps {
		s.fail(c, http.StatusBadRequest, "steps", errors.New("steps: above the server's limit"))
		return
	}
	if req.Duration > 60 || req.Clips > 20 {
		s.fail(c, http.StatusBadRequest, "duration", errors.New("duration: at most 60 s and 20 interpolation clips per request"))
		return
	}
	sf, err := audio.ParseSampleFormat(ar.Format)
	if err != nil {
		s.fail(c, http.StatusBadRequest, "format", err)
		return
	}
	if s.draining() {
		s.fail(c, http.StatusServiceUnavailable, "", errShuttingDown)
		return
	}
	m := s.current()
	p, ok := m.Model.(*ldm.Pipeline)
	if !ok {
		s.fail(c, http.StatusNotImplemented, "", errors.New("the loaded model cannot draw audio (it is not an ldm pipeline)"))
		return
	}
	params, err := music.ModelParams(m.Path)
	if err != nil {
		s.fail(c, http.StatusInternalServerError, "", err)
		return
	}
	if ar.InitAudio != "" {
		b, err := decodeBase64("init_audio", ar.InitAudio)
		if err != nil {
			s.failErr(c, err, nil)
			return
		}
		clip, err := audio.ReadWAV(bytes.NewReader(b))
		if err != nil {
			s.fail(c, http.StatusBadRequest, "init_audio", errors.New("init_audio: "+err.Error()))
			return
		}
		if clip.Duration() > 60 {
			s.fail(c, http.StatusBadRequest, "init_audio", errors.New("init_audio: at most 60 s"))
			return
		}
		req.InitAudio = audio.Resample(clip.Mono(), clip.Rate, params.SampleRate)
	}
	// Bounded by the job timeout, the client's connection and the server's hard shutdown.
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.JobTimeout)
	defer cancel()
	stop := context.AfterFunc(s.hardCtx, cancel)
	defer stop()
	s.runMu.Lock()
	start := time.Now()
	res, err := music.Generate(ctx, p, params, req, nil)
	s.runMu.Unlock()
	if err != nil {
		if field, ok := ldm.IsFieldError(err); ok {
			s.fail(c, http.StatusBadRequest, field, err)
			return
		}
		s.fail(c, statusOf(err), "", err)
		return
	}
	var wav bytes.Buffer
	if err := audio.WriteWAV(&wav, res.Rate, sf, res.Audio); err != nil {
		s.fail(c, http.StatusInternalServerError, "", err)
		return
	}
	if strings.Contains(c.GetHeader("Accept"), "audio/wav") {
		c.Data(http.StatusOK, "audio/wav", wav.Bytes())
		return
	}
	specs := make([]string, len(res.Spectrograms))
	for i, img := range res.Spectrograms {
		var b bytes.Buffer
		if err := audio.EncodePNG(&b, img, res.Params, audio.DefaultMaxValue); err != nil {
			s.fail(c, http.StatusInternalServerError, "", err)
			return
		}
		specs[i] = base64.StdEncoding.EncodeToString(b.Bytes())
	}
	c.JSON(http.StatusOK, gin.H{
		"audio": base64.StdEncoding.EncodeToString(wav.Bytes()), "format": "wav", "sample_rate": res.Rate,
		"duration": float64(len(res.Audio)) / float64(res.Rate), "seed": res.Seed, "spectrograms": specs,
		"params": res.Params, "model": m.Name, "seconds": time.Since(start).Seconds(),
	})
}
