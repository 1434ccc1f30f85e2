package textenc

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// byteChar maps each byte to the printable character that stands for it in
// the BPE vocabulary (GPT-2/CLIP bytes_to_unicode): the printable Latin-1
// bytes '!'…'~', '¡'…'¬', '®'…'ÿ' stand for themselves; the other 68 bytes,
// in increasing order, take U+0100, U+0101, ….
var (
	byteChar   [256]string
	charToByte [324]int16 // rune → byte, -1 when the rune stands for none
)

func init() {
	for i := range charToByte {
		charToByte[i] = -1
	}
	next := rune(256)
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF) {
			r = next
			next++
		}
		byteChar[b] = string(r)
		charToByte[r] = int16(b)
	}
}

func byteOfChar(r rune) (byte, bool) {
	if r < 0 || int(r) >= len(charToByte) || charToByte[r] < 0 {
		return 0, false
	}
	return byte(charToByte[r]), true
}

// symbols appends the BPE symbols of text to dst, as the slow tokenizer's
// tokenize(): added tokens (BOS/EOS/UNK text, and the pad token when it is
// split) are cut out of the raw text first; each piece between them is
// cleaned, NFC-normalised, split on whitespace, lower-cased, pre-tokenized
// and BPE-encoded.
func (t *CLIPTokenizer) symbols(dst []int32, text string) []int32 {
	// next[k] is the position of added token k at or after start (-1: none);
	// it is searched again only once start has passed it, so many added
	// tokens in a long text cost linear time.
	var buf [4]int
	next := buf[:0]
	for _, a := range t.added {
		next = append(next, strings.Index(text, a))
	}
	for start := 0; ; {
		at, k := -1, 0
		for i, a := range t.added { // sorted longest first: ties keep the longest
			if next[i] >= 0 && next[i] < start {
				if j := strings.Index(text[start:], a); j >= 0 {
					next[i] = start + j
				} else {
					next[i] = -1
				}
			}
			if next[i] >= 0 && (at < 0 || next[i] < at) {
				at, k = next[i], i
			}
		}
		if at < 0 {
			return t.appendPiece(dst, text[start:])
		}
		dst = t.appendPiece(dst, text[start:at])
		dst = append(dst, t.addedSym[k])
		start = at + len(t.added[k])
	}
}

