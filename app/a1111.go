package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

func (s *Server) a1111Routes(g *gin.RouterGroup) {
	g.POST("/txt2img", func(c *gin.Context) { s.a1111Generate(c, false) })
	g.POST("/img2img", func(c *gin.Context) { s.a1111Generate(c, true) })
	g.GET("/progress", s.a1111Progress)
	g.POST("/interrupt", s.a1111Interrupt)
	g.GET("/sd-models", s.a1111Models)
	g.POST("/refresh-checkpoints", func(c *gin.Context) { c.JSON(http.StatusOK, nil) })
	g.GET("/samplers", s.a1111Samplers)
	g.GET("/schedulers", s.a1111Schedulers)
	g.GET("/options", s.a1111GetOptions)
	g.POST("/options", s.a1111SetOptions)
	g.POST("/png-info", s.a1111PNGInfo)
	g.GET("/sd-vae", s.a1111SDVAE)
	s.a1111ExtraRoutes(g)
	// Listings clients read at start-up; this server has none of these.
	s.a1111UpscaleRoutes(g)
	for _, p := range []string{"/hypernetworks", "/face-restorers", "/prompt-styles", "/realesrgan-models"} {
		g.GET(p, func(c *gin.Context) { c.JSON(http.StatusOK, []any{}) })
	}
	g.GET("/loras", s.a1111LoRAs)
	g.POST("/refresh-loras", func(c *gin.Context) { c.JSON(http.StatusOK, nil) }) // listed fresh on every GET
	g.GET("/embeddings", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"loaded": gin.H{}, "skipped": gin.H{}}) })
	g.GET("/cmd-flags", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{}) })
	g.GET("/scripts", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"txt2img": []string{}, "img2img": []string{}}) })
}

// a1111Request holds the AUTOMATIC1111 txt2img/img2img fields this server
// uses; the many others clients send are ignored. Numbers accept strings,
// as A1111's pydantic models do.
type a1111Request struct {
	Prompt               string                     `json:"prompt" ldm:"prompt"`
	NegativePrompt       string                     `json:"negative_prompt" ldm:"negative_prompt"`
	Seed                 flexInt                    `json:"seed" ldm:"seed"`
	SamplerName          string                     `json:"sampler_name" ldm:"sampler"`
	SamplerIndex         string                     `json:"sampler_index"`
	Scheduler            string                     `json:"scheduler" ldm:"schedule"`
	BatchSize            flexInt                    `json:"batch_size" ldm:"batch_size"`
	NIter                flexInt                    `json:"n_iter" ldm:"batch_count"`
	Steps                flexInt                    `json:"steps" ldm:"steps"`
	CfgScale             flexFloat                  `json:"cfg_scale" ldm:"guidance_scale"`
	Width                flexInt                    `json:"width" ldm:"width"`
	Height               flexInt                    `json:"height" ldm:"height"`
	Eta                  flexFloat                  `json:"eta" ldm:"eta"`
	ClipSkip             flexInt                    `json:"clip_skip" ldm:"clip_skip,byhand"`
	OverrideSettings     map[string]json.RawMessage `json:"override_settings"`
	InitImages           []string                   `json:"init_images"`
	Mask                 string                     `json:"mask" ldm:"mask,byhand"`
	DenoisingStrength    flexFloat                  `json:"denoising_strength" ldm:"strength,byhand"`
	MaskBlur             flexInt                    `json:"mask_blur" ldm:"mask_blur,byhand"`
	InpaintingMaskInvert flexInt                    `json:"inpainting_mask_invert"`
	InpaintingFill       flexInt                    `json:"inpainting_fill" ldm:"inpainting_fill,byhand"`
	InpaintFullRes       flexBool                   `json:"inpaint_full_res"`
	InpaintFullResPad    flexInt                    `json:"inpaint_full_res_padding"`
	SendImages           *bool                      `json:"send_images"`
	AlwaysOnScripts      map[string]json.RawMessage `json:"alwayson_scripts"`
	a1111HiresFields
	a1111OutpaintFields
}

// a1111Params names A1111's fields for ldm.Request's (from the ldm tags).
var a1111Params = fieldNames(a1111Request{})

