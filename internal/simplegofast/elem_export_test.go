package simplegofast

// ElemCalls is the number of ops computed by the fast elementwise
// executors so far.
func ElemCalls() int64 { return elemCalls.Load() }
