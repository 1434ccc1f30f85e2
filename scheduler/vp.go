package scheduler

import (
	"fmt"
	"math"
	"sort"
)

// The multistep solvers in this file (DPM-Solver++, UniPC) work in the
// variance-preserving form x = α_t·x0 + σ_t·ε with α_t = 1/sqrt(σ²+1) and
// σ_t = σ·α_t, stepping in λ = log(α_t/σ_t). They keep the converted model
// outputs of the last steps. Scalars are float32 as in diffusers.

// vpBase is shared by the multistep solvers.
type vpBase struct {
	s    *Scheduler
	hist [][]float32 // converted model outputs, oldest first
}

func (b *vpBase) initNoiseSigma() float64  { return 1 }
func (b *vpBase) inputDivisor(int) float32 { return 0 }

func (b *vpBase) addNoise(x0, noise []float32, i int) []float32 {
	a, s := vpAlphaSigma(b.s.sigmas[i])
	out := make([]float32, len(x0))
	for k := range out {
		out[k] = a*x0[k] + s*noise[k]
	}
	return out
}

// vpAlphaSigma converts a k-diffusion sigma to (α_t, σ_t).
func vpAlphaSigma(sigma float32) (alpha, sig float32) {
	alpha = 1 / sqrt32(sigma*sigma+1)
	return alpha, sigma * alpha
}

// vpLambda is λ = log α_t − log σ_t (+Inf at σ = 0).
func vpLambda(sigma float32) float32 {
	a, s := vpAlphaSigma(sigma)
	return log32(a) - log32(s)
}

// push appends a converted output, keeping the last order of them.
func (b *vpBase) push(m []float32, order int) {
	b.hist = append(b.hist, m)
	if len(b.hist) > order {
		b.hist = b.hist[len(b.hist)-order:]
	}
}

// back returns the k-th newest history entry (0: newest).
func (b *vpBase) back(k int) []float32 { return b.hist[len(b.hist)-1-k] }

// vpSchedule lays out n steps for the multistep solvers: integer timesteps
// over [0, last) and their sigmas (interpolated, Karras, or uniform in λ),
// plus the final sigma.
func (b *vpBase) vpSchedule(n, last int, kind string, karrasFinal bool) ([]float64, []float32, error) {
	cfg := b.s.cfg
	T := cfg.NumTrainTimesteps
	ts, err := spacedTimestepsMultistep(cfg.TimestepSpacing, T, last, n, cfg.StepsOffset)
	if err != nil {
		return nil, nil, err
	}
	m := newModelSigmas(b.s.sched)
	all := m.sigmas
	var sig []float64
	if kind != "" {
		lo, hi := all[0], all[len(all)-1]
		if kind == "karras" {
			lo, hi = sigmaRange(cfg, lo, hi)
		}
		if sig, err = sigmasOf(kind, m, lo, hi, n); err != nil {
			return nil, nil, err
		}
		ts = make([]float64, len(sig))
		for i, v := range sig {
			ts[i] = math.RoundToEven(m.t(v))
		}
	} else {
		sig = make([]float64, len(ts))
		for i, t := range ts {
			sig[i] = npInterp(t, all)
		}
	}
	karras := kind == "karras"
	var final float32
	switch cfg.FinalSigmasType {
	case "zero":
	case "sigma_min":
		if karrasFinal && karras {
			final = float32(sig[len(sig)-1])
		} else {
			ac := b.s.sched.AlphasCumprod[0]
			final = sqrt32((1 - ac) / ac)
		}
	default:
		return nil, nil, fmt.Errorf("scheduler: final_sigmas_type %q is not supported (zero, sigma_min)", cfg.FinalSigmasType)
	}
	sigmas := make([]float32, len(sig)+1)
	for i, v := range sig {
		sigmas[i] = float32(v)
	}
	sigmas[len(sig)] = final
	return ts, sigmas, nil
}