// toRequest translates an A1111 request; defaults and limits stay ldm's.
func (s *Server) a1111ToRequest(ar *a1111Request, img2img bool) (ldm.Request, error) {
	req := ldm.Blank()
	copyFields(ar, &req)
	if req.Sampler == "" {
		req.Sampler = ar.SamplerIndex // the legacy name of sampler_name
	}
	clip, err := s.a1111ClipSkip(ar)
	if err != nil {
		return req, err
	}
	req.ClipSkip = clip
	if req.ControlNets, err = a1111ControlNets(ar.AlwaysOnScripts); err != nil {
		return req, err
	}
	if err := a1111OverrideVAE(ar, &req); err != nil {
		return req, err
	}
	if raw, ok := ar.OverrideSettings["sd_model_checkpoint"]; ok {
		var name string
		if json.Unmarshal(raw, &name) == nil && name != "" {
			found := false
			for _, m := range s.models() {
				if m.matches(name) {
					found = m.Loaded
				}
			}
			if !found {
				return req, &ldm.FieldError{Field: "override_settings.sd_model_checkpoint",
					Msg: fmt.Sprintf("%q is not the loaded model (%s): switch with POST /sdapi/v1/options", name, s.current().Name)}
			}
		}
	}
	if !img2img {
		req.Hires = ar.hires(ar.DenoisingStrength)
		return req, nil
	}
	if len(ar.InitImages) == 0 || ar.InitImages[0] == "" {
		return req, &ldm.FieldError{Field: "init_images", Msg: "is empty: img2img needs an image"}
	}
	if req.InitImage, err = decodeImage("init_images", ar.InitImages[0]); err != nil {
		return req, err
	}
	req.Strength = ar.DenoisingStrength.V
	ar.resizeAndFill(&req)
	if ar.Mask != "" {
		m, err := decodeImage("mask", ar.Mask)
		if err != nil {
			return req, err
		}
		if ar.InpaintingMaskInvert.V == 1 {
			m = invertMask(m)
		}
		req.Mask = m
		if req.InpaintingFill, err = a1111Fill(ar.InpaintingFill); err != nil {
			return req, err
		}
		req.InpaintFullRes, req.InpaintFullResPadding = ar.InpaintFullRes.V, ar.InpaintFullResPad.Int(0)
		if ar.MaskBlur.Set {
			req.MaskBlur = ldm.Blur(int(ar.MaskBlur.V))
		}
	}
	return req, nil
}

// a1111ClipSkip takes override_settings.CLIP_stop_at_last_layers, else a
// clip_skip field, else the server's option.
func (s *Server) a1111ClipSkip(ar *a1111Request) (int, error) {
	if raw, ok := ar.OverrideSettings["CLIP_stop_at_last_layers"]; ok {
		var v flexInt
		if err := json.Unmarshal(raw, &v); err != nil {
			return 0, &ldm.FieldError{Field: "override_settings.CLIP_stop_at_last_layers", Msg: "must be an integer"}
		}
		if v.Set {
			return int(v.V), nil
		}
	}
	if ar.ClipSkip.Set {
		return int(ar.ClipSkip.V), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.options["CLIP_stop_at_last_layers"].(int); ok {
		return v, nil
	}
	return 0, nil
}

// invertMask swaps repaint and keep (A1111's inpainting_mask_invert).
func invertMask(m image.Image) image.Image {
	b := m.Bounds()
	out := image.NewGray(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			g := color.GrayModel.Convert(m.At(x, y)).(color.Gray)
			out.SetGray(x, y, color.Gray{Y: 255 - g.Y})
		}
	}
	return out
}

func (s *Server) a1111Generate(c *gin.Context, img2img bool) {
	body, err := readBody(c)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	var ar a1111Request
	if err := unmarshal(body, &ar); err != nil {
		s.failErr(c, err, nil)
		return
	}
	req, err := s.a1111ToRequest(&ar, img2img)
	if err != nil {
		s.failErr(c, err, a1111Params)
		return
	}
	j, _, err := s.submit(req, true)
	if err != nil {
		s.failErr(c, err, a1111Params)
		return
	}
	defer s.forget(j)
	if !s.waitJob(c, j) {
		return
	}
	sn := j.snapshot()
	// An interrupted job answers with the images it finished, as A1111 does.
	if status, err := outcome(sn); err != nil && sn.Code != "cancelled" {
		field, _ := ldm.IsFieldError(err)
		if r, ok := a1111Params[field]; ok {
			field = r
		}
		s.fail(c, status, field, err)
		return
	}
	images := make([]string, 0, len(sn.Images))
	if ar.SendImages == nil || *ar.SendImages {
		for _, im := range sn.Images {
			images = append(images, b64(im.PNG))
		}
	}
	// parameters echoes the request; images are left out, as A1111 does.
	var params map[string]any
	_ = json.Unmarshal(body, &params)
	if params == nil {
		params = map[string]any{}
	}
	for _, k := range []string{"init_images", "mask"} {
		if _, ok := params[k]; ok {
			params[k] = nil
		}
	}
	info, _ := json.Marshal(s.a1111Info(j.Req, sn))
	c.JSON(http.StatusOK, gin.H{"images": images, "parameters": params, "info": string(info)})
}

