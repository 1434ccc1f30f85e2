package textenc

import (
	"math"
	"strings"
)

// appendBPE appends the BPE symbols of one pre-token (raw UTF-8 text).
func (t *CLIPTokenizer) appendBPE(dst []int32, pre string) []int32 {
	// The slow tokenizer's BPE cache starts with the two special tokens
	// mapped to themselves, so their exact text is never split.
	switch pre {
	case StartOfText:
		return append(dst, t.patSOT)
	case EndOfText:
		return append(dst, t.patEOT)
	}
	if len(pre) == 1 {
		return append(dst, t.baseEnd[pre[0]])
	}
	t.mu.RLock()
	word, ok := t.cache[pre]
	t.mu.RUnlock()
	if ok {
		return append(dst, word...)
	}
	word = t.bpe(pre)
	t.mu.Lock()
	if len(t.cache) >= bpeCacheLimit {
		clear(t.cache)
	}
	t.cache[strings.Clone(pre)] = word
	t.mu.Unlock()
	return append(dst, word...)
}

// bpe merges the byte characters of pre, the last one carrying "</w>":
// repeatedly the adjacent pair with the lowest merge rank is merged
// everywhere it occurs (left to right, without overlap), until no adjacent
// pair has a rank.
func (t *CLIPTokenizer) bpe(pre string) []int32 {
	n := len(pre)
	word := make([]int32, n)
	for i := 0; i < n-1; i++ {
		word[i] = t.base[pre[i]]
	}
	word[n-1] = t.baseEnd[pre[n-1]]
	for len(word) > 1 {
		best := merge{rank: math.MaxInt32}
		var first, second int32
		for i := 0; i+1 < len(word); i++ {
			if m, ok := t.merges[pairKey(word[i], word[i+1])]; ok && m.rank < best.rank {
				best, first, second = m, word[i], word[i+1]
			}
		}
		if best.rank == math.MaxInt32 {
			break
		}
		out := word[:0] // in place: out never overtakes the read position
		for i := 0; i < len(word); {
			if i+1 < len(word) && word[i] == first && word[i+1] == second {
				out = append(out, best.result)
				i += 2
			} else {
				out = append(out, word[i])
				i++
			}
		}
		word = out
	}
	return word[:len(word):len(word)]
}