// appendPiece tokenizes text that holds no added token.
func (t *CLIPTokenizer) appendPiece(dst []int32, piece string) []int32 {
	if piece == "" {
		return dst
	}
	s := norm.NFC.String(cleanText(piece))
	for len(s) > 0 {
		// Python's str.split(): runs of whitespace separate words.
		i := strings.IndexFunc(s, pyIsSpace)
		if i < 0 {
			i = len(s)
		}
		if i > 0 {
			dst = t.appendWord(dst, pyLower(s[:i]))
		}
		if i == len(s) {
			break
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		s = s[i+size:]
	}
	return dst
}

// cleanText is BasicTokenizer's _clean_text followed by
// _tokenize_chinese_chars: NUL, U+FFFD (and so invalid UTF-8) and characters
// of category C* other than \t \n \r are dropped; \t \n \r and category Zs
// become a space; CJK ideographs get a space on each side.
func cleanText(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7F {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == 0 || r == utf8.RuneError:
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case isOtherCategory(r):
		case r == ' ' || unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		case isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isOtherCategory reports general category C*: Cc, Cf, Co, Cs or Cn
// (unassigned).
func isOtherCategory(r rune) bool {
	if r < 0x80 {
		return r < 0x20 || r == 0x7F
	}
	if unicode.Is(unicode.C, r) {
		return true
	}
	return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// isCJK is BasicTokenizer._is_chinese_char: the CJK Unified Ideographs
// blocks (not Hangul, Hiragana or Katakana).
func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF ||
		r >= 0x3400 && r <= 0x4DBF ||
		r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F ||
		r >= 0x2B740 && r <= 0x2B81F ||
		r >= 0x2B820 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF ||
		r >= 0x2F800 && r <= 0x2FA1F
}

// pyIsSpace is Python's str.isspace for one character: category Zs or
// bidirectional class WS, B or S.
func pyIsSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1C, 0x1D, 0x1E, 0x1F, 0x85, 0x2028, 0x2029:
		return true
	}
	return r >= 0xA0 && unicode.Is(unicode.Zs, r)
}

// pyLower is Python's str.lower(): full lower-case mapping, so U+0130 İ
// becomes "i̇" (i + U+0307) and Σ becomes ς at the end of a word (Unicode's
// Final_Sigma context) and σ elsewhere.
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return asciiLower(s)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i, r := range rs {
		switch r {
		case 0x03A3: // Σ
			if finalSigma(rs, i) {
				b.WriteRune(0x03C2)
			} else {
				b.WriteRune(0x03C3)
			}
		case 0x0130: // İ
			b.WriteString("i\u0307")
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// finalSigma reports whether rs[i] is in the Final_Sigma context: a cased
// letter before it and none after it, skipping case-ignorable characters.
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !cased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && caseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !cased(rs[j])
}

// cased is the Unicode Cased property.
func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is the Unicode Case_Ignorable property: categories Mn, Me,
// Cf, Lm, Sk and Word_Break MidLetter, MidNumLet or Single_Quote.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// appendWord pre-tokenizes one lower-cased, whitespace-free word with CLIP's
// pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// (case-insensitive, with Python regex's simple case folding) and BPE-encodes
// each match.
func (t *CLIPTokenizer) appendWord(dst []int32, w string) []int32 {
	for i := 0; i < len(w); {
		if w[i] == '<' {
			if n := foldPrefix(w[i:], StartOfText); n > 0 {
				dst = t.appendBPE(dst, w[i:i+n])
				i += n
				continue
			}
			if n := foldPrefix(w[i:], EndOfText); n > 0 {
				dst = t.appendBPE(dst, w[i:i+n])
				i += n
				continue
			}
		}
		if w[i] == '\'' {
			if n := contraction(w[i:]); n > 0 {
				dst = t.appendBPE(dst, w[i:i+n])
				i += n
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(w[i:])
		j := i + size
		switch {
		case isLetterRune(r):
			for j < len(w) {
				r, size := utf8.DecodeRuneInString(w[j:])
				if !isLetterRune(r) {
					break
				}
				j += size
			}
		case isNumberRune(r):
		case !inPunctClass(r):
			// Whitespace, or U+0345 (see inPunctClass): no alternative matches.
			i = j
			continue
		default:
			for j < len(w) {
				r, size := utf8.DecodeRuneInString(w[j:])
				if !inPunctClass(r) {
					break
				}
				j += size
			}
		}
		dst = t.appendBPE(dst, w[i:j])
		i = j
	}
	return dst
}

func isLetterRune(r rune) bool {
	if r < 0x80 {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
	}
	return unicode.IsLetter(r)
}

func isNumberRune(r rune) bool {
	if r < 0x80 {
		return r >= '0' && r <= '9'
	}
	return unicode.IsNumber(r)
}

// inPunctClass reports whether r is in the pattern's [^\s\p{L}\p{N}] as
// Python's regex module matches it case-insensitively: a character is in a
// multi-member set when any character of its case-folding orbit is, so a
// non-letter that case-folds to a letter (U+0345 COMBINING GREEK
// YPOGEGRAMMENI folds to ι) is in neither [^\s\p{L}\p{N}] nor the
// single-property [\p{L}], and is skipped like whitespace.
func inPunctClass(r rune) bool {
	if isLetterRune(r) || isNumberRune(r) || pyIsSpace(r) {
		return false
	}
	if r < 0x80 {
		return true
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if isLetterRune(f) || isNumberRune(f) || pyIsSpace(f) {
			return false
		}
	}
	return true
}

// contractions are the pattern's 's 't 're 've 'm 'll 'd, in order.
var contractions = [...]string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// contraction returns the length of the contraction at the start of w, or 0.
func contraction(w string) int {
	for _, c := range contractions {
		if n := foldPrefix(w, c); n > 0 {
			return n
		}
	}
	return 0
}

// foldPrefix returns the byte length of the prefix of s that equals lit
// under simple case folding (so "ſ" matches "s"), or 0.
func foldPrefix(s, lit string) int {
	i := 0
	for _, want := range lit {
		if i >= len(s) {
			return 0
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != want && !foldEq(r, want) {
			return 0
		}
		i += size
	}
	return i
}

// foldEq reports whether a and b are in the same simple case-folding orbit.
func foldEq(a, b rune) bool {
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == b {
			return true
		}
	}
	return false
}
