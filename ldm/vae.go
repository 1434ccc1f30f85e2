package ldm

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/taesd"
	"github.com/ldm-project/ldm/vae"
	"github.com/ldm-project/ldm/weights"
)

// TAESDPrefix marks a VAE choice that is a TAESD (tiny autoencoder) path:
// "taesd:/models/vae_approx/taesd_decoder.safetensors".
const TAESDPrefix = "taesd:"

// Preview modes (LoadOptions.Preview).
const (
	PreviewApprox = "approx" // a latent→RGB projection fitted to the model's decoder (default)
	PreviewTAESD  = "taesd"  // TAESD's decode of the latents
)

// vaeState is the pipeline's choice of autoencoder beyond the checkpoint's
// own VAE, and the preview decoders. Guarded by Pipeline.mu once loaded.
type vaeState struct {
	own  *vae.AutoencoderKL // the checkpoint's VAE
	tiny *taesd.Model       // decodes instead of the VAE (a "taesd:" choice)
	// name and hash go into the infotext as VAE and VAE hash ("" for the
	// checkpoint's own VAE).
	name, hash string
	dir        string                 // VAEDir
	def        string                 // the choice Load made, restored after a request's own
	cur        string                 // the choice in effect
	preview    string                 // PreviewApprox or PreviewTAESD
	taesd      *taesd.Model           // previews (and "taesd" without a path)
	proj       map[string]*Projection // fitted per decoder choice
	// loaded keeps the last VAEs loaded by path, so that a request's VAE
	// and the restore after it do not read the files again.
	loaded map[string]any
	tiling VAETiling
}

// VAETiling chooses tiled VAE decoding and encoding (see vae.TileOptions).
type VAETiling struct {
	// Mode is "auto" (tile when the whole-image decode would need more than
	// MaxBytes), "on" or "off". "" is "auto".
	Mode string
	// MaxBytes is the memory budget of one decode for "auto" (0: 6 GiB,
	// which SD's VAE exceeds above about 512²; see vae.DecodePeakBytes).
	MaxBytes int64
}

func (p *Pipeline) initVAE(o LoadOptions) error {
	p.vaes.own = p.VAE
	p.vaes.dir = o.VAEDir
	p.vaes.tiling = o.VAETiling
	switch o.VAETiling.Mode {
	case "", "auto", "on", "off":
	default:
		return fmt.Errorf("VAE tiling %q: want auto, on or off", o.VAETiling.Mode)
	}
	p.vaes.preview = o.Preview
	switch o.Preview {
	case "", PreviewApprox:
		p.vaes.preview = PreviewApprox
	case PreviewTAESD:
	default:
		if path, ok := strings.CutPrefix(o.Preview, TAESDPrefix); ok {
			p.vaes.preview = PreviewTAESD
			if o.TAESD == "" {
				o.TAESD = path
			}
		} else {
			return fmt.Errorf("preview %q: want %q, %q or taesd:PATH", o.Preview, PreviewApprox, PreviewTAESD)
		}
	}
	if o.TAESD != "" {
		t, err := p.loadTAESD(o.TAESD)
		if err != nil {
			return err
		}
		p.vaes.taesd = t
	}
	if err := p.setVAE(o.VAE); err != nil {
		return err
	}
	p.vaes.def = p.vaes.cur
	if p.vaes.preview == PreviewTAESD && p.vaes.taesd == nil {
		if p.vaes.tiny == nil {
			return fmt.Errorf("preview taesd needs a TAESD: give its path (--taesd PATH, or --preview taesd:PATH)")
		}
		p.vaes.taesd = p.vaes.tiny
	}
	return nil
}

func (p *Pipeline) loadTAESD(path string) (*taesd.Model, error) {
	t, err := taesd.Load(path, p.Backend)
	if err != nil {
		return nil, err
	}
	if want := p.UNet.Config.OutChannels; t.Config.LatentChannels != want {
		return nil, fmt.Errorf("%s: this TAESD has %d latent channels, the model %d (taesd is for SD 1.x/2.x, taesdxl for SDXL, taesd3/taef1 for SD3/FLUX)", path, t.Config.LatentChannels, want)
	}
	if !t.HasDecoder() {
		return nil, fmt.Errorf("%s: no TAESD decoder; give the *_decoder.safetensors file", path)
	}
	return t, nil
}

// isOwnVAE reports whether a choice means the checkpoint's own VAE
// (AUTOMATIC1111's "Automatic" and "None").
func isOwnVAE(choice string) bool {
	switch strings.ToLower(strings.TrimSpace(choice)) {
	case "", "automatic", "none", "auto":
		return true
	}
	return false
}

// setVAE switches the decoder: the checkpoint's own VAE, "taesd:PATH", a
// VAE file or folder (a diffusers AutoencoderKL folder, or a single VAE file
// such as vae-ft-mse-840000-ema-pruned.safetensors), or the name of one in
// VAEDir.
func (p *Pipeline) setVAE(choice string) error {
	choice = strings.TrimSpace(choice)
	if choice == p.vaes.cur && p.vaes.cur != "" {
		return nil
	}
	if isOwnVAE(choice) {
		p.VAE, p.vaes.tiny, p.vaes.name, p.vaes.hash, p.vaes.cur = p.vaes.own, nil, "", "", ""
		return nil
	}
	if path, ok := strings.CutPrefix(choice, TAESDPrefix); ok {
		t := p.vaes.taesd
		if path != "" || t == nil {
			t, _ = p.vaes.loaded[TAESDPrefix+path].(*taesd.Model)
		}
		if t == nil {
			var err error
			if t, err = p.loadTAESD(path); err != nil {
				return err
			}
			p.keepLoaded(TAESDPrefix+path, t)
		}
		p.VAE, p.vaes.tiny, p.vaes.cur = p.vaes.own, t, choice
		p.vaes.name, p.vaes.hash = filepath.Base(filepath.Clean(path)), vaeFileHash(path)
		if path == "" {
			p.vaes.name = "TAESD"
		}
		return nil
	}
	path := choice
	if _, err := os.Stat(path); err != nil {
		found, ok := p.findVAE(choice)
		if !ok {
			if p.vaes.dir == "" {
				return fmt.Errorf("VAE %q: no such file or folder (a name needs a VAE folder, --vae-dir)", choice)
			}
			return fmt.Errorf("VAE %q: no such file, and no VAE of that name in the VAE folder %s", choice, p.vaes.dir)
		}
		path = found
	}
	m, _ := p.vaes.loaded[path].(*vae.AutoencoderKL)
	if m == nil {
		var err error
		if m, err = loadVAE(path, p); err != nil {
			return err
		}
		p.keepLoaded(path, m)
	}
	p.VAE, p.vaes.tiny, p.vaes.cur = m, nil, choice
	p.vaes.name, p.vaes.hash = filepath.Base(filepath.Clean(path)), vaeFileHash(path)
	return nil
}

// keepLoaded remembers a loaded decoder; at most two are kept.
func (p *Pipeline) keepLoaded(key string, m any) {
	if len(p.vaes.loaded) >= 2 {
		p.vaes.loaded = nil
	}
	if p.vaes.loaded == nil {
		p.vaes.loaded = map[string]any{}
	}
	p.vaes.loaded[key] = m
}

