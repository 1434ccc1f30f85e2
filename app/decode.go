package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // init images may be GIF, JPEG or PNG
	_ "image/jpeg"
	_ "image/png"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

// maxInputPixels bounds a decoded init image or mask (memory safety; the
// pipeline resizes it to the request's size anyway).
const maxInputPixels = 4096 * 4096

// readBody reads the whole JSON request body (bounded by limitBody).
func readBody(c *gin.Context) ([]byte, error) {
	if err := checkJSONType(c.Request); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(c.Request.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, err
	}
	if err != nil {
		return nil, &ldm.FieldError{Field: "body", Msg: "cannot be read: " + err.Error()}
	}
	return data, nil
}

// decodeJSON reads a JSON body into v. Unknown fields are ignored, as
// clients send many; a wrong type is a FieldError naming the field.
func decodeJSON(c *gin.Context, v any) error {
	data, err := readBody(c)
	if err != nil {
		return err
	}
	return unmarshal(data, v)
}

func unmarshal(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &ldm.FieldError{Field: "body", Msg: "is empty: send a JSON object"}
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "body"
		}
		return &ldm.FieldError{Field: field, Msg: fmt.Sprintf("must be %s, not %s", typeName(te.Type), te.Value)}
	}
	return &ldm.FieldError{Field: "body", Msg: "is not valid JSON: " + err.Error()}
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// flexInt accepts a JSON integer, an integral float or a numeric string, as
// AUTOMATIC1111's pydantic models do; Set tells an absent field from 0.
type flexInt struct {
	V   int64
	Set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	str := strings.Trim(s, `"`)
	if n, err := strconv.ParseInt(str, 10, 64); err == nil {
		f.V, f.Set = n, true
		return nil
	}
	if x, err := strconv.ParseFloat(str, 64); err == nil && x == math.Trunc(x) && math.Abs(x) < 1<<62 {
		f.V, f.Set = int64(x), true
		return nil
	}
	return &json.UnmarshalTypeError{Value: s, Type: reflect.TypeOf(0)}
}

// Int is the value, or def when absent.
func (f flexInt) Int(def int) int {
	if !f.Set {
		return def
	}
	return int(f.V)
}

// flexFloat is flexInt for numbers.
type flexFloat struct {
	V   float64
	Set bool
}

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	x, err := strconv.ParseFloat(strings.Trim(s, `"`), 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return &json.UnmarshalTypeError{Value: s, Type: reflect.TypeOf(0.0)}
	}
	f.V, f.Set = x, true
	return nil
}

// decodeBase64 reads base64 in any of its alphabets, optionally as a data:
// URL, as clients send images.
func decodeBase64(field, s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "data:") {
		if i := strings.Index(s, ","); i >= 0 {
			s = s[i+1:]
		}
	}
	var data []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if data, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, &ldm.FieldError{Field: field, Msg: "is not base64: " + err.Error()}
	}
	return data, nil
}

// decodeImage reads a base64 image as the APIs send init images and masks.
func decodeImage(field, s string) (image.Image, error) {
	data, err := decodeBase64(field, s)
	if err != nil {
		return nil, err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, &ldm.FieldError{Field: field, Msg: "is not a PNG, JPEG or GIF image: " + err.Error()}
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxInputPixels {
		return nil, &ldm.FieldError{Field: field, Msg: fmt.Sprintf("is %dx%d: at most %d pixels", cfg.Width, cfg.Height, maxInputPixels)}
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, &ldm.FieldError{Field: field, Msg: "cannot be decoded: " + err.Error()}
	}
	return img, nil
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }
