// Package gemm is a single-precision matrix product (SGEMM) for the pure-Go
// GoMLX backend.
//
// It follows the GotoBLAS/BLIS scheme: B is packed into k-major panels nr
// columns wide (one panel, kc×nr, stays in L1 while it is multiplied by a
// whole block of A), A is packed block by block (mc×kc, sized for L2) into
// k-major panels mr rows tall, and an mr×nr register-tile micro-kernel
// multiplies one A panel by one B panel. On amd64 with AVX2 and FMA the
// micro-kernel is assembly (6×16: twelve YMM accumulators), and with
// AVX-512F pairs of B panels go through a 6×32 ZMM kernel (the 6×16 one at
// the edges; the same bits, since both add the k terms in order);
// elsewhere it is plain Go. The choice is made at start-up (KernelName
// says which; LDM_GEMM_KERNEL=avx2 or generic caps it). Work is spread over GOMAXPROCS goroutines
// by blocks of rows of C (and by column panels when there are few row
// blocks); every thread count gives the same bits, since the order of the
// sums over k depends only on the shapes.
//
// Operands are described by offsets, not copied: any strides (transposes
// included) and index tables (axes that don't merge into one stride) are
// absorbed by the packing step.
package gemm

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Blocking parameters (floats). kcMax×nr×4 bytes = 16 KiB of B panel in L1;
// mcMax×kcMax×4 = 144 KiB of packed A in L2.
const (
	kcMax = 256
	mcMax = 144 // a multiple of mr

	// maxPackedB bounds the packed B kept for a group of batch entries;
	// a single entry may exceed it.
	maxPackedB = 16 << 20

	// parallelFlops is the smallest product split across goroutines.
	parallelFlops = 1 << 21

	// panelsPerPackTask is how many B panels one packing task fills.
	panelsPerPackTask = 64
)

// Axis maps a logical index to a memory offset: Offsets[i] when Offsets is
// non-nil, i*Stride otherwise. Offsets and strides must not be negative.
type Axis struct {
	Stride  int
	Offsets []int
}

func (x *Axis) at(i int) int {
	if x.Offsets != nil {
		return x.Offsets[i]
	}
	return i * x.Stride
}

// unit reports whether consecutive indices are adjacent in memory.
func (x *Axis) unit() bool { return x.Offsets == nil && x.Stride == 1 }

// max returns the largest offset of indices [0, n), checking that none is
// negative. n ≥ 1.
func (x *Axis) max(n int) (int, error) {
	if x.Offsets == nil {
		if x.Stride < 0 {
			return 0, fmt.Errorf("negative stride %d", x.Stride)
		}
		return (n - 1) * x.Stride, nil
	}
	if len(x.Offsets) < n {
		return 0, fmt.Errorf("%d offsets for a dimension of %d", len(x.Offsets), n)
	}
	hi := 0
	for _, o := range x.Offsets[:n] {
		if o < 0 {
			return 0, fmt.Errorf("negative offset %d", o)
		}
		hi = max(hi, o)
	}
	return hi, nil
}

// Operand is a batch of matrices inside Data: element (i, j) of batch entry
// b is Data[Batch(b) + Rows(i) + Cols(j)]. For A the rows are the m axis and
// the columns the contracted k axis; for B the rows are k and the columns n.
type Operand struct {
	Data       []float32
	Batch      Axis
	Rows, Cols Axis
}

// Dense returns the Operand of a batch of row-major matrices stored one
// after another ([batch, rows, cols]); with transposed set the matrices are
// stored as [batch, cols, rows] and read transposed.
func Dense(data []float32, rows, cols int, transposed bool) Operand {
	if transposed {
		return Operand{Data: data, Batch: Axis{Stride: rows * cols}, Rows: Axis{Stride: 1}, Cols: Axis{Stride: rows}}
	}
	return Operand{Data: data, Batch: Axis{Stride: rows * cols}, Rows: Axis{Stride: cols}, Cols: Axis{Stride: 1}}
}

func (o *Operand) check(batch, rows, cols int) error {
	b, err := o.Batch.max(batch)
	if err != nil {
		return fmt.Errorf("batch axis: %w", err)
	}
	r, err := o.Rows.max(rows)
	if err != nil {
		return fmt.Errorf("row axis: %w", err)
	}
	c, err := o.Cols.max(cols)
	if err != nil {
		return fmt.Errorf("column axis: %w", err)
	}
	if hi := b + r + c; hi >= len(o.Data) {
		return fmt.Errorf("element offset %d out of range for %d values", hi, len(o.Data))
	}
	return nil
}