// a1111Info is the "info" object A1111 returns (as a JSON string).
func (s *Server) a1111Info(req ldm.Request, sn Snapshot) map[string]any {
	n := len(sn.Images)
	seeds, subseeds, infotexts := make([]int64, n), make([]int64, n), make([]string, n)
	prompts, negs := make([]string, n), make([]string, n)
	for i, im := range sn.Images {
		seeds[i], subseeds[i], infotexts[i] = im.Seed, -1, im.Infotext
		prompts[i], negs[i] = req.Prompt, req.NegativePrompt
	}
	seed := req.Seed
	if n > 0 {
		seed = seeds[0]
	}
	vaeName, vaeHash := infotextVAE(infotexts)
	return map[string]any{
		"prompt": req.Prompt, "all_prompts": prompts, "negative_prompt": req.NegativePrompt, "all_negative_prompts": negs,
		"seed": seed, "all_seeds": seeds, "subseed": -1, "all_subseeds": subseeds, "subseed_strength": 0,
		"width": req.Width, "height": req.Height, "sampler_name": req.Sampler, "scheduler": req.Schedule,
		"cfg_scale": req.GuidanceScale, "steps": req.Steps, "batch_size": req.BatchSize, "n_iter": req.BatchCount,
		"restore_faces": false, "face_restoration_model": nil, "sd_model_name": sn.Model, "sd_model_hash": sn.ModelHash,
		"sd_vae_name": vaeName, "sd_vae_hash": vaeHash, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
		"denoising_strength": req.Strength, "extra_generation_params": map[string]any{},
		"index_of_first_image": 0, "infotexts": infotexts, "styles": []string{},
		"job_timestamp": sn.Started.Format("20060102150405"), "clip_skip": max(1, req.ClipSkip),
		"is_using_inpainting_conditioning": false, "version": "ldm",
	}
}