// dpmSolver is DPM-Solver++ / DPM-Solver multistep (Lu et al. 2022,
// arXiv:2211.01095), orders 1–3, with the SDE variants; order 2 with
// dpmsolver++ is A1111's "DPM++ 2M".
type dpmSolver struct {
	vpBase
	lowerNums int
	// edm: the EDM variant (EDMDPMSolverMultistepScheduler): α_t = 1,
	// σ_t = σ, and the model output converted by EDM's preconditioning.
	edm *edmEuler
}

func (d *dpmSolver) alphaSigma(sigma float32) (float32, float32) {
	if d.edm != nil {
		return 1, sigma
	}
	return vpAlphaSigma(sigma)
}

func (d *dpmSolver) lambda(sigma float32) float32 {
	a, s := d.alphaSigma(sigma)
	return log32(a) - log32(s)
}

func (d *dpmSolver) plan(n int) ([]float64, []float32, error) {
	cfg := d.s.cfg
	T := cfg.NumTrainTimesteps
	// Drop the timesteps whose λ is below lambda_min_clipped.
	lam := make([]float64, T)
	for t, ac := range d.s.sched.AlphasCumprod {
		lam[T-1-t] = float64(log32(sqrt32(ac)) - log32(sqrt32(1-ac)))
	}
	clipped := sort.Search(T, func(k int) bool { return lam[k] >= cfg.LambdaMinClipped })
	ts, sig, err := d.vpSchedule(n, T-clipped, configSchedule(cfg), false)
	d.hist, d.lowerNums = nil, 0
	return ts, sig, err
}

func (d *dpmSolver) sde() bool {
	return d.s.cfg.AlgorithmType == "sde-dpmsolver++" || d.s.cfg.AlgorithmType == "sde-dpmsolver"
}

func (d *dpmSolver) dataPred() bool {
	return d.s.cfg.AlgorithmType == "dpmsolver++" || d.s.cfg.AlgorithmType == "sde-dpmsolver++"
}

// convert turns the model output into what the solver integrates: the x0
// prediction for the ++ (data prediction) variants, else ε.
func (d *dpmSolver) convert(out, x []float32, sigma float32) []float32 {
	if d.edm != nil {
		l := d.edm.precondition(sigma)
		m := make([]float32, len(x))
		for k := range m {
			m[k] = float32(l.at(x[k], out[k]))
		}
		return m
	}
	return vpConvert(d.dataPred(), d.s.cfg.PredictionType, sigma, out, x)
}

// vpConvert converts a model output at sigma to the x0 prediction (data) or
// the ε prediction.
func vpConvert(data bool, pred string, sigma float32, out, x []float32) []float32 {
	l := vpLin(data, pred, sigma)
	m := make([]float32, len(x))
	for k := range m {
		m[k] = float32(l.at(x[k], out[k]))
	}
	return m
}

// vpLin is the map from (x, model output) to the x0 (data) or ε prediction.
func vpLin(data bool, pred string, sigma float32) lin {
	a, s := vpAlphaSigma(sigma)
	x0, eps := predict(pred, a, s)
	if data {
		return x0
	}
	return eps
}

func (b *vpBase) x0Map(i int) (lin, error) {
	return vpLin(true, b.s.cfg.PredictionType, b.s.sigmas[i]), nil
}

