package textenc

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// Padding ids for Encode.
const (
	// PadSD1 pads with <|endoftext|>, as the SD1.x tokenizer (openai/clip-vit-large-patch14) does.
	PadSD1 = 49407
	// PadSD2 pads with "!" (id 0), as the SD2.x tokenizer folders (pad_token "!") do.
	PadSD2 = 0
	// PadDefault makes Encode pad with the tokenizer's own pad token (PadID).
	PadDefault = -1
)

// DefaultMaxLength is CLIP's context length (model_max_length).
const DefaultMaxLength = 77

// Standard CLIP special tokens.
const (
	StartOfText = "<|startoftext|>"
	EndOfText   = "<|endoftext|>"
)

// maxSlowMerges is how many merges the slow CLIPTokenizer reads from
// merges.txt: 49152 - 256 - 2 (it slices lines [1 : 49152-256-2+1]).
const maxSlowMerges = 49152 - 256 - 2

// endOfWord is the BPE end-of-word suffix.
const endOfWord = "</w>"

// bpeCacheLimit bounds the BPE cache; it is cleared when full.
const bpeCacheLimit = 1 << 16

// CLIPTokenizer is a byte-level BPE tokenizer exact to transformers' slow
// CLIPTokenizer without ftfy. It is safe for concurrent use.
//
// Character properties come from Go's Unicode tables (15.0). The reference
// takes them from its Python's unicodedata, so characters assigned in one
// Unicode version but not the other can differ: Python 3.11 (Unicode 14)
// drops characters new in Unicode 15 as unassigned, and Go keeps them.
type CLIPTokenizer struct {
	vocab   map[string]int
	idToTok []string // "" where no token has that id
	hasID   []bool

	// BPE symbols are interned: syms[s] is the text of symbol s and symID[s]
	// its vocabulary id (-1 when the vocabulary lacks it).
	syms     []string
	symID    []int32
	symIndex map[string]int32
	base     [256]int32 // symbol of a byte's character
	baseEnd  [256]int32 // symbol of a byte's character + "</w>"
	merges   map[uint64]bpeMerge

	// Tokens that the pre-tokenizer pattern matches literally and that the
	// BPE cache maps to themselves.
	patSOT, patEOT int32

	bosTok, eosTok, unkTok, padTok string
	bos, eos, unk, pad             int

	// Added tokens split out of the raw text before cleaning (leftmost,
	// then longest), with their symbols.
	added    []string
	addedSym []int32

	maxLen  int
	cleanUp bool

	mu    sync.RWMutex
	cache map[string][]int32
}

