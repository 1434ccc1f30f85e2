package classify

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/disintegration/imaging"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// Head is one classification output: the metadata field it predicts and
// its label names (the class index is the position in Labels).
type Head struct {
	Field  string   `json:"field"`
	Labels []string `json:"labels"`
}

// Config describes a classifier. It is stored as config.json beside the
// weights, label names included, so that a folder is self-contained.
type Config struct {
	// Task names the label set ("emoji", "shapes", or "custom").
	Task string `json:"task"`
	// Size is the side of the square RGB input; other images are resized.
	Size int `json:"size"`
	// Channels are the widths of the stride-2 stages; the last one is the
	// feature dimension.
	Channels []int `json:"channels"`
	// Groups is the GroupNorm group count (it must divide every width).
	Groups int    `json:"groups"`
	Heads  []Head `json:"heads"`
}

// Validate reports what is wrong with a config.
func (c Config) Validate() error {
	switch {
	case c.Size < 8 || c.Size > 1024:
		return fmt.Errorf("classifier size %d: want 8 to 1024", c.Size)
	case len(c.Channels) == 0:
		return errors.New("classifier: no channels")
	case c.Groups < 1:
		return fmt.Errorf("classifier groups %d: want at least 1", c.Groups)
	case len(c.Heads) == 0:
		return errors.New("classifier: no heads")
	}
	if c.Size>>len(c.Channels) < 1 {
		return fmt.Errorf("classifier: %d stride-2 stages do not fit a %d² input", len(c.Channels), c.Size)
	}
	for _, ch := range c.Channels {
		if ch < 1 || ch%c.Groups != 0 {
			return fmt.Errorf("classifier channels %v: each must be a positive multiple of groups %d", c.Channels, c.Groups)
		}
	}
	seen := map[string]bool{}
	for _, h := range c.Heads {
		if h.Field == "" || seen[h.Field] {
			return fmt.Errorf("classifier head %q: empty or repeated field", h.Field)
		}
		seen[h.Field] = true
		if len(h.Labels) < 2 {
			return fmt.Errorf("classifier head %q: %d labels, want at least 2", h.Field, len(h.Labels))
		}
	}
	return nil
}

// FeatureDim is the length of the feature vector.
func (c Config) FeatureDim() int { return c.Channels[len(c.Channels)-1] }

// HeadIndex is the position of the head predicting field, or -1.
func (c Config) HeadIndex(field string) int {
	return slices.IndexFunc(c.Heads, func(h Head) bool { return h.Field == field })
}

// Forward builds the classifier on x [B, Size, Size, 3] (NHWC, values in
// [-1, 1]) and returns the pooled features [B, FeatureDim] and one logit
// tensor [B, len(Labels)] per head. Each stage halves the resolution with a
// stride-2 convolution and adds a residual 3×3 convolution; every
// convolution is followed by GroupNorm and SiLU.
func Forward(ctx *context.Context, cfg Config, x *Node) (features *Node, logits []*Node) {
	h := x
	for i, ch := range cfg.Channels {
		s := ctx.In("stages").In(fmt.Sprint(i))
		h = nn.Conv2D(s.In("down"), h, nn.Conv2DOpts{Out: ch, Kernel: 3, Stride: 2, Pad: 1})
		h = nn.SiLU(nn.GroupNorm(s.In("norm_down"), h, cfg.Groups, 1e-5))
		r := nn.Conv2D(s.In("conv"), h, nn.Conv2DOpts{Out: ch, Kernel: 3, Pad: 1})
		h = Add(h, nn.SiLU(nn.GroupNorm(s.In("norm"), r, cfg.Groups, 1e-5)))
	}
	features = ReduceMean(h, 1, 2)
	for _, hd := range cfg.Heads {
		logits = append(logits, nn.Linear(ctx.In("heads").In(hd.Field), features, len(hd.Labels), true))
	}
	return features, logits
}

// Model is a classifier with its weights, ready to run.
type Model struct {
	Config  Config
	Backend backends.Backend

	mu    sync.Mutex
	ctx   *context.Context
	execs map[int]*context.Exec // by batch size
}

// New returns a model of cfg holding the weights of src (keys as written by
// Save: stages.0.down.weight, heads.<field>.weight, …). A missing,
// unexpected or misshapen weight is an error naming it.
func New(backend backends.Backend, cfg Config, src nn.Source) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	want, err := ExpectedKeys(backend, cfg)
	if err != nil {
		return nil, err
	}
	missing, unexpected := nn.CompareKeys(want, src.Keys())
	if len(missing) > 0 || len(unexpected) > 0 {
		return nil, fmt.Errorf("classifier weights do not match the config: missing %v, unexpected %v", missing, unexpected)
	}
	for k, dims := range want {
		_, shape, err := src.Float32(k)
		if err != nil {
			return nil, fmt.Errorf("classifier weight %s: %w", k, err)
		}
		if !slices.Equal(shape, dims) {
			return nil, fmt.Errorf("classifier weight %s has shape %v, the config needs %v", k, shape, dims)
		}
	}
	ctx := context.New()
	if err := nn.Load(ctx, src); err != nil {
		return nil, err
	}
	return &Model{Config: cfg, Backend: backend, ctx: ctx, execs: map[int]*context.Exec{}}, nil
}