// loadVAE loads an AutoencoderKL from a diffusers folder (vae/ of a pipeline
// works too) or a single VAE file, checked against the U-Net's latents.
func loadVAE(path string, p *Pipeline) (*vae.AutoencoderKL, error) {
	m, err := weights.OpenModel(path, weights.OpenOptions{})
	if err != nil {
		return nil, fmt.Errorf("VAE %s: %w", path, err)
	}
	defer m.Close()
	c := m.Components[weights.VAE]
	if c == nil || c.Source == nil {
		return nil, fmt.Errorf("VAE %s: no VAE weights in it (want a diffusers AutoencoderKL folder or a VAE .safetensors such as vae-ft-mse-840000-ema-pruned)", path)
	}
	cfg, err := vae.ParseConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("VAE %s: %w", path, err)
	}
	own := p.vaes.own.Config
	if cfg.LatentChannels != own.LatentChannels || cfg.DownsampleFactor() != own.DownsampleFactor() {
		return nil, fmt.Errorf("VAE %s: %d latent channels at 1/%d, the model's VAE has %d at 1/%d; it belongs to another model family",
			path, cfg.LatentChannels, cfg.DownsampleFactor(), own.LatentChannels, own.DownsampleFactor())
	}
	// A bare VAE file carries no scaling factor: the model's applies.
	if c.ConfigOrigin != filepath.Join(path, "config.json") {
		cfg.ScalingFactor, cfg.ShiftFactor = own.ScalingFactor, own.ShiftFactor
	}
	v, err := vae.New(cfg)
	if err != nil {
		return nil, err
	}
	v.Backend = p.Backend
	if err := v.LoadWeights(c.Source); err != nil {
		return nil, fmt.Errorf("VAE %s: %w", path, err)
	}
	return v, nil
}

// vaeFileHash is AUTOMATIC1111's "VAE hash": the first 10 hex digits of the
// file's SHA-256 (the weights file of a folder).
func vaeFileHash(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		for _, f := range []string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors"} {
			if fileExists(filepath.Join(path, f)) {
				return shortHash(filepath.Join(path, f))
			}
		}
		return ""
	}
	return shortHash(path)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// VAEEntry is one VAE of the VAE folder.
type VAEEntry struct {
	Name string // the file (or folder) name, as AUTOMATIC1111's sd_vae takes it
	Path string
}

// VAEs lists the VAE folder: *.safetensors files and diffusers VAE folders,
// sorted by name. A missing folder lists nothing.
func (p *Pipeline) VAEs() []VAEEntry {
	if p.vaes.dir == "" {
		return nil
	}
	entries, err := os.ReadDir(p.vaes.dir)
	if err != nil {
		slog.Warn("cannot list the VAE folder", "dir", p.vaes.dir, "err", err)
		return nil
	}
	var out []VAEEntry
	for _, e := range entries {
		path := filepath.Join(p.vaes.dir, e.Name())
		st, err := os.Stat(path) // follows links
		if err != nil {
			continue
		}
		if (!st.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".safetensors")) ||
			(st.IsDir() && fileExists(filepath.Join(path, "config.json"))) {
			out = append(out, VAEEntry{Name: e.Name(), Path: path})
		}
	}
	return out
}

// findVAE looks a VAE up by name in the VAE folder: the file name, with or
// without its extension.
func (p *Pipeline) findVAE(name string) (string, bool) {
	for _, e := range p.VAEs() {
		if e.Name == name || strings.TrimSuffix(e.Name, filepath.Ext(e.Name)) == name {
			return e.Path, true
		}
	}
	return "", false
}

// VAEChoice is the VAE in effect: "" for the checkpoint's own, else the
// file name (what AUTOMATIC1111's sd_vae shows).
func (p *Pipeline) VAEChoice() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.vaes.name
}

// SetVAE changes the pipeline's default VAE (AUTOMATIC1111's sd_vae
// option): "Automatic"/"None"/"" for the checkpoint's own, a name from the
// VAE folder, a path, or "taesd:PATH".
func (p *Pipeline) SetVAE(choice string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.setVAE(choice); err != nil {
		return err
	}
	p.vaes.def = p.vaes.cur
	return nil
}

// requestVAE applies a request's VAE (a name from the VAE folder, or
// Automatic/None) for the duration of the request; restore puts the default
// back. Called with p.mu held.
func (p *Pipeline) requestVAE(choice string) (restore func(), err error) {
	if strings.TrimSpace(choice) == "" {
		return func() {}, nil
	}
	if err := p.checkRequestVAE(choice); err != nil {
		return nil, err
	}
	def := p.vaes.def
	if err := p.setVAE(choice); err != nil {
		return nil, &FieldError{"vae", err.Error()}
	}
	return func() {
		if err := p.setVAE(def); err != nil {
			slog.Warn("restoring the VAE", "vae", def, "err", err)
		}
	}, nil
}

