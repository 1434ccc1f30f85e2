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
	if len(pre) > maxCachedWord {
		return append(dst, t.bpeLong(pre)...)
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

// maxCachedWord is the longest pre-token (in bytes) that the simple
// quadratic merge loop handles and the cache keeps; longer ones (never real
// words) go through bpeLong uncached, so neither time nor memory blows up on
// hostile input.
const maxCachedWord = 64

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
		best := bpeMerge{rank: math.MaxInt32}
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

// bpeLong gives the same result as bpe in O(n log n): the adjacent pairs
// that have a rank sit in a min-heap keyed by (rank, position). All entries of
// the lowest rank (one pair, since ranks are unique per pair) are taken
// together and merged in position order, skipping entries that an earlier
// merge has invalidated, which is bpe's left-to-right, non-overlapping pass.
// A merge never creates that same pair again (the merged symbol is longer
// than either half), so the pass is complete before lower ranks it created
// are taken.
func (t *CLIPTokenizer) bpeLong(pre string) []int32 {
	n := len(pre)
	sym := make([]int32, n)
	next := make([]int32, n)
	prev := make([]int32, n)
	for i := 0; i < n; i++ {
		sym[i] = t.base[pre[i]]
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
	}
	sym[n-1] = t.baseEnd[pre[n-1]]
	next[n-1] = -1
	var h pairHeap
	pushPair := func(p int32) {
		if p < 0 || next[p] < 0 {
			return
		}
		if m, ok := t.merges[pairKey(sym[p], sym[next[p]])]; ok {
			h.push(uint64(m.rank)<<32 | uint64(p))
		}
	}
	for i := 0; i < n-1; i++ {
		pushPair(int32(i))
	}
	var batch []int32
	for len(h) > 0 {
		rank := uint32(h[0] >> 32)
		batch = batch[:0]
		for len(h) > 0 && uint32(h[0]>>32) == rank {
			batch = append(batch, int32(uint32(h.pop())))
		}
		for _, p := range batch { // ascending positions
			q := next[p]
			if sym[p] < 0 || q < 0 {
				continue
			}
			m, ok := t.merges[pairKey(sym[p], sym[q])]
			if !ok || uint32(m.rank) != rank {
				continue
			}
			sym[p], sym[q] = m.result, -1
			next[p] = next[q]
			if next[q] >= 0 {
				prev[next[q]] = p
			}
			pushPair(prev[p])
			pushPair(p)
		}
	}
	word := make([]int32, 0, n)
	for p := int32(0); p >= 0; p = next[p] {
		word = append(word, sym[p])
	}
	return word
}

// pairHeap is a binary min-heap of rank<<32 | position keys.
type pairHeap []uint64

func (h *pairHeap) push(k uint64) {
	*h = append(*h, k)
	a := *h
	for i := len(a) - 1; i > 0; {
		parent := (i - 1) / 2
		if a[parent] <= a[i] {
			break
		}
		a[parent], a[i] = a[i], a[parent]
		i = parent
	}
}

func (h *pairHeap) pop() uint64 {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a[l] < a[m] {
			m = l
		}
		if r < len(a) && a[r] < a[m] {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