func (s *Server) a1111Progress(c *gin.Context) {
	s.mu.Lock()
	var j *Job
	if len(s.running) > 0 {
		j = s.running[0]
	}
	running := len(s.running)
	s.mu.Unlock()
	state := gin.H{"skipped": false, "interrupted": false, "job": "", "job_count": s.q.len(),
		"job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
	body := gin.H{"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": nil, "textinfo": nil}
	if j != nil {
		sn := j.snapshot()
		f := fraction(sn.Progress)
		state["job"] = j.ID
		state["job_count"] = s.q.len() + running
		state["job_no"] = max(0, sn.Progress.Image-1)
		state["job_timestamp"] = sn.Started.Format("20060102150405")
		state["sampling_step"] = sn.Progress.Step
		state["sampling_steps"] = sn.Progress.Total
		state["interrupted"] = j.cause() != ""
		body["progress"] = f
		if f > 0 {
			el := time.Since(sn.Started).Seconds()
			body["eta_relative"] = el/f - el
		}
		if sn.Preview != nil && c.Query("skip_current_image") != "true" {
			body["current_image"] = b64(sn.Preview)
		}
	}
	c.JSON(http.StatusOK, body)
}

func (s *Server) a1111Interrupt(c *gin.Context) {
	s.mu.Lock()
	running := append([]*Job(nil), s.running...)
	s.mu.Unlock()
	for _, j := range running {
		s.cancel(j, "interrupted")
	}
	c.JSON(http.StatusOK, gin.H{})
}

func (s *Server) a1111Models(c *gin.Context) {
	var out []gin.H
	for _, m := range s.models() {
		var hash any
		if m.Hash != "" {
			hash = m.Hash
		}
		out = append(out, gin.H{"title": m.title(), "model_name": m.Name, "hash": hash, "sha256": nil, "filename": m.Path, "config": nil, "native_size": m.nativeJSON()})
	}
	c.JSON(http.StatusOK, out)
}

// a1111LoRAs lists LoRADir's files as AUTOMATIC1111's Lora extension
// does; clients that find none strip <lora:…> tags from prompts.
func (s *Server) a1111LoRAs(c *gin.Context) {
	out := []gin.H{}
	if s.cfg.LoRADir == "" {
		c.JSON(http.StatusOK, out)
		return
	}
	files, err := ldm.ListLoRAs(s.cfg.LoRADir)
	if err != nil {
		s.fail(c, http.StatusInternalServerError, "", err)
		return
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, gin.H{"name": n, "alias": n, "path": files[n], "metadata": gin.H{}})
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) a1111Samplers(c *gin.Context) {
	var out []gin.H
	for _, si := range ldm.Samplers() {
		opts := gin.H{}
		if si.Schedule != "" {
			opts["scheduler"] = si.Schedule
		}
		out = append(out, gin.H{"name": si.Name, "aliases": si.Aliases, "options": opts})
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) a1111Schedulers(c *gin.Context) {
	var out []gin.H
	for _, si := range ldm.Schedules() {
		out = append(out, gin.H{"name": si.Name, "label": si.Label, "aliases": si.Aliases, "default_rho": si.DefaultRho, "need_inner_model": false})
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) a1111GetOptions(c *gin.Context) {
	m := s.models()[0]
	out := gin.H{"CLIP_stop_at_last_layers": 1, "samples_format": "png", "sd_vae": "Automatic", "eta_noise_seed_delta": 0}
	s.mu.Lock()
	for k, v := range s.options {
		out[k] = v
	}
	s.mu.Unlock()
	out["sd_vae"] = s.sdVAE()
	out["sd_model_checkpoint"] = m.title()
	out["sd_checkpoint_hash"] = m.Hash
	c.JSON(http.StatusOK, out)
}

// a1111SetOptions switches the model on sd_model_checkpoint and keeps the
// other options, which GET then echoes (clients read back what they set).
func (s *Server) a1111SetOptions(c *gin.Context) {
	var opts map[string]json.RawMessage
	if err := decodeJSON(c, &opts); err != nil {
		s.failErr(c, err, nil)
		return
	}
	if raw, ok := opts["sd_model_checkpoint"]; ok {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			s.fail(c, http.StatusBadRequest, "sd_model_checkpoint", errors.New("must be a string"))
			return
		}
		if err := s.switchModel(name); name != "" && err != nil { // "": keep the current model (Open WebUI sends it)
			s.fail(c, http.StatusBadRequest, "sd_model_checkpoint", err)
			return
		}
	}
	if raw, ok := opts["sd_vae"]; ok {
		if err := s.setSDVAE(raw); err != nil {
			s.fail(c, http.StatusBadRequest, "sd_vae", err)
			return
		}
	}
	values := map[string]any{}
	for k, raw := range opts {
		if k == "sd_model_checkpoint" || k == "sd_vae" {
			continue // handled above
		}
		parse, known := a1111Options[k]
		if !known {
			continue // kept nowhere: a client cannot grow the server's memory with options
		}
		v, err := parse(raw)
		if err != nil {
			s.fail(c, http.StatusBadRequest, k, err)
			return
		}
		values[k] = v
	}
	s.mu.Lock()
	for k, v := range values {
		s.options[k] = v
	}
	s.mu.Unlock()
	c.JSON(http.StatusOK, nil)
}

// a1111Options are the options POST /sdapi/v1/options keeps (and GET
// echoes), each with its parser; sd_model_checkpoint switches the model.
// Others are accepted and ignored.
var a1111Options = map[string]func(json.RawMessage) (any, error){
	"CLIP_stop_at_last_layers": func(raw json.RawMessage) (any, error) {
		var v flexInt
		if err := json.Unmarshal(raw, &v); err != nil || v.V < 1 || v.V > 12 {
			return nil, errors.New("must be an integer from 1 to 12")
		}
		return int(v.V), nil
	},
	"eta_noise_seed_delta": func(raw json.RawMessage) (any, error) {
		var v flexInt
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, errors.New("must be an integer")
		}
		return v.V, nil
	},
	"samples_format": optionString,
}

// optionString is a short string option.
func optionString(raw json.RawMessage) (any, error) {
	var v string
	if err := json.Unmarshal(raw, &v); err != nil || len(v) > 256 {
		return nil, errors.New("must be a string of at most 256 bytes")
	}
	return v, nil
}

func (s *Server) a1111PNGInfo(c *gin.Context) {
	var body struct {
		Image string `json:"image"`
	}
	if err := decodeJSON(c, &body); err != nil {
		s.failErr(c, err, nil)
		return
	}
	if body.Image == "" {
		s.fail(c, http.StatusBadRequest, "image", errors.New("is empty: send a base64 image"))
		return
	}
	data, err := decodeBase64("image", body.Image)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	if _, _, err := image.DecodeConfig(bytes.NewReader(data)); err != nil {
		s.fail(c, http.StatusBadRequest, "image", errors.New("is not a PNG, JPEG or GIF image"))
		return
	}
	// A PNG's other text chunks are listed as A1111's "items"; a JPEG's
	// parameters come from its EXIF UserComment.
	info, _ := ldm.ReadParameters(bytes.NewReader(data))
	items := map[string]string{}
	text, _ := ldm.ReadPNGText(bytes.NewReader(data))
	for k, v := range text {
		if k != "parameters" {
			items[k] = v
		}
	}
	params := map[string]string{}
	if info != "" {
		it, _ := ldm.ParseInfotext(info)
		params["Prompt"] = it.Prompt
		params["Negative prompt"] = it.NegativePrompt
		for _, kv := range it.Params {
			params[kv.Key] = kv.Value
		}
	}
	c.JSON(http.StatusOK, gin.H{"info": info, "items": items, "parameters": params})
}
