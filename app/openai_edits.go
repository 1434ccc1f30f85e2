package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	_ "golang.org/x/image/webp" // OpenAI accepts WebP input images

	"github.com/ldm-project/ldm/ldm"
)

// The OpenAI images API beyond plain generation: /v1/images/edits and
// /v1/images/variations (multipart, as the SDKs send them), gpt-image
// semantics (b64_json always, output_format, quality, background,
// moderation), stream: true as server-sent events, and usage.

func init() {
	addAPIGroup(apiGroup{Tag: "openai", Ops: []apiOp{
		apiOp{Method: "POST", Path: "/v1/images/edits", Summary: "Edit images: inpainting where the mask is transparent, img2img without a mask", Body: ctMultipart,
			Notes: "stream=true answers image_edit.partial_image and image_edit.completed events (text/event-stream)."},
		apiOp{Method: "POST", Path: "/v1/images/variations", Summary: "Variations of an image (img2img)", Body: ctMultipart}}})
}

func (s *Server) openAIEditRoutes(g *gin.RouterGroup) {
	g.POST("/images/edits", func(c *gin.Context) { s.openAIEdit(c, false) })
	g.POST("/images/variations", func(c *gin.Context) { s.openAIEdit(c, true) })
}

// openAIImageOpts are the gpt-image fields of a generation or edit.
type openAIImageOpts struct {
	Model             string   `json:"model"`
	ResponseFormat    string   `json:"response_format"`
	Quality           string   `json:"quality"`
	Background        string   `json:"background"`
	Moderation        string   `json:"moderation"`
	OutputFormat      string   `json:"output_format"`
	OutputCompression flexInt  `json:"output_compression"`
	Stream            flexBool `json:"stream"`
	PartialImages     flexInt  `json:"partial_images"`
	Steps             flexInt  `json:"steps"`
}

// openAIOutput is how an answer is encoded.
type openAIOutput struct {
	b64      bool       // b64_json, else url
	format   ldm.Format // png, jpeg, webp
	jpegQ    int
	quality  string // as echoed: low, medium, high, auto
	bg       string
	stream   bool
	partials int
	moderate string // the moderation asked for ("" none)
}

// openAIQualitySteps maps OpenAI's quality to sampling steps (when the
// request names no steps): "auto", "standard" (dall-e-3) and absent keep
// the model's default.
var openAIQualitySteps = map[string]int{"low": 10, "medium": 20, "high": 40, "hd": 40}

// decodeOpenAIOpts reads and checks the gpt-image fields and applies
// quality to req.
func decodeOpenAIOpts(o openAIImageOpts, req *ldm.Request) (openAIOutput, error) {
	out := openAIOutput{format: ldm.PNG, quality: "auto", bg: "auto"}
	gpt := strings.HasPrefix(o.Model, "gpt-image")
	switch o.ResponseFormat {
	case "", "url":
		out.b64 = gpt // gpt-image models always answer b64_json
	case "b64_json":
		out.b64 = true
	default:
		return out, &ldm.FieldError{Field: "response_format", Msg: fmt.Sprintf("%q is not supported: use \"url\" or \"b64_json\"", o.ResponseFormat)}
	}
	switch q := strings.ToLower(o.Quality); q {
	case "", "auto", "standard":
		if q != "" {
			out.quality = q
		}
	case "low", "medium", "high", "hd":
		out.quality = q
		if !o.Steps.Set {
			req.Steps = openAIQualitySteps[q]
		}
	default:
		return out, &ldm.FieldError{Field: "quality", Msg: fmt.Sprintf("%q: use low, medium, high or auto", o.Quality)}
	}
	switch o.Background {
	case "", "auto", "opaque":
		if o.Background != "" {
			out.bg = o.Background
		}
	case "transparent":
		return out, &ldm.FieldError{Field: "background", Msg: "\"transparent\" is not supported: this model draws opaque images; use \"opaque\" or \"auto\""}
	default:
		return out, &ldm.FieldError{Field: "background", Msg: fmt.Sprintf("%q: use opaque or auto", o.Background)}
	}
	switch o.Moderation {
	case "", "auto", "low":
		out.moderate = o.Moderation
	default:
		return out, &ldm.FieldError{Field: "moderation", Msg: fmt.Sprintf("%q: use auto or low", o.Moderation)}
	}
	if o.OutputFormat != "" {
		f, err := ldm.ParseFormat(o.OutputFormat)
		if err != nil {
			return out, &ldm.FieldError{Field: "output_format", Msg: fmt.Sprintf("%q: use png, jpeg or webp", o.OutputFormat)}
		}
		out.format = f
		if f != ldm.PNG && !out.b64 {
			if o.ResponseFormat == "url" {
				return out, &ldm.FieldError{Field: "response_format", Msg: "\"url\" serves PNG only: use b64_json with output_format " + o.OutputFormat}
			}
			out.b64 = true
		}
	}
	out.jpegQ = 100
	if o.OutputCompression.Set {
		if o.OutputCompression.V < 0 || o.OutputCompression.V > 100 {
			return out, &ldm.FieldError{Field: "output_compression", Msg: fmt.Sprintf("%d must be between 0 and 100", o.OutputCompression.V)}
		}
		out.jpegQ = max(1, int(o.OutputCompression.V))
	}
	out.stream = o.Stream.V
	if o.PartialImages.Set {
		if o.PartialImages.V < 0 || o.PartialImages.V > 3 {
			return out, &ldm.FieldError{Field: "partial_images", Msg: fmt.Sprintf("%d must be between 0 and 3", o.PartialImages.V)}
		}
		out.partials = int(o.PartialImages.V)
	}
	return out, nil
}