// ExpectedKeys lists the weight keys and shapes of cfg.
func ExpectedKeys(backend backends.Backend, cfg Config) (map[string][]int, error) {
	return nn.ExpectedKeys(backend, func(ctx *context.Context, g *Graph) {
		Forward(ctx, cfg, Zeros(g, shapes.Make(nn.DType, 1, cfg.Size, cfg.Size, 3)))
	})
}

// File names inside a classifier folder.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
)

// Load reads a classifier folder (config.json + model.safetensors).
func Load(backend backends.Backend, dir string) (*Model, error) {
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("classifier %s: %w", dir, err)
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("classifier %s: %s: %w", dir, ConfigFile, err)
	}
	src, err := readWeights(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("classifier %s: %w", dir, err)
	}
	m, err := New(backend, cfg, src)
	if err != nil {
		return nil, fmt.Errorf("classifier %s: %w", dir, err)
	}
	return m, nil
}

// readWeights reads every tensor of a safetensors file into memory.
func readWeights(path string) (nn.MapSource, error) {
	f, err := weights.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src := nn.MapSource{}
	for _, k := range f.Names() {
		data, shape, err := f.Float32(k)
		if err != nil {
			return nil, err
		}
		src[k] = struct {
			Data  []float32
			Shape []int
		}{data, shape}
	}
	return src, nil
}

// Save writes cfg and the tensors of src as a classifier folder, atomically
// file by file. Weights are stored as float16: half the size (the embedded
// classifiers ship in the binary), and their predictions are unchanged at
// the precision any metric here is reported with.
func Save(dir string, cfg Config, src nn.MapSource) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var list []weights.WriteTensor
	for _, k := range src.Keys() {
		v := src[k]
		list = append(list, weights.WriteTensor{Name: k, DType: weights.F16, Shape: v.Shape, Float32: v.Data})
	}
	if err := weights.WriteFile(filepath.Join(dir, WeightsFile), list, map[string]string{"format": "pt", "ldm_classifier_task": cfg.Task}); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, ConfigFile), append(b, '\n'))
}

// Prediction is the output of Run for n images.
type Prediction struct {
	// Features[i] is image i's pooled feature vector.
	Features [][]float64
	// Logits[h][i] are head h's class scores for image i.
	Logits [][][]float32
}

// runBatch is the batch the compiled graph runs; a shorter tail is padded
// so that one graph serves every call.
const runBatch = 32

// Run classifies n images x [n, Size, Size, 3] (NHWC, values in [-1, 1]).
func (m *Model) Run(x []float32, n int) (*Prediction, error) {
	s := m.Config.Size
	per := s * s * 3
	if len(x) != n*per {
		return nil, fmt.Errorf("classifier: %d values for %d images of %d×%d×3", len(x), n, s, s)
	}
	p := &Prediction{Logits: make([][][]float32, len(m.Config.Heads))}
	for lo := 0; lo < n; lo += runBatch {
		hi := min(lo+runBatch, n)
		chunk := make([]float32, runBatch*per)
		copy(chunk, x[lo*per:hi*per])
		out, err := m.exec(chunk, runBatch)
		if err != nil {
			return nil, err
		}
		f := nn.Values(out[0])
		d := m.Config.FeatureDim()
		for i := range hi - lo {
			v := make([]float64, d)
			for j := range d {
				v[j] = float64(f[i*d+j])
			}
			p.Features = append(p.Features, v)
		}
		for h, hd := range m.Config.Heads {
			l, c := nn.Values(out[1+h]), len(hd.Labels)
			for i := range hi - lo {
				p.Logits[h] = append(p.Logits[h], slices.Clone(l[i*c:(i+1)*c]))
			}
		}
	}
	return p, nil
}

func (m *Model) exec(x []float32, b int) (out []*tensors.Tensor, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	err = nn.Try(func() {
		e := m.execs[b]
		if e == nil {
			cfg := m.Config
			e = context.MustNewExec(m.Backend, m.ctx.Reuse(), func(ctx *context.Context, x *Node) []*Node {
				f, l := Forward(ctx, cfg, x)
				return append([]*Node{f}, l...)
			})
			m.execs[b] = e
		}
		s := m.Config.Size
		out, err = e.Exec(tensors.FromFlatDataAndDimensions(x, b, s, s, 3))
		if err != nil {
			panic(err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("classifier: %w", err)
	}
	return out, nil
}

// ImageNHWC converts img to size×size RGB values in [-1, 1], row-major
// HWC: transparent pixels are composited onto white (as the datasets are)
// and other sizes are resized with Lanczos.
func ImageNHWC(img image.Image, size int) []float32 {
	b := img.Bounds()
	if b.Dx() != size || b.Dy() != size {
		img = imaging.Resize(img, size, size, imaging.Lanczos)
		b = img.Bounds()
	}
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Over)
	out := make([]float32, 0, size*size*3)
	for i := 0; i < len(dst.Pix); i += 4 {
		for c := range 3 {
			out = append(out, float32(dst.Pix[i+c])/127.5-1)
		}
	}
	return out
}
