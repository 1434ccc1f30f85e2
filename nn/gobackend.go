package nn

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// goBackend wraps the pure-Go backend (simplego) and supplies what it lacks
// for training: the Pad and Reverse ops (needed by the gradients of Slice and
// Convolve) and ConvGeneral with unset strides or dilations. Everything else
// is the embedded backend's. The XLA backend is never wrapped.
type goBackend struct {
	backends.Backend
}

// wrapGo is the wrap hook of NewBackend.
func wrapGo(b backends.Backend) backends.Backend {
	if b == nil {
		return nil
	}
	if _, ok := b.(*goBackend); ok || !isGoName(b) {
		return b
	}
	return &goBackend{Backend: b}
}

// Builder implements backends.Backend.
func (b *goBackend) Builder(name string) backends.Builder {
	return &goBuilder{Builder: b.Backend.Builder(name)}
}

// Capabilities implements backends.Backend: the inner ones plus Pad and Reverse.
func (b *goBackend) Capabilities() backends.Capabilities {
	c := b.Backend.Capabilities().Clone()
	c.Operations[backends.OpTypePad] = true
	c.Operations[backends.OpTypeReverse] = true
	return c
}

// goBuilder adds the missing ops on top of the simplego builder, expressed
// with ops it has.
type goBuilder struct {
	backends.Builder
}

func (b *goBuilder) shape(op backends.Op) (shapes.Shape, error) { return b.OpShape(op) }

// Pad implements backends.Builder with BroadcastInDim (of the fill value) and
// Concatenate; interior padding interleaves fill values through a reshape,
// and negative padding crops with Slice.
func (b *goBuilder) Pad(x, fill backends.Op, axesConfig ...backends.PadAxis) (backends.Op, error) {
	s, err := b.shape(x)
	if err != nil {
		return nil, err
	}
	if len(axesConfig) > s.Rank() {
		return nil, fmt.Errorf("Pad: %d axes configured for an operand of rank %d", len(axesConfig), s.Rank())
	}
	fs, err := b.shape(fill)
	if err != nil {
		return nil, err
	}
	if !fs.IsScalar() || fs.DType != s.DType {
		return nil, fmt.Errorf("Pad: fill value must be a scalar of dtype %s, got %s", s.DType, fs)
	}
	changed := false
	filled := func(dims []int) (backends.Op, error) {
		return b.BroadcastInDim(fill, shapes.Make(s.DType, dims...), nil)
	}
	for axis, cfg := range axesConfig {
		if cfg.Interior < 0 {
			return nil, fmt.Errorf("Pad: negative interior padding %d on axis %d", cfg.Interior, axis)
		}
		dims := slices.Clone(s.Dimensions)
		d := dims[axis]
		if cfg.Interior > 0 && d > 1 {
			// [..., d, rest...] → [..., d, 1, rest...] ++ fill[..., d, interior, rest...] on the new axis
			// → [..., d·(1+interior), rest...], then drop the trailing interior block.
			split := slices.Concat(dims[:axis+1], []int{1}, dims[axis+1:])
			x1, err := b.Reshape(x, split...)
			if err != nil {
				return nil, err
			}
			fd := slices.Clone(split)
			fd[axis+1] = cfg.Interior
			f, err := filled(fd)
			if err != nil {
				return nil, err
			}
			x1, err = b.Concatenate(axis+1, x1, f)
			if err != nil {
				return nil, err
			}
			merged := slices.Clone(dims)
			merged[axis] = d * (1 + cfg.Interior)
			if x1, err = b.Reshape(x1, merged...); err != nil {
				return nil, err
			}
			dims[axis] = d + (d-1)*cfg.Interior
			if x, err = b.sliceAxis(x1, merged, axis, 0, dims[axis]); err != nil {
				return nil, err
			}
			changed = true
		}
		// Negative padding crops.
		lo, hi := 0, dims[axis]
		if cfg.Start < 0 {
			lo = -cfg.Start
		}
		if cfg.End < 0 {
			hi += cfg.End
		}
		if lo > hi {
			return nil, fmt.Errorf("Pad: negative padding %+v removes more than axis %d's %d elements", cfg, axis, dims[axis])
		}
		if lo != 0 || hi != dims[axis] {
			if x, err = b.sliceAxis(x, dims, axis, lo, hi); err != nil {
				return nil, err
			}
			dims[axis] = hi - lo
			changed = true
		}
		parts := make([]backends.Op, 0, 3)
		if cfg.Start > 0 {
			fd := slices.Clone(dims)
			fd[axis] = cfg.Start
			f, err := filled(fd)
			if err != nil {
				return nil, err
			}
			parts = append(parts, f)
		}
		parts = append(parts, x)
		if cfg.End > 0 {
			fd := slices.Clone(dims)
			fd[axis] = cfg.End
			f, err := filled(fd)
			if err != nil {
				return nil, err
			}
			parts = append(parts, f)
		}
		if len(parts) > 1 {
			if x, err = b.Concatenate(axis, parts...); err != nil {
				return nil, err
			}
			changed = true
		}
		if s, err = b.shape(x); err != nil {
			return nil, err
		}
	}
	if !changed {
		return b.Identity(x)
	}
	return x, nil
}

// sliceAxis slices [lo,hi) of one axis of x, whose dimensions are dims.
func (b *goBuilder) sliceAxis(x backends.Op, dims []int, axis, lo, hi int) (backends.Op, error) {
	starts := make([]int, len(dims))
	limits := slices.Clone(dims)
	strides := make([]int, len(dims))
	for i := range strides {
		strides[i] = 1
	}
	starts[axis], limits[axis] = lo, hi
	return b.Slice(x, starts, limits, strides)
}

// Reverse implements backends.Builder: one Slice per index, concatenated in
// reverse order. Meant for small axes (convolution kernels).
func (b *goBuilder) Reverse(x backends.Op, axes ...int) (backends.Op, error) {
	s, err := b.shape(x)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	changed := false
	for _, axis := range axes {
		if axis < 0 {
			axis += s.Rank()
		}
		if axis < 0 || axis >= s.Rank() {
			return nil, fmt.Errorf("Reverse: axis %d out of range for rank %d", axis, s.Rank())
		}
		d := s.Dimensions[axis]
		if seen[axis] || d <= 1 {
			seen[axis] = true
			continue
		}
		seen[axis] = true
		parts := make([]backends.Op, d)
		for i := range d {
			if parts[d-1-i], err = b.sliceAxis(x, s.Dimensions, axis, i, i+1); err != nil {
				return nil, err
			}
		}
		if x, err = b.Concatenate(axis, parts...); err != nil {
			return nil, err
		}
		changed = true
	}
	if !changed {
		return b.Identity(x)
	}
	return x, nil
}

// ConvGeneral implements backends.Builder, replacing unset strides and
// dilations by 1s and unset paddings by 0s (simplego rejects nil strides and
// its gradient path indexes nil dilations).
func (b *goBuilder) ConvGeneral(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (backends.Op, error) {
	n := len(axes.InputSpatial)
	ones := func(v []int) []int {
		if len(v) == n {
			out := slices.Clone(v)
			for i := range out {
				out[i] = max(out[i], 1)
			}
			return out
		}
		if len(v) != 0 {
			return v // let the backend report the mismatch
		}
		out := make([]int, n)
		for i := range out {
			out[i] = 1
		}
		return out
	}
	if len(paddings) == 0 {
		paddings = make([][2]int, n)
	}
	return b.Builder.ConvGeneral(input, kernel, axes, ones(strides), paddings,
		ones(inputDilations), ones(kernelDilations), max(channelGroupCount, 1), max(batchGroupCount, 1))
}
