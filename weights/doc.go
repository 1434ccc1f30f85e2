// Package weights owns model files: safetensors reading and writing, dtype
// conversion, model discovery (diffusers folders, component folders, original
// single-file checkpoints, the Hugging Face cache layout), the renaming of
// original checkpoint keys to diffusers state-dict keys, and config presets.
//
// Everything above this package sees one naming scheme: a component's tensors
// under diffusers keys with diffusers shapes, read one tensor at a time through
// a Source (see OpenModel).
package weights
