package scheduler

import "fmt"

// dpmSingle is diffusers' DPMSolverSinglestepScheduler (Lu et al. 2022,
// arXiv:2206.00927 and 2211.01095): singlestep DPM-Solver(++) of orders up
// to 3, where each group of k steps restarts from the sample saved at its
// first step, the order of every step following get_order_list.
type dpmSingle struct {
	dpmSolver
	orders []int
	sample []float32
}

func (d *dpmSingle) plan(n int) ([]float64, []float32, error) {
	ts, sig, err := d.dpmSolver.plan(n)
	if err != nil {
		return nil, nil, err
	}
	d.orders, d.sample = singlestepOrders(n, d.s.cfg.SolverOrder, d.s.cfg.LowerOrderFinal), nil
	return ts, sig, nil
}

// singlestepOrders is diffusers' get_order_list.
func singlestepOrders(steps, order int, lowerFinal bool) []int {
	rep := func(pattern []int, times int) []int {
		var out []int
		for range times {
			out = append(out, pattern...)
		}
		return out
	}
	switch {
	case order == 1:
		return rep([]int{1}, steps)
	case lowerFinal && order == 3:
		switch steps % 3 {
		case 0:
			return append(rep([]int{1, 2, 3}, steps/3-1), 1, 2, 1)
		case 1:
			return append(rep([]int{1, 2, 3}, steps/3), 1)
		}
		return append(rep([]int{1, 2, 3}, steps/3), 1, 2)
	case lowerFinal && order == 2:
		if steps%2 == 0 {
			return append(rep([]int{1, 2}, steps/2-1), 1, 1)
		}
		return append(rep([]int{1, 2}, steps/2), 1)
	case order == 3:
		return rep([]int{1, 2, 3}, steps/3)
	}
	return rep([]int{1, 2}, steps/2)
}

func (d *dpmSingle) step(i int, out, x []float32, _ Noise) ([]float32, error) {
	if i >= len(d.orders) {
		return nil, fmt.Errorf("DPMSolverSinglestep has no order for step %d", i)
	}
	d.push(d.convert(out, x, d.s.sigmas[i]), d.s.cfg.SolverOrder)
	order := min(d.orders[i], len(d.hist))
	if order == 1 {
		d.sample = append([]float32(nil), x...)
	}
	sig := d.s.sigmas
	at, st := d.alphaSigma(sig[i+1])
	heun := d.s.cfg.SolverType == "heun"
	switch order {
	case 1:
		return d.firstOrder(i, d.sample, nil), nil
	case 2:
		_, s1 := d.alphaSigma(sig[i-1])
		lt, l0, l1 := log32(at)-log32(st), d.lambda(sig[i]), d.lambda(sig[i-1])
		h, h0 := lt-l1, l0-l1
		r0 := h0 / h
		m0, m1 := d.back(0), d.back(1)
		e := exp32(-h) - 1
		// x_t = (σ_t/σ_s1)·x − α_t(e^−h − 1)·D0 + c·D1, D0 = m1, D1 = (m0 − m1)/r0
		c := -0.5 * (at * e)
		if heun {
			c = at * (e/h + 1)
		}
		inv := float64(1 / r0)
		return combine(d.sample, float64(st/s1), [][]float32{m0, m1},
			[]float64{float64(c) * inv, -float64(at*e) - float64(c)*inv}, nil, 0), nil
	}
	_, s2 := d.alphaSigma(sig[i-2])
	lt, l0, l1, l2 := log32(at)-log32(st), d.lambda(sig[i]), d.lambda(sig[i-1]), d.lambda(sig[i-2])
	h, h0, h1 := lt-l2, l0-l2, l1-l2
	r0, r1 := h0/h, h1/h
	m0, m1, m2 := d.back(0), d.back(1), d.back(2)
	e := exp32(-h) - 1
	c1 := at * (e/h + 1)
	// In m0, m1, m2: D0 = m2; D1_0 = (m1 − m2)/r1; D1_1 = (m0 − m2)/r0;
	// D1 = (r0·D1_0 − r1·D1_1)/(r0 − r1); D2 = 2(D1_1 − D1_0)/(r0 − r1).
	i0, i1 := float64(1/r0), float64(1/r1)
	d10 := [3]float64{0, i1, -i1}
	d11 := [3]float64{i0, 0, -i0}
	cs := [3]float64{0, 0, -float64(at * e)}
	if !heun {
		for k := range cs {
			cs[k] += float64(c1) * d11[k]
		}
	} else {
		c2 := -(at * ((exp32(-h)-1+h)/(h*h) - 0.5))
		dr := float64(r0 - r1)
		for k := range cs {
			dd1 := (float64(r0)*d10[k] - float64(r1)*d11[k]) / dr
			dd2 := 2 * (d11[k] - d10[k]) / dr
			cs[k] += float64(c1)*dd1 + float64(c2)*dd2
		}
	}
	return combine(d.sample, float64(st/s2), [][]float32{m0, m1, m2}, cs[:], nil, 0), nil
}

func init() {
	register(&class{name: ClassDPMSingle, rescale: false,
		defaults: func(c *Config) { c.VarianceType = ""; c.SolverType = "midpoint" },
		build: func(s *Scheduler) (sampler, error) {
			cfg := &s.cfg
			if cfg.AlgorithmType == "deis" { // as diffusers maps it
				cfg.AlgorithmType = "dpmsolver++"
			}
			switch cfg.SolverType {
			case "logrho", "bh1", "bh2":
				cfg.SolverType = "midpoint"
			}
			if cfg.AlgorithmType != "dpmsolver++" {
				return nil, fmt.Errorf("scheduler: %s algorithm_type %q is not supported (dpmsolver++)", ClassDPMSingle, cfg.AlgorithmType)
			}
			if cfg.SolverType != "midpoint" && cfg.SolverType != "heun" {
				return nil, fmt.Errorf("scheduler: %s solver_type %q is not supported (midpoint, heun)", ClassDPMSingle, cfg.SolverType)
			}
			if cfg.SolverOrder < 1 || cfg.SolverOrder > 3 {
				return nil, fmt.Errorf("scheduler: %s solver_order %d is not supported (1, 2, 3)", ClassDPMSingle, cfg.SolverOrder)
			}
			if cfg.FinalSigmasType == "zero" {
				cfg.LowerOrderFinal = true // as diffusers forces it
			}
			return &dpmSingle{dpmSolver: dpmSolver{vpBase: vpBase{s: s}}}, nil
		}})
}
