package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

// controlNetRoutes are the routes of AUTOMATIC1111's ControlNet extension
// (sd-webui-controlnet's api.py) that clients use to list and preview.
func (s *Server) controlNetRoutes(g *gin.RouterGroup) {
	g.GET("/version", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"version": 2}) })
	g.GET("/model_list", s.controlNetModelList)
	g.GET("/module_list", controlNetModuleList)
	g.POST("/detect", s.controlNetDetect)
}

// controlNetLister is a model that has a ControlNet folder (ldm.Pipeline).
type controlNetLister interface {
	ControlNetModels() (map[string]string, error)
}

func (s *Server) controlNetModelList(c *gin.Context) {
	names := []string{}
	if l, ok := s.current().Model.(controlNetLister); ok {
		models, err := l.ControlNetModels()
		if err != nil {
			s.fail(c, http.StatusInternalServerError, "", err)
			return
		}
		for name, path := range models {
			if h := oldModelHash(path); h != "" {
				name += " [" + h + "]"
			}
			names = append(names, name)
		}
	}
	sort.Strings(names)
	c.JSON(http.StatusOK, gin.H{"model_list": names})
}

// oldModelHash is the short hash the extension shows beside a model name
// (A1111's model_hash: SHA-256 of 64 KiB at offset 1 MiB, 8 hex digits); a
// diffusers folder is hashed by its weights file.
func oldModelHash(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "diffusion_pytorch_model.safetensors")
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(0x100000, io.SeekStart); err != nil {
		return ""
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, 0x10000); err != nil && err != io.EOF {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

func controlNetModuleList(c *gin.Context) {
	names := []string{}
	detail := gin.H{}
	for _, p := range ldm.Preprocessors() {
		names = append(names, p.Name)
		var sliders []gin.H
		for _, a := range []ldm.PreprocessorParam{p.A, p.B} {
			if a.Valid {
				sliders = append(sliders, gin.H{"name": a.Name, "value": a.Default, "min": a.Min, "max": a.Max})
			}
		}
		detail[p.Name] = gin.H{"model_free": p.Name == "none" || p.Name == "invert", "sliders": sliders}
	}
	c.JSON(http.StatusOK, gin.H{"module_list": names, "module_detail": detail})
}

// controlNetDetect runs a preprocessor on images (the extension's
// /controlnet/detect) and returns the control maps as base64 PNGs.
func (s *Server) controlNetDetect(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.failErr(c, err, nil)
		return
	}
	var r struct {
		Module string      `json:"controlnet_module"`
		Images []string    `json:"controlnet_input_images"`
		A      *flexFloat  `json:"controlnet_threshold_a"`
		B      *flexFloat  `json:"controlnet_threshold_b"`
		Res    json.Number `json:"controlnet_processor_res"`
	}
	if err := unmarshal(body, &r); err != nil {
		s.failErr(c, err, nil)
		return
	}
	pre, err := ldm.FindPreprocessor(r.Module)
	if err != nil {
		s.fail(c, http.StatusUnprocessableEntity, "controlnet_module", err)
		return
	}
	if len(r.Images) == 0 {
		s.fail(c, http.StatusUnprocessableEntity, "controlnet_input_images", fmt.Errorf("is empty: send base64 images"))
		return
	}
	a, b := -1.0, -1.0
	if r.A != nil {
		a = r.A.V
	}
	if r.B != nil {
		b = r.B.V
	}
	out := make([]string, 0, len(r.Images))
	for i, s64 := range r.Images {
		img, err := decodeImage(fmt.Sprintf("controlnet_input_images[%d]", i), s64)
		if err != nil {
			s.failErr(c, err, nil)
			return
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, pre.Run(img, a, b)); err != nil {
			s.fail(c, http.StatusInternalServerError, "", err)
			return
		}
		out = append(out, base64.StdEncoding.EncodeToString(buf.Bytes()))
	}
	c.JSON(http.StatusOK, gin.H{"images": out, "info": "Success"})
}

// a1111Unit is a unit of alwayson_scripts.controlnet.args as the
// extension's API takes it (older clients send input_image, and the image
// as {"image": …, "mask": …}).
type a1111Unit struct {
	Enabled       *bool           `json:"enabled"`
	Module        string          `json:"module"`
	Model         string          `json:"model"`
	Weight        *flexFloat      `json:"weight"`
	Image         json.RawMessage `json:"image"`
	InputImage    json.RawMessage `json:"input_image"`
	ResizeMode    json.RawMessage `json:"resize_mode"`
	GuidanceStart *flexFloat      `json:"guidance_start"`
	GuidanceEnd   *flexFloat      `json:"guidance_end"`
	ControlMode   json.RawMessage `json:"control_mode"`
	ThresholdA    *flexFloat      `json:"threshold_a"`
	ThresholdB    *flexFloat      `json:"threshold_b"`
}