// encode re-encodes a PNG in the output format (the infotext stays).
func (o openAIOutput) encode(im Image) ([]byte, error) {
	if o.format == ldm.PNG || o.format == "" {
		return im.PNG, nil
	}
	img, _, err := image.Decode(bytes.NewReader(im.PNG))
	if err != nil {
		return nil, err
	}
	info, _ := ldm.ParseInfotext(im.Infotext)
	var buf bytes.Buffer
	if err := ldm.EncodeImage(&buf, img, info, o.format, o.jpegQ); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// openAIUsage counts this server's "tokens": the prompt's words as text
// tokens, each input image's latent positions as image tokens and each
// output image's latent positions as output tokens (latent positions are
// what the model computes on, as image tokens are for gpt-image).
func openAIUsage(req ldm.Request, factor int, inputs []image.Image, outputs []Image) gin.H {
	text := len(strings.Fields(req.Prompt))
	img := 0
	for _, in := range inputs {
		b := in.Bounds()
		img += (b.Dx() / factor) * (b.Dy() / factor)
	}
	outTok := 0
	for _, o := range outputs {
		outTok += (o.Width / factor) * (o.Height / factor)
	}
	return gin.H{"input_tokens": text + img, "output_tokens": outTok, "total_tokens": text + img + outTok,
		"input_tokens_details": gin.H{"text_tokens": text, "image_tokens": img}}
}

// openAIAnswer waits for a job and answers it as JSON or, with stream, as
// server-sent events named kind+".partial_image" and kind+".completed".
func (s *Server) openAIAnswer(c *gin.Context, j *Job, out openAIOutput, kind string, inputs []image.Image) {
	defer s.forget(j)
	if out.moderate != "" {
		c.Header("X-Ldm-Moderation", "not applied: this server does not moderate content")
	}
	if out.stream {
		s.openAIStream(c, j, out, kind, inputs)
		return
	}
	if !s.waitJob(c, j) {
		return
	}
	sn := j.snapshot()
	if status, err := outcome(sn); err != nil {
		s.failJob(c, status, err)
		return
	}
	data := make([]gin.H, 0, len(sn.Images))
	for _, im := range sn.Images {
		d := gin.H{"revised_prompt": j.Req.Prompt, "seed": im.Seed}
		enc, err := out.encode(im)
		if err != nil {
			s.fail(c, http.StatusInternalServerError, "", err)
			return
		}
		if out.b64 {
			d["b64_json"] = b64(enc)
		} else {
			d["url"] = s.baseURL(c) + "/v1/files/" + s.files.put(enc) + ".png"
		}
		data = append(data, d)
	}
	body := gin.H{"created": time.Now().Unix(), "data": data, "background": out.bg, "output_format": string(out.format),
		"quality": out.quality, "size": fmt.Sprintf("%dx%d", j.Req.Width, j.Req.Height),
		"usage": openAIUsage(j.Req, s.current().Model.Factor(), inputs, sn.Images)}
	if out.moderate != "" {
		body["moderation"] = "not applied"
	}
	c.JSON(http.StatusOK, body)
}

func (s *Server) failJob(c *gin.Context, status int, err error) {
	field, _ := ldm.IsFieldError(err)
	if r, ok := openAIParams[field]; ok {
		field = r
	}
	s.fail(c, status, field, err)
}

// openAIStream streams a job as OpenAI's image events: up to out.partials
// partial images (previews spread over the steps), then one completed
// event per image, or an error event.
func (s *Server) openAIStream(c *gin.Context, j *Job, out openAIOutput, kind string, inputs []image.Image) {
	noWriteDeadline(c)
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	size := fmt.Sprintf("%dx%d", j.Req.Width, j.Req.Height)
	send := func(name string, v gin.H) bool {
		v["type"] = name
		data, _ := json.Marshal(v)
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
		w.Flush()
		return err == nil
	}
	common := func(v gin.H) gin.H {
		v["created_at"], v["size"], v["quality"], v["background"], v["output_format"] = time.Now().Unix(), size, out.quality, out.bg, string(out.format)
		return v
	}
	sent, i := 0, 0
	total := 0
	for {
		evs, changed, over := j.eventsSince(i)
		for _, e := range evs {
			i++
			switch e.name {
			case "progress":
				var p struct {
					Total int `json:"total"`
				}
				if json.Unmarshal(e.data, &p) == nil && p.Total > 0 {
					total = p.Total
				}
			case "preview":
				var p struct {
					Step  int    `json:"step"`
					Image string `json:"image"`
				}
				if e.data == nil || sent >= out.partials || total == 0 || json.Unmarshal(e.data, &p) != nil {
					continue
				}
				// Partial k goes out once (k+1)/(partials+1) of the steps are done.
				if p.Step*(out.partials+1) < (sent+1)*total {
					continue
				}
				png, err := base64.StdEncoding.DecodeString(p.Image)
				if err != nil {
					continue
				}
				enc, err := out.encode(Image{PNG: png})
				if err != nil {
					continue
				}
				if !send(kind+".partial_image", common(gin.H{"b64_json": b64(enc), "partial_image_index": sent})) {
					s.cancel(j, "the client disconnected")
					return
				}
				sent++
			}
		}
		if over {
			break
		}
		select {
		case <-changed:
		case <-c.Request.Context().Done():
			s.cancel(j, "the client disconnected")
			return
		}
	}
	sn := j.snapshot()
	if status, err := outcome(sn); err != nil {
		field, _ := ldm.IsFieldError(err)
		send("error", gin.H{"error": gin.H{"message": err.Error(), "type": openAIErrorType(status), "param": nilIfEmpty(field), "code": openAIErrorCode(status)}})
		return
	}
	usage := openAIUsage(j.Req, s.current().Model.Factor(), inputs, sn.Images)
	for _, im := range sn.Images {
		enc, err := out.encode(im)
		if err != nil {
			send("error", gin.H{"error": gin.H{"message": err.Error(), "type": "server_error", "param": nil, "code": nil}})
			return
		}
		if !send(kind+".completed", common(gin.H{"b64_json": b64(enc), "usage": usage})) {
			return
		}
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// openAIEditForm is the multipart form of an edit or variation: OpenAI's
// fields and this server's extensions (negative_prompt, seed, steps,
// guidance_scale, sampler, strength).
type openAIEditForm struct {
	Prompt         string    `json:"prompt" ldm:"prompt"`
	N              flexInt   `json:"n" ldm:"batch_size"`
	Size           string    `json:"size" ldm:"width,height"`
	NegativePrompt string    `json:"negative_prompt" ldm:"negative_prompt"`
	Seed           flexInt   `json:"seed" ldm:"seed"`
	Steps          flexInt   `json:"steps" ldm:"steps"`
	GuidanceScale  flexFloat `json:"guidance_scale" ldm:"guidance_scale"`
	Sampler        string    `json:"sampler" ldm:"sampler"`
	Strength       flexFloat `json:"strength" ldm:"strength"`
}

// variationStrength is how far a variation moves from its image when the
// request names no strength.
const variationStrength = 0.6

func (s *Server) openAIEdit(c *gin.Context, variation bool) {
	kind := "image_edit"
	req, out, inputs, err := s.decodeOpenAIEdit(c, variation)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	j, _, err := s.submit(req, true)
	if err != nil {
		s.failErr(c, err, openAIParams)
		return
	}
	if len(inputs) > 1 {
		c.Header("X-Ldm-Note", fmt.Sprintf("%d images were sent: the first is edited, the others are not used (this model takes no reference images)", len(inputs)))
	}
	s.openAIAnswer(c, j, out, kind, inputs[:1])
}

// decodeOpenAIEdit reads the multipart form of an edit or a variation.
func (s *Server) decodeOpenAIEdit(c *gin.Context, variation bool) (ldm.Request, openAIOutput, []image.Image, error) {
	var out openAIOutput
	if ct := c.ContentType(); ct != "multipart/form-data" {
		return ldm.Request{}, out, nil, &ldm.FieldError{Field: "body", Msg: fmt.Sprintf("is %q: send multipart/form-data with the image file(s), as the OpenAI SDKs do", ct)}
	}
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return ldm.Request{}, out, nil, &ldm.FieldError{Field: "body", Msg: "is not a multipart form: " + err.Error()}
	}
	fields := map[string]json.RawMessage{}
	var images []image.Image
	var first []byte // the first image's file, for its infotext
	var mask image.Image
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return ldm.Request{}, out, nil, err
			}
			return ldm.Request{}, out, nil, &ldm.FieldError{Field: "body", Msg: "cannot be read: " + err.Error()}
		}
		name := p.FormName()
		data, err := io.ReadAll(p)
		if err != nil {
			return ldm.Request{}, out, nil, err
		}
		switch name {
		case "image", "image[]", "mask":
			img, err := decodeImage(name, base64.StdEncoding.EncodeToString(data))
			if err != nil {
				return ldm.Request{}, out, nil, err
			}
			if name == "mask" {
				mask = img
			} else {
				if images == nil {
					first = data
				}
				images = append(images, img)
			}
		default:
			fields[name], _ = json.Marshal(string(data)) // the flexible number and boolean types read strings
		}
	}
	if len(images) == 0 {
		return ldm.Request{}, out, nil, &ldm.FieldError{Field: "image", Msg: "is missing: send the image to edit as a file part named image (or image[])"}
	}
	raw, _ := json.Marshal(fields)
	var f openAIEditForm
	var o openAIImageOpts
	if err := unmarshal(raw, &f); err != nil {
		return ldm.Request{}, out, nil, err
	}
	if err := unmarshal(raw, &o); err != nil {
		return ldm.Request{}, out, nil, err
	}
	if err := s.checkOpenAIModel(o.Model); err != nil {
		return ldm.Request{}, out, nil, &ldm.FieldError{Field: "model", Msg: err.Error()}
	}
	req := ldm.Blank()
	copyFields(&f, &req)
	if req.Width, req.Height, err = parseSize(f.Size); err != nil {
		return ldm.Request{}, out, nil, &ldm.FieldError{Field: "size", Msg: err.Error()}
	}
	req.InitImage = images[0]
	if variation {
		if mask != nil {
			return ldm.Request{}, out, nil, &ldm.FieldError{Field: "mask", Msg: "variations take no mask: use /v1/images/edits"}
		}
		if req.Prompt == "" {
			req.Prompt = imagePrompt(first)
		}
		if !f.Strength.Set {
			req.Strength = variationStrength
		}
	} else {
		if strings.TrimSpace(req.Prompt) == "" {
			return ldm.Request{}, out, nil, &ldm.FieldError{Field: "prompt", Msg: "is empty: say what the edit should draw"}
		}
		if mask != nil {
			if req.Mask, err = maskFromAlpha(mask); err != nil {
				return ldm.Request{}, out, nil, err
			}
			if !f.Strength.Set {
				req.Strength = 1 // repaint the masked part from noise, as an edit does
			}
		}
	}
	if out, err = decodeOpenAIOpts(o, &req); err != nil {
		return ldm.Request{}, out, nil, err
	}
	return req, out, images, nil
}

