// Package nn holds the layers every model of ldm is built from (Conv2D,
// GroupNorm, LayerNorm, Linear, attention, activations) on GoMLX graphs,
// the backend selection, and the bridge from weights.Source to GoMLX
// variables. Activations are channels-last (NHWC, [B,T,C]); weights keep the
// PyTorch layout of their diffusers keys (conv OIHW, linear [out,in]) and are
// read in that layout by the layer, in one place.
//
// Every layer is differentiable on both backends. On the pure-Go backend
// (simplego) that takes two fix-ups, both in this package: NewBackend wraps
// the backend to add the ops it lacks (Pad, Reverse; see gobackend.go), and
// importing nn replaces the gradient of DotGeneral/Dot on that backend by two
// matrix products, and registers gradients for Pad and Reverse (vjp.go).
// Measurements behind these choices: docs/PERFORMANCE.md, "nn
// micro-benchmarks".
package nn