func (d *dpmSolver) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	cfg := d.s.cfg
	n := len(d.s.timesteps)
	lowerFinal := i == n-1 && (cfg.EulerAtFinal || (cfg.LowerOrderFinal && n < 15) || cfg.FinalSigmasType == "zero")
	lowerSecond := i == n-2 && cfg.LowerOrderFinal && n < 15

	d.push(d.convert(out, x, d.s.sigmas[i]), cfg.SolverOrder)
	var z []float32
	if d.sde() {
		var err error
		if z, err = draw(noise, len(x)); err != nil {
			return nil, err
		}
	}
	var prev []float32
	switch {
	case d.s.sigmas[i+1] == d.s.sigmas[i]:
		// A zero-length step (Karras sigmas ending on sigma_min): the
		// higher-order formulas divide by h = 0, which diffusers turns
		// into NaN; the exact result is x itself.
		prev = append([]float32(nil), x...)
	case cfg.SolverOrder == 1 || d.lowerNums < 1 || lowerFinal:
		prev = d.firstOrder(i, x, z)
	case cfg.SolverOrder == 2 || d.lowerNums < 2 || lowerSecond:
		prev = d.secondOrder(i, x, z)
	default:
		prev = d.thirdOrder(i, x)
	}
	if d.lowerNums < cfg.SolverOrder {
		d.lowerNums++
	}
	return prev, nil
}

// combine returns cX·x + Σ c_j·m_j + cN·z elementwise.
func combine(x []float32, cX float64, ms [][]float32, cs []float64, z []float32, cN float64) []float32 {
	prev := make([]float32, len(x))
	switch {
	case len(ms) == 1 && z == nil:
		m0, c0 := ms[0][:len(x)], cs[0]
		for k := range prev {
			prev[k] = float32(cX*float64(x[k]) + c0*float64(m0[k]))
		}
		return prev
	case len(ms) == 2 && z == nil:
		m0, m1, c0, c1 := ms[0][:len(x)], ms[1][:len(x)], cs[0], cs[1]
		for k := range prev {
			prev[k] = float32(cX*float64(x[k]) + c0*float64(m0[k]) + c1*float64(m1[k]))
		}
		return prev
	}
	for k := range prev {
		v := cX * float64(x[k])
		for j, m := range ms {
			v += cs[j] * float64(m[k])
		}
		if z != nil {
			v += cN * float64(z[k])
		}
		prev[k] = float32(v)
	}
	return prev
}

func (d *dpmSolver) firstOrder(i int, x, z []float32) []float32 {
	at, st := d.alphaSigma(d.s.sigmas[i+1])
	as, ss := d.alphaSigma(d.s.sigmas[i])
	h := (log32(at) - log32(st)) - (log32(as) - log32(ss))
	m0 := d.back(0)
	var cX, c0, cN float32
	switch d.s.cfg.AlgorithmType {
	case "dpmsolver++":
		cX, c0 = st/ss, -(at * (exp32(-h) - 1))
	case "dpmsolver":
		cX, c0 = at/as, -(st * (exp32(h) - 1))
	case "sde-dpmsolver++":
		cX, c0 = st/ss*exp32(-h), at*(1-exp32(-2*h))
		cN = st * sqrt32(1-exp32(-2*h))
	case "sde-dpmsolver":
		cX, c0 = at/as, -2*(st*(exp32(h)-1))
		cN = st * sqrt32(exp32(2*h)-1)
	}
	return combine(x, float64(cX), [][]float32{m0}, []float64{float64(c0)}, z, float64(cN))
}