type bpeMerge struct {
	rank   int32
	result int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// tokOptions for building a tokenizer.
type tokOptions struct {
	bos, eos, unk, pad string
	maxLen             int
	splitPad           bool
	cleanUp            *bool
}

// TokenizerOption adjusts a tokenizer being built.
type TokenizerOption func(*tokOptions)

// WithPadToken sets the pad token (by its text, e.g. "!" for SD2 or
// "<|endoftext|>" for SD1), overriding the folder's configuration.
func WithPadToken(tok string) TokenizerOption { return func(o *tokOptions) { o.pad = tok } }

// WithMaxLength sets the default Encode length, overriding model_max_length.
func WithMaxLength(n int) TokenizerOption { return func(o *tokOptions) { o.maxLen = n } }

// WithSplitPadToken makes the pad token an added token that is split out of
// prompt text, as transformers does when it loads an SD2 folder whose
// pad_token is "!": every "!" in a prompt then becomes id 0 on its own
// ("!!!" gives 0 0 0 rather than "!!!</w>"; see diffusers issue #4153). The
// default (false) tokenizes "!" like open_clip, which SD2 was trained with,
// and like the SD2 ids in the golden data.
func WithSplitPadToken(split bool) TokenizerOption { return func(o *tokOptions) { o.splitPad = split } }

// NewCLIPTokenizer builds a tokenizer from a vocabulary (token → id) and
// merges (in rank order). Special tokens default to CLIP's: BOS
// <|startoftext|>, EOS/UNK/PAD <|endoftext|>; they must be in vocab.
func NewCLIPTokenizer(vocab map[string]int, merges [][2]string, opts ...TokenizerOption) (*CLIPTokenizer, error) {
	o := tokOptions{bos: StartOfText, eos: EndOfText, unk: EndOfText, pad: EndOfText, maxLen: DefaultMaxLength}
	for _, f := range opts {
		f(&o)
	}
	return build(vocab, merges, o)
}

func build(vocab map[string]int, merges [][2]string, o tokOptions) (*CLIPTokenizer, error) {
	if len(vocab) == 0 {
		return nil, errors.New("empty vocabulary")
	}
	t := &CLIPTokenizer{
		vocab:    vocab,
		symIndex: make(map[string]int32, len(vocab)+len(merges)),
		merges:   make(map[uint64]bpeMerge, len(merges)),
		cache:    make(map[string][]int32),
		maxLen:   o.maxLen,
		cleanUp:  true,
	}
	if o.cleanUp != nil {
		t.cleanUp = *o.cleanUp
	}
	if t.maxLen < 2 {
		t.maxLen = DefaultMaxLength
	}
	maxID := -1
	for tok, id := range vocab {
		if id < 0 || id > 1<<24 {
			return nil, fmt.Errorf("token %q has id %d, out of range", tok, id)
		}
		maxID = max(maxID, id)
	}
	t.idToTok = make([]string, maxID+1)
	t.hasID = make([]bool, maxID+1)
	for tok, id := range vocab {
		if t.hasID[id] {
			a, b := t.idToTok[id], tok
			if b < a {
				a, b = b, a
			}
			return nil, fmt.Errorf("tokens %q and %q share id %d", a, b, id)
		}
		t.idToTok[id] = tok
		t.hasID[id] = true
	}

	for b := 0; b < 256; b++ {
		t.base[b] = t.intern(byteChar[b])
		t.baseEnd[b] = t.intern(byteChar[b] + endOfWord)
	}
	for rank, m := range merges {
		a, b := t.intern(m[0]), t.intern(m[1])
		// A repeated pair keeps its last rank, as a Python dict built from
		// zip(merges, range(n)) does.
		t.merges[pairKey(a, b)] = bpeMerge{rank: int32(rank), result: t.intern(m[0] + m[1])}
	}
	t.patSOT = t.intern(StartOfText)
	t.patEOT = t.intern(EndOfText)

	var err error
	if t.bos, err = t.specialID("bos", o.bos); err != nil {
		return nil, err
	}
	if t.eos, err = t.specialID("eos", o.eos); err != nil {
		return nil, err
	}
	if t.unk, err = t.specialID("unk", o.unk); err != nil {
		return nil, err
	}
	if t.pad, err = t.specialID("pad", o.pad); err != nil {
		return nil, err
	}
	t.bosTok, t.eosTok, t.unkTok, t.padTok = o.bos, o.eos, o.unk, o.pad

	added := []string{o.bos, o.eos, o.unk}
	if o.splitPad {
		added = append(added, o.pad)
	}
	sort.Slice(added, func(i, j int) bool { return len(added[i]) > len(added[j]) })
	for _, a := range added {
		if a == "" || containsStr(t.added, a) {
			continue
		}
		t.added = append(t.added, a)
		t.addedSym = append(t.addedSym, t.intern(a))
	}
	return t, nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (t *CLIPTokenizer) specialID(what, tok string) (int, error) {
	if tok == "" {
		return 0, fmt.Errorf("empty %s token", what)
	}
	id, ok := t.vocab[tok]
	if !ok {
		return 0, fmt.Errorf("%s token %q is not in the vocabulary", what, tok)
	}
	return id, nil
}

// intern returns the symbol for s, adding it when new. Only used while
// building, so it needs no lock.
func (t *CLIPTokenizer) intern(s string) int32 {
	if s, ok := t.symIndex[s]; ok {
		return s
	}
	n := int32(len(t.syms))
	t.syms = append(t.syms, s)
	id := int32(-1)
	if v, ok := t.vocab[s]; ok {
		id = int32(v)
	}
	t.symID = append(t.symID, id)
	t.symIndex[s] = n
	return n
}

// BOS returns the id of the beginning-of-text token (49406 for CLIP).
func (t *CLIPTokenizer) BOS() int { return t.bos }

// EOS returns the id of the end-of-text token (49407 for CLIP).
func (t *CLIPTokenizer) EOS() int { return t.eos }

// UNK returns the id given to BPE symbols missing from the vocabulary.
func (t *CLIPTokenizer) UNK() int { return t.unk }

// PadID returns the id of the configured pad token: 49407 for SD1 folders,
// 0 for SD2 folders (pad_token "!").
func (t *CLIPTokenizer) PadID() int { return t.pad }

// MaxLength returns the default Encode length (model_max_length, 77).
func (t *CLIPTokenizer) MaxLength() int { return t.maxLen }

// VocabSize returns the number of vocabulary entries (49408 for CLIP).
func (t *CLIPTokenizer) VocabSize() int { return len(t.vocab) }

// ID returns the id of a token's text (as in vocab.json, e.g. "photo</w>").
func (t *CLIPTokenizer) ID(token string) (int, bool) {
	id, ok := t.vocab[token]
	return id, ok
}

// Token returns the text of the token with the given id.
func (t *CLIPTokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.idToTok) || !t.hasID[id] {
		return "", false
	}
	return t.idToTok[id], true
}

// Tokens returns the BPE tokens of text, without BOS/EOS, as the slow
// tokenizer's tokenize() does.
func (t *CLIPTokenizer) Tokens(text string) []string {
	syms := t.symbols(nil, text)
	out := make([]string, len(syms))
	for i, s := range syms {
		out[i] = t.syms[s]
	}
	return out
}

// TokenIDs returns the ids of text's tokens without BOS/EOS, truncation or
// padding. It is the building block for prompt chunking and emphasis.
func (t *CLIPTokenizer) TokenIDs(text string) []int {
	return t.AppendTokenIDs(nil, text)
}

// AppendTokenIDs appends the ids of text's tokens (no BOS/EOS) to dst.
func (t *CLIPTokenizer) AppendTokenIDs(dst []int, text string) []int {
	var buf [64]int32
	for _, s := range t.symbols(buf[:0], text) {
		dst = append(dst, t.idOf(s))
	}
	return dst
}

func (t *CLIPTokenizer) idOf(s int32) int {
	if id := t.symID[s]; id >= 0 {
		return int(id)
	}
	return t.unk
}

// Tokenize returns BOS, text's token ids, EOS, with no truncation or
// padding (transformers' input_ids without padding/truncation).
func (t *CLIPTokenizer) Tokenize(text string) []int {
	ids := make([]int, 1, 16)
	ids[0] = t.bos
	ids = t.AppendTokenIDs(ids, text)
	return append(ids, t.eos)
}

// Encode tokenizes text as the Stable Diffusion pipelines do
// (padding="max_length", truncation=True): BOS, at most maxLen-2 token ids,
// EOS, then padID up to maxLen. mask has 1 for BOS…EOS and 0 for padding.
// padID PadDefault (-1) uses PadID(); maxLen <= 0 uses MaxLength(); maxLen is
// at least 2.
func (t *CLIPTokenizer) Encode(text string, padID, maxLen int) (ids, mask []int) {
	if padID < 0 {
		padID = t.pad
	}
	if maxLen <= 0 {
		maxLen = t.maxLen
	}
	maxLen = max(maxLen, 2)
	return t.Pad(t.Tokenize(text), padID, maxLen)
}

// Pad truncates a BOS…EOS sequence to maxLen keeping its last id (EOS) at the
// end, then pads it with padID to maxLen. It returns new slices.
func (t *CLIPTokenizer) Pad(seq []int, padID, maxLen int) (ids, mask []int) {
	ids = make([]int, maxLen)
	mask = make([]int, maxLen)
	n := copy(ids, seq)
	if len(seq) > maxLen && maxLen > 0 {
		ids[maxLen-1] = seq[len(seq)-1]
	}
	for i := range n {
		mask[i] = 1
	}
	for i := n; i < maxLen; i++ {
		ids[i] = padID
	}
	return ids, mask
}

// Decode turns ids back into text like transformers'
// decode(ids, skip_special_tokens=True): BOS, EOS and UNK ids and unknown ids
// are skipped, "</w>" becomes a space, invalid UTF-8 becomes U+FFFD, and the
// clean-up of tokenization spaces (" ," → ",", " 's" → "'s", …) is applied
// unless the folder's tokenizer_config.json disables it. SD2 padding ("!",
// id 0) is ordinary text here: cut padded ids with their mask first.
func (t *CLIPTokenizer) Decode(ids []int) string {
	var buf []byte
	for _, id := range ids {
		tok, ok := t.Token(id)
		if !ok || id == t.bos || id == t.eos || id == t.unk {
			continue
		}
		for _, r := range tok {
			if b, ok := byteOfChar(r); ok {
				buf = append(buf, b)
			} else {
				buf = utf8.AppendRune(buf, r)
			}
		}
	}
	s := strings.ReplaceAll(decodeUTF8Replace(buf), endOfWord, " ")
	s = strings.TrimFunc(s, pyIsSpace)
	if t.cleanUp {
		s = cleanUpTokenization(s)
	}
	return s
}

var cleanUpReplacer = []string{
	" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'",
	" n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re",
}

// cleanUpTokenization applies transformers' clean_up_tokenization: the
// replacements run one after another over the whole string.
func cleanUpTokenization(s string) string {
	for i := 0; i < len(cleanUpReplacer); i += 2 {
		s = strings.ReplaceAll(s, cleanUpReplacer[i], cleanUpReplacer[i+1])
	}
	return s
}

// decodeUTF8Replace decodes b like Python's bytes.decode("utf-8",
// errors="replace"): one U+FFFD per maximal invalid subpart.
func decodeUTF8Replace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			sb.WriteRune(r)
			b = b[size:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[invalidPrefix(b):]
	}
	return sb.String()
}

// invalidPrefix returns the length of the maximal subpart of an ill-formed
// sequence at the start of b (at least 1), per Unicode's "substitution of
// maximal subparts" used by Python.
func invalidPrefix(b []byte) int {
	c := b[0]
	var n int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		n = 2
	case c == 0xE0:
		n, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		n = 3
	case c == 0xED:
		n, hi = 3, 0x9F
	case c == 0xF0:
		n, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		n = 4
	case c == 0xF4:
		n, hi = 4, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i < n && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return i
}
