package scheduler

import (
	"fmt"
	"math"
)

// This file holds the timestep and sigma schedules, separate from the
// samplers that walk them (k-diffusion style). The arithmetic follows numpy
// (float64, round half to even) where diffusers uses numpy and torch float32
// where it uses torch, so that the schedules match diffusers exactly.

// npLinspace is numpy.linspace(start, stop, n) in float64.
func npLinspace(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[n-1] = stop
	return out
}

// npArange is numpy.arange(start, stop, step) for float arguments.
func npArange(start, stop, step float64) []float64 {
	n := int(math.Ceil((stop - start) / step))
	if n < 0 {
		n = 0
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = start + float64(i)*step
	}
	return out
}

// npInterp is numpy.interp(x, arange(len(fp)), fp).
func npInterp(x float64, fp []float64) float64 {
	last := len(fp) - 1
	switch {
	case math.IsNaN(x):
		return x
	case x < 0:
		return fp[0]
	case x >= float64(last):
		return fp[last]
	}
	j := int(math.Floor(x))
	if float64(j) == x {
		return fp[j]
	}
	slope := fp[j+1] - fp[j]
	return slope*(x-float64(j)) + fp[j]
}

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// spacedTimesteps returns n descending timesteps in [0, T) placed as
// diffusers' timestep_spacing places them (Lin et al. 2023, Table 2):
// "linspace" spreads them evenly over [0, T−1] (rounded when round is set),
// "leading" takes multiples of T//n plus steps_offset, "trailing" counts
// down from T in steps of T/n.
func spacedTimesteps(spacing string, T, n, offset int, round bool) ([]float64, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %d inference steps: need at least 1", ErrSteps, n)
	}
	if n > T {
		return nil, fmt.Errorf("%w: %d inference steps exceed num_train_timesteps %d", ErrSteps, n, T)
	}
	var ts []float64
	switch spacing {
	case "linspace":
		ts = npLinspace(0, float64(T-1), n)
		if round {
			for i := range ts {
				ts[i] = math.RoundToEven(ts[i])
			}
		}
		reverse(ts)
	case "leading":
		ratio := T / n
		ts = make([]float64, n)
		for i := range ts {
			ts[i] = float64((n-1-i)*ratio + offset)
		}
	case "trailing":
		ts = npArange(float64(T), 0, -float64(T)/float64(n))
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i]) - 1
		}
	default:
		return nil, fmt.Errorf("scheduler: timestep_spacing %q is not supported (leading, linspace, trailing)", spacing)
	}
	return ts, nil
}

// spacedTimestepsMultistep is the spacing of the multistep solvers (DPM++,
// UniPC): n+1 points over [0, last) with the final one (t=0) dropped, so that
// the solver ends on a step from the smallest kept timestep to sigma 0.
func spacedTimestepsMultistep(spacing string, T, last, n, offset int) ([]float64, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %d inference steps: need at least 1", ErrSteps, n)
	}
	if n > T {
		return nil, fmt.Errorf("%w: %d inference steps exceed num_train_timesteps %d", ErrSteps, n, T)
	}
	var ts []float64
	switch spacing {
	case "linspace":
		ts = npLinspace(0, float64(last-1), n+1)
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i])
		}
		reverse(ts)
		ts = ts[:n]
	case "leading":
		ratio := last / (n + 1)
		ts = make([]float64, n)
		for i := range ts {
			ts[i] = float64((n-i)*ratio + offset)
		}
	case "trailing":
		ts = npArange(float64(last), 0, -float64(T)/float64(n))
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i]) - 1
		}
	default:
		return nil, fmt.Errorf("scheduler: timestep_spacing %q is not supported (leading, linspace, trailing)", spacing)
	}
	return ts, nil
}
