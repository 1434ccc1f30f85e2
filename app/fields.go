package app

import (
	"encoding/json"
	"reflect"
	"strings"

	"github.com/ldm-project/ldm/ldm"
)

// An API's request struct declares once, in a tag, which ldm.Request field
// each of its fields stands for: ldm:"guidance_scale" (the Request's JSON
// name; several for one API field, "width,height"; ",byhand" when the
// handler converts it itself). Both directions come from that tag:
// copyFields fills the Request, fieldNames renames a FieldError's field back
// to the API's name.

// requestFields indexes ldm.Request's fields by JSON name.
var requestFields = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[ldm.Request]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}()

// ldmTag reads a field's ldm tag: the Request fields and whether the
// handler converts it itself.
func ldmTag(f reflect.StructField) (names []string, byHand bool) {
	tag := f.Tag.Get("ldm")
	if tag == "" {
		return nil, false
	}
	for _, p := range strings.Split(tag, ",") {
		switch p {
		case "byhand":
			byHand = true
		case "":
		default:
			names = append(names, p)
		}
	}
	return names, byHand || len(names) > 1
}

// copyFields sets each Request field a tagged field of src (a pointer to
// an API struct) names, when the client sent it; absent fields keep dst's
// value (ldm.Blank's: absent means the same everywhere).
func copyFields(src any, dst *ldm.Request) {
	sv, dv := reflect.ValueOf(src).Elem(), reflect.ValueOf(dst).Elem()
	for i := range sv.NumField() {
		names, byHand := ldmTag(sv.Type().Field(i))
		if len(names) == 0 || byHand {
			continue
		}
		d := dv.Field(requestFields[names[0]])
		switch v := sv.Field(i).Interface().(type) {
		case string:
			if v != "" {
				d.SetString(v)
			}
		case flexInt:
			if v.Set {
				d.SetInt(v.V)
			}
		case flexFloat:
			if v.Set {
				d.SetFloat(v.V)
			}
		default:
			panic("app: copyFields: no conversion for " + sv.Type().Field(i).Name)
		}
	}
}

// fieldNames maps Request JSON names to the API's (from the same tags),
// for error messages that name what the client sent.
func fieldNames(api any) map[string]string {
	t := reflect.TypeOf(api)
	m := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		names, _ := ldmTag(f)
		jsonName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		for _, n := range names {
			if _, dup := m[n]; !dup && n != jsonName {
				m[n] = jsonName
			}
		}
	}
	return m
}

// requestJSON is a Request as its JSON fields (for tests).
func requestJSON(r ldm.Request) map[string]any {
	b, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
