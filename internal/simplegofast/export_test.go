package simplegofast

// FastCalls is the number of DotGenerals computed by internal/gemm so far.
func FastCalls() int64 { return fastCalls.Load() }