// checkRequestVAE refuses a request's VAE that is not Automatic, None or a
// name of the VAE folder (requests never name paths).
func (p *Pipeline) checkRequestVAE(choice string) error {
	if isOwnVAE(choice) {
		return nil
	}
	if _, ok := p.findVAE(choice); !ok {
		return &FieldError{"vae", fmt.Sprintf("%q is not in the VAE folder (see /sdapi/v1/sd-vae)", choice)}
	}
	return nil
}

// decode turns the diffusion model's latents into images [B, 3, H, W] in
// [-1, 1] with the chosen decoder.
func (p *Pipeline) decode(x []float32, shape []int) ([]float32, []int, error) {
	nn.ReleaseBuffers(p.Backend) // the decode reuses the U-Net's memory
	if t := p.vaes.tiny; t != nil {
		return t.DecodeRun(x, shape) // TAESD decodes scaled latents (scaling_factor 1)
	}
	z := p.VAE.Config.UnscaleValues(x)
	if p.tiled(shape) {
		return p.VAE.DecodeTiled(z, shape, vae.TileOptions{})
	}
	return p.VAE.DecodeRun(z, shape)
}

// encode turns images [B, 3, H, W] in [-1, 1] into the VAE's moments, tiled
// when the tiling choice asks for it.
func (p *Pipeline) encode(img []float32, shape []int) ([]float32, []int, error) {
	f := p.Factor()
	if p.tiled([]int{shape[0], 0, shape[2] / f, shape[3] / f}) {
		return p.VAE.EncodeTiled(img, shape, vae.TileOptions{})
	}
	return p.VAE.EncodeRun(img, shape)
}

// tiled says whether a decode of latents of this shape runs in tiles.
func (p *Pipeline) tiled(shape []int) bool {
	switch p.vaes.tiling.Mode {
	case "on":
		return true
	case "off":
		return false
	}
	budget := p.vaes.tiling.MaxBytes
	if budget <= 0 {
		budget = 6 << 30
	}
	return p.VAE.DecodePeakBytes(shape[0], shape[2], shape[3], false) > budget
}

// DecodePeakBytes estimates the memory one VAE decode of a batch of b images
// of h×w latents takes, whole or tiled as the pipeline would run it (for a
// server's memory budget).
func (p *Pipeline) DecodePeakBytes(b, h, w int) int64 {
	if p.vaes.tiny != nil {
		return p.VAE.DecodePeakBytes(b, h, w, true) / 8 // 64 channels instead of 128–512
	}
	return p.VAE.DecodePeakBytes(b, h, w, p.tiled([]int{b, 0, h, w}))
}

// Projection is a latent→RGB map, rgb = W·φ(z) + B (RGB in [-1, 1]), the
// cheap preview of a latent image. φ(z) is the latent channels, followed,
// when W has the rows, by their products z_i·z_j (i ≤ j): the quadratic
// terms follow the decoder's saturation of strong colours.
type Projection struct {
	W [][3]float64 `json:"w"` // one row per feature
	B [3]float64   `json:"b"`
}

// features fills dst with φ(z) and returns it; n is the number of rows W
// has (C or C + C(C+1)/2).
func features(dst, z []float64, n int) []float64 {
	dst = append(dst[:0], z...)
	for i := 0; i < len(z) && len(dst) < n; i++ {
		for j := i; j < len(z); j++ {
			dst = append(dst, z[i]*z[j])
		}
	}
	return dst[:min(n, len(dst))]
}

// sd15Projection is AUTOMATIC1111's "Approx cheap" table for SD 1.x latents.
var sd15Projection = Projection{W: [][3]float64{
	{0.298, 0.207, 0.208}, {0.187, 0.286, 0.173}, {-0.158, 0.189, 0.264}, {-0.184, -0.271, -0.473},
}}

