package app

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ldm-project/ldm/ldm"
)

// vaeModel is a Model whose VAE can be swapped (ldm.Pipeline).
type vaeModel interface {
	VAEs() []ldm.VAEEntry
	SetVAE(choice string) error
	VAEChoice() string
}

// a1111SDVAE lists the VAE folder as /sdapi/v1/sd-vae does.
func (s *Server) a1111SDVAE(c *gin.Context) {
	out := []gin.H{}
	if vm, ok := s.current().Model.(vaeModel); ok {
		for _, e := range vm.VAEs() {
			out = append(out, gin.H{"model_name": e.Name, "filename": e.Path})
		}
	}
	c.JSON(http.StatusOK, out)
}

// sdVAE is the sd_vae option: the VAE in effect, or "Automatic".
func (s *Server) sdVAE() string {
	if vm, ok := s.current().Model.(vaeModel); ok && vm.VAEChoice() != "" {
		return vm.VAEChoice()
	}
	return "Automatic"
}

// setSDVAE applies POST /sdapi/v1/options' sd_vae ("Automatic", "None" or a
// name from /sdapi/v1/sd-vae).
func (s *Server) setSDVAE(raw json.RawMessage) error {
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return errors.New("must be a string")
	}
	own := name == "" || name == "Automatic" || name == "None"
	vm, ok := s.current().Model.(vaeModel)
	if !ok {
		if own {
			return nil
		}
		return errors.New("this model cannot swap its VAE")
	}
	for _, e := range vm.VAEs() {
		if e.Name == name {
			return vm.SetVAE(e.Path)
		}
	}
	if own {
		return vm.SetVAE(name)
	}
	return errors.New("is not Automatic, None or a VAE of /sdapi/v1/sd-vae")
}

// a1111OverrideVAE takes override_settings.sd_vae into the request (ldm
// checks the name and restores the VAE afterwards).
func a1111OverrideVAE(ar *a1111Request, req *ldm.Request) error {
	raw, ok := ar.OverrideSettings["sd_vae"]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, &req.VAE); err != nil {
		return &ldm.FieldError{Field: "override_settings.sd_vae", Msg: "must be a string"}
	}
	return nil
}

// infotextVAE is the first image's VAE and VAE hash (nil when the
// checkpoint's own VAE drew it), for A1111's sd_vae_name and sd_vae_hash.
func infotextVAE(infotexts []string) (name, hash any) {
	if len(infotexts) == 0 {
		return nil, nil
	}
	it, err := ldm.ParseInfotext(infotexts[0])
	if err != nil {
		return nil, nil
	}
	if v, ok := it.Get("VAE"); ok {
		name = v
	}
	if v, ok := it.Get("VAE hash"); ok {
		hash = v
	}
	return name, hash
}

// A request's VAE comes from override_settings.sd_vae, which has no field of
// its own to carry an ldm tag.
func init() { a1111Params["vae"] = "override_settings.sd_vae" }