func (d *dpmSolver) secondOrder(i int, x, z []float32) []float32 {
	sig := d.s.sigmas
	at, st := d.alphaSigma(sig[i+1])
	as0, ss0 := d.alphaSigma(sig[i])
	lt, l0, l1 := log32(at)-log32(st), log32(as0)-log32(ss0), d.lambda(sig[i-1])
	h, h0 := lt-l0, l0-l1
	r0 := h0 / h
	m0, m1 := d.back(0), d.back(1)
	// x_t = cX·x + c0·D0 + c1·D1 with D0 = m0, D1 = (m0 − m1)/r0.
	var cX, c0, c1, cN float32
	heun := d.s.cfg.SolverType == "heun"
	switch d.s.cfg.AlgorithmType {
	case "dpmsolver++":
		cX, c0 = st/ss0, -(at * (exp32(-h) - 1))
		if heun {
			c1 = at * ((exp32(-h)-1)/h + 1)
		} else {
			c1 = -0.5 * (at * (exp32(-h) - 1))
		}
	case "dpmsolver":
		cX, c0 = at/as0, -(st * (exp32(h) - 1))
		if heun {
			c1 = -(st * ((exp32(h)-1)/h - 1))
		} else {
			c1 = -0.5 * (st * (exp32(h) - 1))
		}
	case "sde-dpmsolver++":
		cX, c0 = st/ss0*exp32(-h), at*(1-exp32(-2*h))
		if heun {
			c1 = at * ((1-exp32(-2*h))/(-2*h) + 1)
		} else {
			c1 = 0.5 * (at * (1 - exp32(-2*h)))
		}
		cN = st * sqrt32(1-exp32(-2*h))
	case "sde-dpmsolver":
		cX, c0 = at/as0, -2*(st*(exp32(h)-1))
		if heun {
			c1 = -2 * (st * ((exp32(h)-1)/h - 1))
		} else {
			c1 = -(st * (exp32(h) - 1))
		}
		cN = st * sqrt32(exp32(2*h)-1)
	}
	inv := float64(1 / r0)
	a0 := float64(c0) + float64(c1)*inv
	a1 := -float64(c1) * inv
	return combine(x, float64(cX), [][]float32{m0, m1}, []float64{a0, a1}, z, float64(cN))
}

func (d *dpmSolver) thirdOrder(i int, x []float32) []float32 {
	sig := d.s.sigmas
	at, st := d.alphaSigma(sig[i+1])
	as0, ss0 := d.alphaSigma(sig[i])
	lt, l0, l1, l2 := log32(at)-log32(st), log32(as0)-log32(ss0), d.lambda(sig[i-1]), d.lambda(sig[i-2])
	h, h0, h1 := lt-l0, l0-l1, l1-l2
	r0, r1 := h0/h, h1/h
	m0, m1, m2 := d.back(0), d.back(1), d.back(2)
	var cX, c0, c1, c2 float32
	if d.s.cfg.AlgorithmType == "dpmsolver++" {
		e := exp32(-h) - 1
		cX, c0 = st/ss0, -(at * e)
		c1 = at * (e/h + 1)
		c2 = -(at * ((exp32(-h)-1+h)/(h*h) - 0.5))
	} else {
		e := exp32(h) - 1
		cX, c0 = at/as0, -(st * e)
		c1 = -(st * (e/h - 1))
		c2 = -(st * ((exp32(h)-1-h)/(h*h) - 0.5))
	}
	// D1_0 = (m0−m1)/r0, D1_1 = (m1−m2)/r1,
	// D1 = D1_0 + r0/(r0+r1)·(D1_0−D1_1), D2 = (D1_0−D1_1)/(r0+r1).
	i0, i1 := float64(1/r0), float64(1/r1)
	w := float64(r0 / (r0 + r1))
	v := float64(1 / (r0 + r1))
	// In terms of m0, m1, m2:
	// D1_0 = i0·m0 − i0·m1; D1_1 = i1·m1 − i1·m2; diff = D1_0 − D1_1.
	diff := [3]float64{i0, -i0 - i1, i1}
	d10 := [3]float64{i0, -i0, 0}
	var cs [3]float64
	for j := range cs {
		d1 := d10[j] + w*diff[j]
		d2 := v * diff[j]
		cs[j] = float64(c1)*d1 + float64(c2)*d2
	}
	cs[0] += float64(c0)
	return combine(x, float64(cX), [][]float32{m0, m1, m2}, cs[:], nil, 0)
}

// uniPC is UniPC (Zhao et al. 2023, arXiv:2302.04867): a multistep predictor
// (UniP) with a corrector (UniC) that reuses the next model output at no
// extra model call.
type uniPC struct {
	vpBase
	lowerNums  int
	thisOrder  int
	lastSample []float32
}