// Mul computes the BLAS-style single product C = op(A)·op(B), C being m×n
// row-major with row stride ldc: op(A) is m×k, stored row-major with row
// stride lda, or (transA) k×m with row stride lda and read transposed;
// likewise op(B), k×n. C is overwritten.
func Mul(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) error {
	opA := Operand{Data: a, Rows: Axis{Stride: lda}, Cols: Axis{Stride: 1}}
	if transA {
		opA.Rows, opA.Cols = Axis{Stride: 1}, Axis{Stride: lda}
	}
	opB := Operand{Data: b, Rows: Axis{Stride: ldb}, Cols: Axis{Stride: 1}}
	if transB {
		opB.Rows, opB.Cols = Axis{Stride: 1}, Axis{Stride: ldb}
	}
	if ldc < n {
		return fmt.Errorf("gemm: ldc %d < n %d", ldc, n)
	}
	return run(&problem{batch: 1, m: m, n: n, k: k, a: opA, b: opB, c: c, ldc: ldc})
}

// BatchedMul computes C[b] = A[b]·B[b] for every b < batch, A[b] being m×k
// and B[b] k×n; c holds the results row-major and contiguous, [batch, m, n],
// and is overwritten. c must not overlap the operands' data. Any stride or
// offset outside an operand's Data is an error, never a fault.
func BatchedMul(batch, m, n, k int, a, b Operand, c []float32) error {
	return run(&problem{batch: batch, m: m, n: n, k: k, a: a, b: b, c: c, ldc: n, cBatch: m * n})
}

// problem is one call: C[b] (at c[b*cBatch], row stride ldc) = A[b]·B[b].
type problem struct {
	batch, m, n, k int
	a, b           Operand
	c              []float32
	ldc, cBatch    int

	kern     microKernel
	packBT   packBTFunc
	rowsKern rowsKernel  // non-nil: full row panels of A are read in place
	lda      int         // A's row stride then
	wide     microKernel // non-nil: full mr×2nr tiles use it (AVX-512)
	wideRows rowsKernel  // the same reading A in place (with rowsKern)

	// Derived blocking.
	kBlocks       []int // start of each k block, then k
	kc            int   // size of the first (largest) k block
	nPanels, nPad int   // B panels of nr columns; nPanels*nr
	mc, mBlocks   int   // rows per block of A, number of blocks
}

func run(p *problem) (err error) {
	if p.batch < 0 || p.m < 0 || p.n < 0 || p.k < 0 {
		return fmt.Errorf("gemm: negative dimension (batch=%d m=%d n=%d k=%d)", p.batch, p.m, p.n, p.k)
	}
	if p.batch == 0 || p.m == 0 || p.n == 0 {
		return nil
	}
	if need := (p.batch-1)*p.cBatch + (p.m-1)*p.ldc + p.n; need > len(p.c) || p.cBatch < 0 {
		return fmt.Errorf("gemm: C has %d values, %d needed", len(p.c), need)
	}
	if p.k == 0 {
		for b := range p.batch {
			for i := range p.m {
				o := b*p.cBatch + i*p.ldc
				clear(p.c[o : o+p.n])
			}
		}
		return nil
	}
	if err := p.a.check(p.batch, p.m, p.k); err != nil {
		return fmt.Errorf("gemm: A: %w", err)
	}
	if err := p.b.check(p.batch, p.k, p.n); err != nil {
		return fmt.Errorf("gemm: B: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gemm: internal error: %v", r)
		}
	}()
	ks := activeKernels()
	p.kern, p.wide = ks.packed, ks.wide
	p.packBT = activePackBT()
	if ks.rows != nil && p.a.Cols.unit() && p.a.Rows.Offsets == nil && useRowsKernel(p) {
		p.rowsKern, p.wideRows, p.lda = ks.rows, ks.wideRows, p.a.Rows.Stride
	}

	threads := runtime.GOMAXPROCS(0)
	if flops := 2 * float64(p.batch) * float64(p.m) * float64(p.n) * float64(p.k); flops < parallelFlops {
		threads = 1
	}

	// k blocks of (nearly) equal size ≤ kcMax, the first one the largest.
	nk := (p.k + kcMax - 1) / kcMax
	p.kc = (p.k + nk - 1) / nk
	for k0 := 0; k0 < p.k; k0 += p.kc {
		p.kBlocks = append(p.kBlocks, k0)
	}
	p.kBlocks = append(p.kBlocks, p.k)
	p.nPanels = (p.n + nr - 1) / nr
	p.nPad = p.nPanels * nr
	p.mc = min(mcMax, (p.m+mr-1)/mr*mr)
	p.mBlocks = (p.m + p.mc - 1) / p.mc

	scratch := make([]*workerScratch, threads)
	defer func() {
		for _, s := range scratch {
			if s != nil {
				aPool.Put(s.a)
				if s.b != nil {
					bPool.Put(s.b)
				}
			}
		}
	}()
	if schedule == scheduleSharedB || schedule == scheduleAuto && p.batch*p.mBlocks >= 2*threads {
		return p.runSharedB(threads, scratch)
	}
	return p.runSplitN(threads, scratch)
}