// a1111ControlNets reads alwayson_scripts.controlnet.args into request
// units; disabled units and those without a model are skipped, as the
// extension does.
func a1111ControlNets(scripts map[string]json.RawMessage) ([]ldm.ControlNetUnit, error) {
	raw, ok := scripts["controlnet"]
	if !ok {
		for k, v := range scripts { // the extension matches the script title case-insensitively
			if strings.EqualFold(k, "controlnet") {
				raw, ok = v, true
			}
		}
	}
	if !ok {
		return nil, nil
	}
	const field = "alwayson_scripts.controlnet.args"
	var sc struct {
		Args []a1111Unit `json:"args"`
	}
	if err := json.Unmarshal(raw, &sc); err != nil {
		return nil, &ldm.FieldError{Field: field, Msg: fmt.Sprintf("want {\"args\": [unit, …]}: %v", err)}
	}
	var units []ldm.ControlNetUnit
	for i, a := range sc.Args {
		bad := func(format string, v ...any) error {
			return &ldm.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Msg: fmt.Sprintf(format, v...)}
		}
		if (a.Enabled != nil && !*a.Enabled) || a.Model == "" || strings.EqualFold(a.Model, "none") {
			continue
		}
		u := ldm.NewControlNetUnit()
		u.Model, u.Module = a.Model, a.Module
		for _, f := range []struct {
			from *flexFloat
			to   *float64
		}{{a.Weight, &u.Weight}, {a.GuidanceStart, &u.GuidanceStart}, {a.GuidanceEnd, &u.GuidanceEnd}, {a.ThresholdA, &u.ThresholdA}, {a.ThresholdB, &u.ThresholdB}} {
			if f.from != nil && f.from.Set {
				*f.to = f.from.V
			}
		}
		var err error
		if u.ResizeMode, err = stringOrIndex(a.ResizeMode); err != nil {
			return nil, bad("resize_mode: %v", err)
		}
		if u.ControlMode, err = stringOrIndex(a.ControlMode); err != nil {
			return nil, bad("control_mode: %v", err)
		}
		img := a.Image
		if len(img) == 0 || string(img) == "null" {
			img = a.InputImage
		}
		var s64 string
		if len(img) > 0 && string(img) != "null" && json.Unmarshal(img, &s64) != nil {
			var obj struct {
				Image string `json:"image"`
			}
			if json.Unmarshal(img, &obj) != nil {
				return nil, bad("image: want a base64 image or {\"image\": base64}")
			}
			s64 = obj.Image
		}
		if s64 == "" {
			return nil, bad("has no image: send the control image (base64) in image")
		}
		if u.Image, err = decodeImage(fmt.Sprintf("%s[%d].image", field, i), s64); err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	return units, nil
}

// stringOrIndex reads an enum the extension takes as a label or an index.
func stringOrIndex(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("want a name or an index, got %s", raw)
	}
	return fmt.Sprint(n), nil
}

// nativeUnit is a ControlNet unit of the native API: the ldm fields plus
// the control image, base64.
type nativeUnit struct {
	ldm.ControlNetUnit
	Image string
}

func (n *nativeUnit) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &n.ControlNetUnit); err != nil {
		return err
	}
	var img struct {
		Image string `json:"image"`
	}
	if err := json.Unmarshal(b, &img); err != nil {
		return err
	}
	n.Image = img.Image
	return nil
}

// nativeControlNets decodes the native API's units' images.
func nativeControlNets(units []nativeUnit) ([]ldm.ControlNetUnit, error) {
	var out []ldm.ControlNetUnit
	for i, u := range units {
		if u.Image == "" {
			return nil, &ldm.FieldError{Field: fmt.Sprintf("controlnets[%d].image", i), Msg: "is empty: send the control image, base64"}
		}
		img, err := decodeImage(fmt.Sprintf("controlnets[%d].image", i), u.Image)
		if err != nil {
			return nil, err
		}
		u.ControlNetUnit.Image = img
		out = append(out, u.ControlNetUnit)
	}
	return out, nil
}

// a1111Fill maps inpainting_fill (0 fill, 1 original, 2 latent noise,
// 3 latent nothing; absent is A1111's default, 0) to ldm's names.
func a1111Fill(f flexInt) (string, error) {
	v := f.Int(0)
	if v < 0 || v >= len(ldm.FillModes) {
		return "", &ldm.FieldError{Field: "inpainting_fill", Msg: fmt.Sprintf("%d: want 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing)", v)}
	}
	return ldm.FillModes[v], nil
}

// flexBool is a boolean that A1111 clients also send as 0/1 or a string.
type flexBool struct{ V, Set bool }

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(string(b)), `"`)) {
	case "true", "1":
		f.V, f.Set = true, true
	case "false", "0", "":
		f.V, f.Set = false, true
	case "null":
	default:
		return fmt.Errorf("want true or false, got %s", b)
	}
	return nil
}