func (u *uniPC) plan(n int) ([]float64, []float32, error) {
	cfg := u.s.cfg
	kind := "" // UniPC has no use_lu_lambdas
	if cfg.UseKarrasSigmas {
		kind = "karras"
	}
	ts, sig, err := u.vpSchedule(n, cfg.NumTrainTimesteps, kind, true)
	u.hist, u.lowerNums, u.thisOrder, u.lastSample = nil, 0, 0, nil
	return ts, sig, err
}

func (u *uniPC) convert(out, x []float32, sigma float32) []float32 {
	return vpConvert(u.s.cfg.PredictX0, u.s.cfg.PredictionType, sigma, out, x)
}

func (u *uniPC) step(i int, out, x []float32, _ Noise) ([]float32, error) {
	cfg := u.s.cfg
	useCorrector := i > 0 && u.lastSample != nil
	for _, k := range cfg.DisableCorrector {
		if k == i-1 {
			useCorrector = false
		}
	}
	m := u.convert(out, x, u.s.sigmas[i])
	sample := x
	if useCorrector {
		var err error
		if sample, err = u.correct(i, m, u.lastSample, x, u.thisOrder); err != nil {
			return nil, err
		}
	}
	u.push(m, cfg.SolverOrder)
	order := cfg.SolverOrder
	if cfg.LowerOrderFinal {
		order = min(order, len(u.s.timesteps)-i)
	}
	u.thisOrder = min(order, u.lowerNums+1)
	u.lastSample = sample
	var prev []float32
	if u.s.sigmas[i+1] == u.s.sigmas[i] {
		// Zero-length step (see dpmSolver.step).
		prev = append([]float32(nil), sample...)
	} else {
		var err error
		if prev, err = u.predict(i, sample, u.thisOrder); err != nil {
			return nil, err
		}
	}
	if u.lowerNums < cfg.SolverOrder {
		u.lowerNums++
	}
	return prev, nil
}

// bh holds the UniPC coefficients of one update.
type bh struct {
	hPhi1, Bh float32
	rks       []float32 // r_k for the older outputs, then 1
	b         []float32
}

func (u *uniPC) coefficients(h float32, rks []float32, order int) (bh, error) {
	hh := h
	if u.s.cfg.PredictX0 {
		hh = -h
	}
	c := bh{rks: append(rks, 1)}
	c.hPhi1 = float32(math.Expm1(float64(hh)))
	hPhiK := c.hPhi1/hh - 1
	switch u.s.cfg.SolverType {
	case "bh1":
		c.Bh = hh
	case "bh2":
		c.Bh = c.hPhi1
	default:
		return c, fmt.Errorf("UniPC solver_type %q is not supported (bh1, bh2)", u.s.cfg.SolverType)
	}
	fact := float32(1)
	for k := 1; k <= order; k++ {
		c.b = append(c.b, hPhiK*fact/c.Bh)
		fact *= float32(k + 1)
		hPhiK = hPhiK/hh - 1/fact
	}
	return c, nil
}

// matrix returns R with R[k][j] = rks[j]^k for k < size, j < size.
func (c bh) matrix(size int) [][]float64 {
	R := make([][]float64, size)
	for k := range R {
		R[k] = make([]float64, size)
		for j := range R[k] {
			p := float32(1)
			for e := 0; e < k; e++ {
				p *= c.rks[j]
			}
			R[k][j] = float64(p)
		}
	}
	return R
}

func (u *uniPC) predict(i int, x []float32, order int) ([]float32, error) {
	sig := u.s.sigmas
	at, st := vpAlphaSigma(sig[i+1])
	as0, ss0 := vpAlphaSigma(sig[i])
	l0 := log32(as0) - log32(ss0)
	h := (log32(at) - log32(st)) - l0
	m0 := u.back(0)
	var rks []float32
	var ms [][]float32
	for k := 1; k < order; k++ {
		rks = append(rks, (vpLambda(sig[i-k])-l0)/h)
		ms = append(ms, u.back(k))
	}
	c, err := u.coefficients(h, rks, order)
	if err != nil {
		return nil, err
	}
	var rhos []float64
	if len(ms) > 0 {
		if order == 2 {
			rhos = []float64{0.5}
		} else {
			bv := make([]float64, order-1)
			for k := range bv {
				bv[k] = float64(c.b[k])
			}
			if rhos, err = solve(c.matrix(order-1), bv); err != nil {
				return nil, err
			}
		}
	}
	return u.update(x, m0, ms, rks, rhos, 0, nil, at, st, as0, ss0, c), nil
}