// Image renders the first image of latents x [B, C, h, w] at latent
// resolution.
func (pr *Projection) Image(x []float32, shape []int) image.Image {
	C, h, w := shape[1], shape[2], shape[3]
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	z := make([]float64, C)
	var phi []float64
	for i := 0; i < h*w; i++ {
		rgb := pr.B
		for c := range C {
			z[c] = float64(x[c*h*w+i])
		}
		phi = features(phi, z, len(pr.W))
		for c, v := range phi {
			for k := range 3 {
				rgb[k] += v * pr.W[c][k]
			}
		}
		for k := range 3 {
			img.Pix[4*i+k] = uint8(math.Max(0, math.Min(255, math.Round((rgb[k]+1)*127.5))))
		}
		img.Pix[4*i+3] = 255
	}
	return img
}

// preview renders the first image of the latents x with the chosen preview
// decoder. Called with p.mu held.
func (p *Pipeline) preview(x []float32, shape []int) image.Image {
	one := append([]int{1}, shape[1:]...)
	first := x[:shape[1]*shape[2]*shape[3]]
	if p.vaes.preview == PreviewTAESD && p.vaes.taesd != nil {
		img, ishape, err := p.vaes.taesd.DecodeRun(first, one)
		if err == nil {
			return toRGBA(img, ishape[1], ishape[2], ishape[3])
		}
		slog.Warn("TAESD preview failed; using the latent projection", "err", err)
	}
	pr, err := p.projection()
	if err != nil {
		slog.Warn("fitting the latent preview failed; using SD 1.x's factors", "err", err)
		pr = &sd15Projection
	}
	return pr.Image(first, one)
}

// projection returns the latent→RGB map of the decoder in effect, fitted on
// first use and cached (in memory, and on disk by model and VAE hash).
func (p *Pipeline) projection() (*Projection, error) {
	key := p.vaes.cur
	if pr := p.vaes.proj[key]; pr != nil {
		return pr, nil
	}
	var file string
	if p.Hash != "" {
		file = filepath.Join(fsutil.CacheDir(), "previews", p.Hash+"-"+strings.ReplaceAll(p.vaes.hash+p.vaes.name, string(filepath.Separator), "_")+".json")
		var pr Projection
		C := p.UNet.Config.OutChannels
		if data, err := os.ReadFile(file); err == nil && json.Unmarshal(data, &pr) == nil && len(pr.W) == C+C*(C+1)/2 {
			p.cacheProjection(key, &pr)
			return &pr, nil
		}
	}
	pr, err := p.fitProjection()
	if err != nil {
		return nil, err
	}
	p.cacheProjection(key, pr)
	if file != "" {
		if data, err := json.Marshal(pr); err == nil && os.MkdirAll(filepath.Dir(file), 0o755) == nil {
			_ = fsutil.WriteFileAtomic(file, data)
		}
	}
	return pr, nil
}

func (p *Pipeline) cacheProjection(key string, pr *Projection) {
	if p.vaes.proj == nil {
		p.vaes.proj = map[string]*Projection{}
	}
	p.vaes.proj[key] = pr
}

