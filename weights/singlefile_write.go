package weights

import (
	"fmt"
	"slices"
)

// WriteSingleFile writes the unet, vae and text_encoder of m as one original
// (CompVis/LDM layout) checkpoint, the inverse of opening a single file: keys
// renamed by ToOriginalKey, VAE attention matrices stored as [C,C,1,1],
// OpenCLIP q/k/v fused into in_proj. The layout comes from the components'
// configs. Values are written in dtype (F32, F16 or BF16), one tensor in
// memory at a time, atomically.
func WriteSingleFile(path string, m *Model, dtype DType, metadata map[string]string) error {
	config := func(name string) []byte {
		if c := m.Components[name]; c != nil {
			return c.Config
		}
		return nil
	}
	layout, err := LayoutFromConfigs(config(UNet), config(VAE), config(TextEncoder))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	type group struct {
		src   Source
		keys  []string // diffusers keys by part index
		shape []int    // original shape of one part
	}
	groups := map[string]*group{}
	var names []string
	for _, comp := range modelComponents {
		c := m.Components[comp]
		if c == nil || c.Source == nil {
			continue
		}
		for _, key := range c.Source.Keys() {
			orig, part, err := ToOriginalKey(comp, key, layout)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			_, shape, _ := c.Source.Info(key)
			g := groups[orig]
			if g == nil {
				g = &group{src: c.Source, keys: make([]string, part.Of), shape: originalShape(comp, key, shape)}
				groups[orig] = g
				names = append(names, orig)
			}
			if len(g.keys) != part.Of || g.keys[part.Index] != "" || !slices.Equal(g.shape, originalShape(comp, key, shape)) {
				return fmt.Errorf("%s: %s key %q collides with another tensor at %q", path, comp, key, orig)
			}
			g.keys[part.Index] = key
		}
	}
	tensors := make([]WriteTensor, 0, len(names))
	for _, orig := range names {
		g := groups[orig]
		if i := slices.Index(g.keys, ""); i >= 0 {
			return fmt.Errorf("%s: part %d of %d of %q is missing (have %v)", path, i, len(g.keys), orig, g.keys)
		}
		shape := slices.Clone(g.shape)
		if len(g.keys) > 1 {
			shape[0] *= len(g.keys)
		}
		tensors = append(tensors, WriteTensor{Name: orig, DType: dtype, Shape: shape, Load: func() ([]float32, error) {
			var out []float32
			for _, k := range g.keys {
				v, _, err := g.src.Float32(k)
				if err != nil {
					return nil, err
				}
				if out == nil {
					out = v
					if len(g.keys) > 1 {
						out = make([]float32, 0, len(v)*len(g.keys))
						out = append(out, v...)
					}
					continue
				}
				out = append(out, v...)
			}
			return out, nil
		}})
	}
	return WriteFile(path, tensors, metadata)
}