func (u *uniPC) correct(i int, mt, last, this []float32, order int) ([]float32, error) {
	sig := u.s.sigmas
	at, st := vpAlphaSigma(sig[i])
	as0, ss0 := vpAlphaSigma(sig[i-1])
	l0 := log32(as0) - log32(ss0)
	h := (log32(at) - log32(st)) - l0
	m0 := u.back(0)
	var rks []float32
	var ms [][]float32
	for k := 1; k < order; k++ {
		rks = append(rks, (vpLambda(sig[i-(k+1)])-l0)/h)
		ms = append(ms, u.back(k))
	}
	c, err := u.coefficients(h, rks, order)
	if err != nil {
		return nil, err
	}
	var rhos []float64
	if order == 1 {
		rhos = []float64{0.5}
	} else {
		bv := make([]float64, order)
		for k := range bv {
			bv[k] = float64(c.b[k])
		}
		if rhos, err = solve(c.matrix(order), bv); err != nil {
			return nil, err
		}
	}
	return u.update(last, m0, ms, rks, rhos[:len(rhos)-1], rhos[len(rhos)-1], mt, at, st, as0, ss0, c), nil
}

// update is the shared UniP/UniC formula:
// x_t = (σ_t/σ_s)·x − α_t·hφ1·m0 − α_t·B(h)·(Σ ρ_k·(m_k − m0)/r_k + ρ_t·(m_t − m0))
// (with α/σ swapped when predicting ε).
func (u *uniPC) update(x, m0 []float32, ms [][]float32, rks []float32, rhos []float64, rhoT float64, mt []float32, at, st, as0, ss0 float32, c bh) []float32 {
	var cX, cM, cR float32
	if u.s.cfg.PredictX0 {
		cX, cM, cR = st/ss0, at*c.hPhi1, at*c.Bh
	} else {
		cX, cM, cR = at/as0, st*c.hPhi1, st*c.Bh
	}
	inv := make([]float64, len(ms))
	for k := range ms {
		inv[k] = float64(1/rks[k]) * rhos[k]
	}
	fX, fM, fR := float64(cX), float64(cM), float64(cR)
	if len(ms) == 0 && mt == nil {
		// No residual term. diffusers multiplies B(h) by a zero residual
		// here, which is NaN when B(h) is infinite (bh1 on the step to σ=0).
		fR = 0
	}
	prev := make([]float32, len(x))
	for k := range prev {
		m0k := float64(m0[k])
		res := 0.0
		for j, m := range ms {
			res += inv[j] * (float64(m[k]) - m0k)
		}
		if mt != nil {
			res += rhoT * (float64(mt[k]) - m0k)
		}
		prev[k] = float32(fX*float64(x[k]) - fM*m0k - fR*res)
	}
	return prev
}