// imagePrompt is a variation's prompt: the image's own when it carries an
// infotext (an image this server drew), else none.
func imagePrompt(file []byte) string {
	text, err := ldm.ReadParameters(bytes.NewReader(file))
	if err != nil {
		return ""
	}
	info, err := ldm.ParseInfotext(text)
	if err != nil {
		return ""
	}
	return info.Prompt
}

// maskFromAlpha turns OpenAI's mask (transparent = repaint) into ldm's
// (white = repaint): the repaint weight is 255 - alpha.
func maskFromAlpha(m image.Image) (image.Image, error) {
	b := m.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	any := false
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			a := color.NRGBAModel.Convert(m.At(x, y)).(color.NRGBA).A
			g.SetGray(x-b.Min.X, y-b.Min.Y, color.Gray{255 - a})
			any = any || a < 255
		}
	}
	if !any {
		return nil, &ldm.FieldError{Field: "mask", Msg: "has no transparent pixels: its transparent pixels mark what to repaint (a PNG with alpha)"}
	}
	return g, nil
}

// openAIRequestOpts reads a JSON generation's gpt-image fields.
func openAIRequestOpts(body []byte, req *ldm.Request) (openAIOutput, error) {
	var o openAIImageOpts
	if err := unmarshal(body, &o); err != nil {
		return openAIOutput{}, err
	}
	return decodeOpenAIOpts(o, req)
}
