// Package textenc turns prompts into conditioning: it owns the tokenizers and
// the CLIP text transformer.
//
// # CLIP tokenizer
//
// CLIPTokenizer reproduces transformers' slow (Python) CLIPTokenizer as
// diffusers loads it for Stable Diffusion, without ftfy installed: text
// cleaning (control characters dropped, whitespace unified, spaces around CJK
// ideographs), NFC, Python lower-casing (final sigma, İ → i̇), the CLIP
// pre-tokenizer pattern, byte-to-unicode mapping, and BPE by merge rank with
// the "</w>" end-of-word suffix. The text of the special tokens
// <|startoftext|> and <|endoftext|> inside a prompt is recognised as those
// tokens. Encode pads SD1-style with <|endoftext|> (49407) or SD2-style with
// "!" (0) and truncates to 77 keeping EOS last.
//
// It is implemented here rather than on github.com/sugarme/tokenizer v0.3.0,
// the only pure-Go HF tokenizers port, because that library is wrong for CLIP:
// RobertaProcessing panics when trim_offsets is false (as in CLIP's
// tokenizer.json), BPE never appends the end_of_word_suffix "</w>" (an
// off-by-one in MergeWord), Replace normalizers with a Regex pattern are
// silently dropped when read from JSON, and Tokenizer.Save is a stub. It also
// lacks NFC and Python's final-sigma lower-casing.
package textenc