// solve solves A·x = b by Gaussian elimination with partial pivoting.
func solve(A [][]float64, b []float64) ([]float64, error) {
	n := len(b)
	M := make([][]float64, n)
	for i := range M {
		M[i] = append(append([]float64(nil), A[i]...), b[i])
	}
	for col := 0; col < n; col++ {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(M[r][col]) > math.Abs(M[p][col]) {
				p = r
			}
		}
		if M[p][col] == 0 {
			return nil, fmt.Errorf("UniPC: singular coefficient matrix")
		}
		M[col], M[p] = M[p], M[col]
		for r := col + 1; r < n; r++ {
			f := M[r][col] / M[col][col]
			for c := col; c <= n; c++ {
				M[r][c] -= f * M[col][c]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		v := M[r][n]
		for c := r + 1; c < n; c++ {
			v -= M[r][c] * x[c]
		}
		x[r] = v / M[r][r]
	}
	for i := range x {
		x[i] = float64(float32(x[i]))
	}
	return x, nil
}

func init() {
	register(&class{
		name: ClassDPMSolver, rescale: true, zeroSNRFloor: true,
		defaults: func(c *Config) { c.VarianceType = ""; c.SolverType = "midpoint" },
		build: func(s *Scheduler) (sampler, error) {
			cfg := &s.cfg
			switch cfg.AlgorithmType {
			case "dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver":
			case "deis":
				cfg.AlgorithmType = "dpmsolver++"
			default:
				return nil, fmt.Errorf("scheduler: DPMSolver algorithm_type %q is not supported (dpmsolver++, sde-dpmsolver++, dpmsolver, sde-dpmsolver)", cfg.AlgorithmType)
			}
			switch cfg.SolverType {
			case "midpoint", "heun":
			case "logrho", "bh1", "bh2":
				cfg.SolverType = "midpoint"
			default:
				return nil, fmt.Errorf("scheduler: DPMSolver solver_type %q is not supported (midpoint, heun)", cfg.SolverType)
			}
			if cfg.SolverOrder < 1 || cfg.SolverOrder > 3 {
				return nil, fmt.Errorf("scheduler: DPMSolver solver_order %d is not supported (1, 2, 3)", cfg.SolverOrder)
			}
			if cfg.SolverOrder == 3 && (cfg.AlgorithmType == "sde-dpmsolver++" || cfg.AlgorithmType == "sde-dpmsolver") {
				return nil, fmt.Errorf("scheduler: DPMSolver %s has no third-order update", cfg.AlgorithmType)
			}
			if cfg.FinalSigmasType == "zero" && (cfg.AlgorithmType == "dpmsolver" || cfg.AlgorithmType == "sde-dpmsolver") {
				return nil, fmt.Errorf("scheduler: final_sigmas_type zero is not supported with algorithm_type %s; use sigma_min", cfg.AlgorithmType)
			}
			if cfg.VarianceType == "learned" || cfg.VarianceType == "learned_range" {
				return nil, fmt.Errorf("scheduler: DPMSolver variance_type %q (learned variance channels) is not supported", cfg.VarianceType)
			}
			return &dpmSolver{vpBase: vpBase{s: s}}, nil
		},
	})
	register(&class{
		name: ClassUniPC, rescale: true, zeroSNRFloor: true,
		defaults: func(c *Config) { c.SolverType = "bh2" },
		build: func(s *Scheduler) (sampler, error) {
			cfg := &s.cfg
			switch cfg.SolverType {
			case "bh1", "bh2":
			case "midpoint", "heun", "logrho":
				cfg.SolverType = "bh2"
			default:
				return nil, fmt.Errorf("scheduler: UniPC solver_type %q is not supported (bh1, bh2)", cfg.SolverType)
			}
			if cfg.SolverOrder < 1 {
				return nil, fmt.Errorf("scheduler: UniPC solver_order %d must be at least 1", cfg.SolverOrder)
			}
			// These end on σ=0 with an infinite coefficient, which diffusers
			// 0.29.2 turns into NaN latents; refuse them instead.
			if cfg.FinalSigmasType == "zero" && !cfg.PredictX0 {
				return nil, fmt.Errorf("scheduler: UniPC with predict_x0 false needs final_sigmas_type sigma_min (zero gives NaN)")
			}
			if cfg.FinalSigmasType == "zero" && cfg.SolverType == "bh1" && !cfg.LowerOrderFinal {
				return nil, fmt.Errorf("scheduler: UniPC bh1 with lower_order_final false needs final_sigmas_type sigma_min (zero gives NaN)")
			}
			return &uniPC{vpBase: vpBase{s: s}}, nil
		},
	})
}