// runSharedB is the schedule for many blocks of rows: B is packed once
// (per batch entry, in parallel) and shared; tasks are row blocks of C, each
// reading the whole packed B (in L3, a kc×nr panel at a time in L1) against
// its A block (in L2).
func (p *problem) runSharedB(threads int, scratch []*workerScratch) error {
	perBatch := p.k * p.nPad
	group := max(1, min(p.batch, maxPackedB/perBatch))
	packed := getBuf(&bPool, group*perBatch)
	defer bPool.Put(packed)
	nkb := len(p.kBlocks) - 1
	for b0 := 0; b0 < p.batch; b0 += group {
		g := min(group, p.batch-b0)
		bp := (*packed)[:g*perBatch]

		// Phase 1: pack B for the group.
		packGroups := (p.nPanels + panelsPerPackTask - 1) / panelsPerPackTask
		err := parallelFor(g*nkb*packGroups, threads, func(_, t int) {
			pg := t % packGroups
			kb := (t / packGroups) % nkb
			bl := t / (packGroups * nkb)
			k0, k1 := p.kBlocks[kb], p.kBlocks[kb+1]
			jp0 := pg * panelsPerPackTask
			jp1 := min(p.nPanels, jp0+panelsPerPackTask)
			kc := k1 - k0
			base := bl*perBatch + k0*p.nPad
			packB(bp[base+jp0*kc*nr:base+jp1*kc*nr], &p.b, p.b.Batch.at(b0+bl), k0, kc, p.n, jp0, jp1, p.packBT)
		})
		if err != nil {
			return err
		}

		// Phase 2: one task per row block (and batch entry).
		err = parallelFor(g*p.mBlocks, threads, func(w, t int) {
			s := p.worker(scratch, w)
			ib, bl := t%p.mBlocks, t/p.mBlocks
			i0 := ib * p.mc
			mcur := min(p.mc, p.m-i0)
			pb := bp[bl*perBatch : (bl+1)*perBatch]
			for kb := range nkb {
				k0, k1 := p.kBlocks[kb], p.kBlocks[kb+1]
				p.compute(s, b0+bl, i0, mcur, k0, k1-k0, kb > 0, nil, pb[k0*p.nPad:k1*p.nPad], 0, 0, p.nPanels)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// runSplitN is the schedule for few blocks of rows (a large B against a
// small A, e.g. a convolution at low resolution): tasks are groups of
// column panels, each packing its own part of B one k block at a time
// (so B is read once, and packed into L2 rather than to memory) and
// running every row block against it.
func (p *problem) runSplitN(threads int, scratch []*workerScratch) error {
	nGroups := 1
	if threads > 1 {
		nGroups = min(p.nPanels, (4*threads+p.batch-1)/p.batch)
	}
	perGr := (p.nPanels + nGroups - 1) / nGroups
	nGroups = (p.nPanels + perGr - 1) / perGr
	nkb := len(p.kBlocks) - 1

	// A that must be packed is packed once, shared by the column groups.
	var apacked []float32
	mPad := (p.m + mr - 1) / mr * mr
	if p.rowsKern == nil && nGroups > 1 {
		buf := getBuf(&bPool, p.batch*mPad*p.k)
		defer bPool.Put(buf)
		apacked = *buf
		err := parallelFor(p.batch*nkb*p.mBlocks, threads, func(_, t int) {
			ib := t % p.mBlocks
			kb := (t / p.mBlocks) % nkb
			b := t / (p.mBlocks * nkb)
			k0, k1 := p.kBlocks[kb], p.kBlocks[kb+1]
			i0 := ib * p.mc
			mcur := min(p.mc, p.m-i0)
			o := b*mPad*p.k + k0*mPad + i0*(k1-k0)
			packA(apacked[o:o+(mcur+mr-1)/mr*mr*(k1-k0)], &p.a, p.a.Batch.at(b), i0, mcur, k0, k1-k0)
		})
		if err != nil {
			return err
		}
	}

	return parallelFor(p.batch*nGroups, threads, func(w, t int) {
		s := p.worker(scratch, w)
		jg, b := t%nGroups, t/nGroups
		jp0 := jg * perGr
		jp1 := min(p.nPanels, jp0+perGr)
		if need := p.kc * (jp1 - jp0) * nr; s.b == nil || cap(*s.b) < need {
			if s.b != nil {
				bPool.Put(s.b)
			}
			s.b = getBuf(&bPool, p.kc*perGr*nr)
		}
		bBase := p.b.Batch.at(b)
		for kb := range nkb {
			k0, k1 := p.kBlocks[kb], p.kBlocks[kb+1]
			kc := k1 - k0
			bk := (*s.b)[:kc*(jp1-jp0)*nr]
			packB(bk, &p.b, bBase, k0, kc, p.n, jp0, jp1, p.packBT)
			for ib := range p.mBlocks {
				i0 := ib * p.mc
				mcur := min(p.mc, p.m-i0)
				var ap []float32
				if apacked != nil {
					o := b*mPad*p.k + k0*mPad + i0*kc
					ap = apacked[o : o+(mcur+mr-1)/mr*mr*kc]
				}
				p.compute(s, b, i0, mcur, k0, kc, kb > 0, ap, bk, jp0, jp0, jp1)
			}
		}
	})
}

// Schedules; schedule forces one (tests), scheduleAuto picks by shape.
const (
	scheduleAuto = iota
	scheduleSharedB
	scheduleSplitN
)

var schedule = scheduleAuto

// rowsMode forces (1) or forbids (-1) reading A in place; 0 decides by shape.
var rowsMode = 0

// useRowsKernel decides whether to read row-major A in place instead of
// packing it.
func useRowsKernel(p *problem) bool {
	switch rowsMode {
	case 1:
		return true
	case -1:
		return false
	}
	return true
}

// workerScratch is one goroutine's: a packed block of A, a packed block of B
// (runSplitN) and an edge tile.
type workerScratch struct {
	a, b *[]float32
	tmp  [mr * nr]float32
}

func (p *problem) worker(scratch []*workerScratch, w int) *workerScratch {
	s := scratch[w]
	if s == nil {
		s = &workerScratch{a: getBuf(&aPool, p.mc*p.kc)}
		scratch[w] = s
	}
	return s
}

// compute adds (accumulate) or writes the product of rows [i0, i0+mcur) ×
// k block [k0, k0+kc) of A[b] by the packed B k block bk (whose first panel
// is column panel jpBase) into C[b], for column panels [jp0, jp1). A is
// read in place, or taken from apacked when not nil, or packed here.
func (p *problem) compute(s *workerScratch, b, i0, mcur, k0, kc int, accumulate bool, apacked, bk []float32, jpBase, jp0, jp1 int) {
	aBase := p.a.Batch.at(b)
	cBase := b * p.cBatch
	ldc := p.ldc
	c := p.c
	kern := p.kern
	tmp := s.tmp[:]
	ap := (*s.a)[:(mcur+mr-1)/mr*mr*kc]
	full := 0 // rows read in place
	if apacked != nil {
		ap = apacked
	} else if p.rowsKern != nil {
		full = mcur / mr * mr
		if full < mcur {
			packA(ap[full*kc:], &p.a, aBase, i0+full, mcur-full, k0, kc)
		}
	} else {
		packA(ap, &p.a, aBase, i0, mcur, k0, kc)
	}
	for jp := jp0; jp < jp1; jp++ {
		bpanel := bk[(jp-jpBase)*kc*nr : (jp-jpBase+1)*kc*nr]
		j := jp * nr
		nrem := min(nr, p.n-j)
		// Two full-width panels: mr×2nr tiles with the wide kernel, where
		// there is one; the rows' edge falls through to single panels.
		if p.wide != nil && jp+1 < jp1 && j+2*nr <= p.n {
			bpair := bk[(jp-jpBase)*kc*nr : (jp-jpBase+2)*kc*nr]
			edge := mcur / mr * mr
			for ir := 0; ir < edge; ir += mr {
				off := cBase + (i0+ir)*ldc + j
				if ir < full {
					ao := aBase + (i0+ir)*p.lda + k0
					p.wideRows(kc, p.a.Data[ao:ao+(mr-1)*p.lda+kc], p.lda, bpair, c[off:off+(mr-1)*ldc+2*nr], ldc, accumulate)
				} else {
					p.wide(kc, ap[ir*kc:(ir+mr)*kc], bpair, c[off:off+(mr-1)*ldc+2*nr], ldc, accumulate)
				}
			}
			if edge < mcur {
				for q := range 2 {
					p.edgeTile(s, ap[edge*kc:(edge+mr)*kc], bpair[q*kc*nr:(q+1)*kc*nr], kc, mcur-edge, nr, c, cBase+(i0+edge)*ldc+j+q*nr, accumulate)
				}
			}
			jp++
			continue
		}
		for ir := 0; ir < mcur; ir += mr {
			apanel := ap[ir*kc : (ir+mr)*kc]
			mrem := min(mr, mcur-ir)
			off := cBase + (i0+ir)*ldc + j
			if ir < full {
				ao := aBase + (i0+ir)*p.lda + k0
				arows := p.a.Data[ao : ao+(mr-1)*p.lda+kc]
				if nrem == nr {
					p.rowsKern(kc, arows, p.lda, bpanel, c[off:off+(mr-1)*ldc+nr], ldc, accumulate)
					continue
				}
				p.rowsKern(kc, arows, p.lda, bpanel, tmp, nr, false)
			} else if mrem == mr && nrem == nr {
				kern(kc, apanel, bpanel, c[off:off+(mr-1)*ldc+nr], ldc, accumulate)
				continue
			} else {
				kern(kc, apanel, bpanel, tmp, nr, false)
			}
			for r := range mrem {
				dst := c[off+r*ldc : off+r*ldc+nrem]
				src := tmp[r*nr : r*nr+nrem]
				if accumulate {
					for x, v := range src {
						dst[x] += v
					}
				} else {
					copy(dst, src)
				}
			}
		}
	}
}

// edgeTile computes a partial tile (mrem < mr rows or nrem < nr columns)
// of the packed A micro-panel apanel by bpanel into tmp, and writes or adds
// its valid part to C at off.
func (p *problem) edgeTile(s *workerScratch, apanel, bpanel []float32, kc, mrem, nrem int, c []float32, off int, accumulate bool) {
	tmp := s.tmp[:]
	p.kern(kc, apanel, bpanel, tmp, nr, false)
	for r := range mrem {
		dst := c[off+r*p.ldc : off+r*p.ldc+nrem]
		src := tmp[r*nr : r*nr+nrem]
		if accumulate {
			for x, v := range src {
				dst[x] += v
			}
		} else {
			copy(dst, src)
		}
	}
}

// parallelFor runs fn(worker, task) for every task < tasks on up to threads
// goroutines (the caller's included), handing out tasks in order. worker is
// in [0, threads). A panic in fn is returned as an error.
func parallelFor(tasks, threads int, fn func(worker, task int)) error {
	threads = min(threads, tasks)
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	work := func(w int) {
		defer func() {
			if r := recover(); r != nil {
				once.Do(func() { firstErr = fmt.Errorf("%v", r) })
				next.Store(int64(tasks))
			}
		}()
		for {
			t := int(next.Add(1) - 1)
			if t >= tasks {
				return
			}
			fn(w, t)
		}
	}
	for w := 1; w < threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w)
		}()
	}
	work(0)
	wg.Wait()
	if firstErr != nil {
		return errors.Join(errors.New("gemm: internal error"), firstErr)
	}
	return nil
}

// Packing buffers, reused across calls: blocks of A, and packed B.
var aPool, bPool sync.Pool

func getBuf(pool *sync.Pool, n int) *[]float32 {
	if v, ok := pool.Get().(*[]float32); ok && cap(*v) >= n {
		*v = (*v)[:n]
		return v
	}
	s := make([]float32, n)
	return &s
}