// fitProjection fits rgb = W·z + B by least squares: a few seeded images of
// smooth random colours are encoded by the model's VAE, their latents decoded
// by the decoder in effect, and each decoded image averaged over the f×f
// pixels of a latent pixel is regressed on that latent pixel. It costs one
// encode and one decode of 16 small images (SD 1.5: a few seconds, once).
func (p *Pipeline) fitProjection() (*Projection, error) {
	f := p.Factor()
	const n, lat = 16, 8
	H := lat * f
	r := rand.New(rand.NewPCG(1, 2))
	imgs := make([]float32, n*3*H*H)
	for i := range n {
		var corner [4][3]float64
		for c := range corner {
			for k := range 3 {
				corner[c][k] = 2*r.Float64() - 1
			}
		}
		if i < 8 { // the corners of the colour cube pin the saturated colours
			for c := range corner {
				for k := range 3 {
					corner[c][k] = 0.8 * float64(2*((i>>k)&1)-1)
				}
			}
		}
		for y := range H {
			for x := range H {
				u, v := float64(x)/float64(H-1), float64(y)/float64(H-1)
				for k := range 3 {
					val := (1-u)*(1-v)*corner[0][k] + u*(1-v)*corner[1][k] + (1-u)*v*corner[2][k] + u*v*corner[3][k]
					imgs[((i*3+k)*H+y)*H+x] = float32(val)
				}
			}
		}
	}
	moments, mshape, err := p.VAE.EncodeRun(imgs, []int{n, 3, H, H})
	if err != nil {
		return nil, fmt.Errorf("latent preview fit: %w", err)
	}
	C := mshape[1] / 2
	hw := mshape[2] * mshape[3]
	means := make([]float32, 0, n*C*hw)
	for i := range n {
		means = append(means, moments[i*2*C*hw:(i*2*C+C)*hw]...)
	}
	latents := p.VAE.Config.ScaleValues(means)
	lshape := []int{n, C, mshape[2], mshape[3]}
	dec, dshape, err := p.decode(latents, lshape)
	if err != nil {
		return nil, fmt.Errorf("latent preview fit: %w", err)
	}
	if dshape[2] != mshape[2]*f || dshape[3] != mshape[3]*f {
		return nil, errors.New("latent preview fit: the decoder's output size does not match the latents")
	}
	// Normal equations over rows [φ(z), 1] → rgb, with a little ridge.
	nf := C + C*(C+1)/2
	d := nf + 1
	ata := make([]float64, d*d)
	aty := make([]float64, d*3)
	row := make([]float64, d)
	z := make([]float64, C)
	W := dshape[3]
	for i := range n {
		for py := range mshape[2] {
			for px := range mshape[3] {
				for c := range C {
					z[c] = float64(latents[(i*C+c)*hw+py*mshape[3]+px])
				}
				row = append(features(row, z, nf), 1)
				var rgb [3]float64
				for k := range 3 {
					for dy := range f {
						for dx := range f {
							// Clamped as the image is, so the fit matches what shows.
							rgb[k] += math.Min(1, math.Max(-1, float64(dec[((i*3+k)*dshape[2]+py*f+dy)*W+px*f+dx])))
						}
					}
					rgb[k] /= float64(f * f)
				}
				for a := range d {
					for b := range d {
						ata[a*d+b] += row[a] * row[b]
					}
					for k := range 3 {
						aty[a*3+k] += row[a] * rgb[k]
					}
				}
			}
		}
	}
	for a := range nf { // ridge relative to each feature's scale
		ata[a*d+a] *= 1 + 1e-6
	}
	sol, err := solve(ata, aty, d, 3)
	if err != nil {
		return nil, fmt.Errorf("latent preview fit: %w", err)
	}
	pr := &Projection{W: make([][3]float64, nf)}
	for c := range nf {
		copy(pr.W[c][:], sol[c*3:c*3+3])
	}
	copy(pr.B[:], sol[nf*3:nf*3+3])
	return pr, nil
}

// solve solves A·X = B for X (A d×d, B d×m) by Gaussian elimination with
// partial pivoting.
func solve(a, b []float64, d, m int) ([]float64, error) {
	a, b = slices.Clone(a), slices.Clone(b)
	for col := range d {
		piv := col
		for r := col + 1; r < d; r++ {
			if math.Abs(a[r*d+col]) > math.Abs(a[piv*d+col]) {
				piv = r
			}
		}
		if math.Abs(a[piv*d+col]) < 1e-12 {
			return nil, errors.New("singular system")
		}
		for k := range d {
			a[col*d+k], a[piv*d+k] = a[piv*d+k], a[col*d+k]
		}
		for k := range m {
			b[col*m+k], b[piv*m+k] = b[piv*m+k], b[col*m+k]
		}
		for r := range d {
			if r == col {
				continue
			}
			f := a[r*d+col] / a[col*d+col]
			for k := range d {
				a[r*d+k] -= f * a[col*d+k]
			}
			for k := range m {
				b[r*m+k] -= f * b[col*m+k]
			}
		}
	}
	for r := range d {
		for k := range m {
			b[r*m+k] /= a[r*d+r]
		}
	}
	return b, nil
}
