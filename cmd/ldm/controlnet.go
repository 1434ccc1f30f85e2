package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/ldm-project/ldm/ldm"
)

// controlFlags are generate's ControlNet flags: the i-th --control-net
// reads the i-th --control-image (and --control-module, --control-strength,
// --control-start, --control-end when given once per net; given once, a
// value applies to every net).
type controlFlags struct {
	nets, images, modules, modes []string
	strengths, starts, ends      []float64
}

func (c *controlFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&c.nets, "control-net", nil, "ControlNet: a diffusers ControlNetModel folder or a .safetensors file (diffusers or A1111-extension layout); repeatable, one per --control-image")
	f.StringArrayVar(&c.images, "control-image", nil, "control image for the --control-net of the same position (PNG or JPEG); repeatable")
	f.Float64SliceVar(&c.strengths, "control-strength", nil, "ControlNet conditioning scale, 0-2 (default 1); repeatable, or one for every net")
	f.StringArrayVar(&c.modules, "control-module", nil, "preprocessor run on the control image: none (default: the image is the map), canny, threshold, scribble_xdog, invert; repeatable")
	f.Float64SliceVar(&c.starts, "control-start", nil, "fraction of the steps where the ControlNet starts acting (default 0); repeatable")
	f.Float64SliceVar(&c.ends, "control-end", nil, "fraction of the steps where it stops (default 1); repeatable")
	f.StringArrayVar(&c.modes, "control-mode", nil, "balanced (default), prompt (my prompt is more important) or control (ControlNet is more important); repeatable")
}

// units pairs the flags into request units, reading the images.
func (c *controlFlags) units() ([]ldm.ControlNetUnit, error) {
	n := len(c.nets)
	if len(c.images) != n {
		return nil, fmt.Errorf("--control-net: %d ControlNets and %d --control-image: give one image per ControlNet", n, len(c.images))
	}
	pick := func(flag string, count int) (func(i int) int, error) {
		switch count {
		case 0, 1:
			return func(int) int { return 0 }, nil
		case n:
			return func(i int) int { return i }, nil
		}
		return nil, fmt.Errorf("--%s: given %d times for %d ControlNets: give it once (for all) or once per --control-net", flag, count, n)
	}
	var out []ldm.ControlNetUnit
	for i := range n {
		u := ldm.NewControlNetUnit()
		u.Path = c.nets[i]
		if _, err := os.Stat(u.Path); err != nil {
			return nil, fmt.Errorf("--control-net: %w", err)
		}
		img, err := readImage(c.images[i])
		if err != nil {
			return nil, fmt.Errorf("--control-image: %w", err)
		}
		u.Image = img
		for _, f := range []struct {
			flag string
			n    int
			set  func(j int)
		}{
			{"control-strength", len(c.strengths), func(j int) { u.Weight = c.strengths[j] }},
			{"control-module", len(c.modules), func(j int) { u.Module = c.modules[j] }},
			{"control-start", len(c.starts), func(j int) { u.GuidanceStart = c.starts[j] }},
			{"control-end", len(c.ends), func(j int) { u.GuidanceEnd = c.ends[j] }},
			{"control-mode", len(c.modes), func(j int) { u.ControlMode = c.modes[j] }},
		} {
			at, err := pick(f.flag, f.n)
			if err != nil {
				return nil, err
			}
			if f.n > 0 {
				f.set(at(i))
			}
		}
		out = append(out, u)
	}
	if n == 0 && len(c.strengths)+len(c.modules)+len(c.starts)+len(c.ends)+len(c.modes) > 0 {
		return nil, fmt.Errorf("the --control-* options need a --control-net and its --control-image")
	}
	return out, nil
}
