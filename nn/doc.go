// Package nn holds the layers every model of ldm is built from (Conv2D,
// GroupNorm, LayerNorm, Linear, attention, activations) on GoMLX graphs,
// the backend selection, and the bridge from weights.Source to GoMLX
// variables. Activations are channels-last (NHWC, [B,T,C]); weights keep the
// PyTorch layout of their diffusers keys (conv OIHW, linear [out,in]) and are
// rearranged inside the layer, in one place.
package nn
