package simplegofast

import (
	"runtime"
	"sync"
)

// parallelGrain is the least work (in elements) worth a goroutine.
const parallelGrain = 1 << 15

// parallelFor calls f on consecutive ranges covering [0, n), on up to
// GOMAXPROCS goroutines (the caller's included) when the work, n items of
// cost elements each, is large enough.
func parallelFor(n, cost int, f func(lo, hi int)) {
	w := runtime.GOMAXPROCS(0)
	if byWork := n * max(cost, 1) / parallelGrain; byWork < w {
		w = byWork
	}
	w = min(w, n)
	if w <= 1 {
		f(0, n)
		return
	}
	chunk := (n + w - 1) / w
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() { f(lo, hi) })
	}
	f(0, min(chunk, n))
	wg.Wait()
}
