package gemm

// packA packs rows [i0, i0+mc) × columns [k0, k0+kc) of A's batch entry at
// offset base into dst: ⌈mc/mr⌉ micro-panels of kc×mr values, k-major (the
// mr values of one column of the panel are adjacent), rows past mc zero.
func packA(dst []float32, a *Operand, base, i0, mc, k0, kc int) {
	data := a.Data
	for p := 0; p*mr < mc; p++ {
		d := dst[p*mr*kc : (p+1)*mr*kc]
		rows := min(mr, mc-p*mr)
		i := i0 + p*mr
		switch {
		case rows == mr && a.Cols.unit():
			// Rows contiguous along k: interleave six rows.
			o0 := base + a.Rows.at(i) + k0
			o1 := base + a.Rows.at(i+1) + k0
			o2 := base + a.Rows.at(i+2) + k0
			o3 := base + a.Rows.at(i+3) + k0
			o4 := base + a.Rows.at(i+4) + k0
			o5 := base + a.Rows.at(i+5) + k0
			r0, r1, r2 := data[o0:o0+kc], data[o1:o1+kc], data[o2:o2+kc]
			r3, r4, r5 := data[o3:o3+kc], data[o4:o4+kc], data[o5:o5+kc]
			for kk := range kc {
				q := d[kk*mr : kk*mr+mr : kk*mr+mr]
				q[0], q[1], q[2], q[3], q[4], q[5] = r0[kk], r1[kk], r2[kk], r3[kk], r4[kk], r5[kk]
			}
		case rows == mr && a.Rows.unit():
			// Columns contiguous along m (A transposed): six adjacent values per k.
			for kk := range kc {
				o := base + a.Cols.at(k0+kk) + i
				s := data[o : o+mr : o+mr]
				q := d[kk*mr : kk*mr+mr : kk*mr+mr]
				q[0], q[1], q[2], q[3], q[4], q[5] = s[0], s[1], s[2], s[3], s[4], s[5]
			}
		default:
			var ro [mr]int
			for r := range rows {
				ro[r] = base + a.Rows.at(i+r)
			}
			for kk := range kc {
				co := a.Cols.at(k0 + kk)
				q := d[kk*mr : kk*mr+mr : kk*mr+mr]
				for r := range rows {
					q[r] = data[ro[r]+co]
				}
				for r := rows; r < mr; r++ {
					q[r] = 0
				}
			}
		}
	}
}

// packB packs rows [k0, k0+kc) × column panels [jp0, jp1) (nr columns each,
// n columns in all) of B's batch entry at offset base into dst: one kc×nr
// micro-panel per column panel, k-major, columns past n zero.
func packB(dst []float32, b *Operand, base, k0, kc, n, jp0, jp1 int, bt packBTFunc) {
	data := b.Data
	first := jp0
	if b.Cols.unit() {
		// Row-major B: each row of the block is read once, left to right,
		// sixteen values to each full panel.
		full := min(jp1, n/nr) // panels before full are nr wide
		if pr := activePackRows(); full > jp0 && pr != nil && b.Rows.Offsets == nil && b.Rows.Stride >= 0 {
			o := base + k0*b.Rows.Stride + jp0*nr
			pr(kc, full-jp0, data[o:o+(kc-1)*b.Rows.Stride+(full-jp0)*nr], b.Rows.Stride, dst)
			jp0 = full
		} else if full > jp0 {
			for kk := range kc {
				o := base + b.Rows.at(k0+kk) + jp0*nr
				row := data[o : o+(full-jp0)*nr]
				for p := range full - jp0 {
					d := (jp0-first+p)*kc*nr + kk*nr
					*(*[nr]float32)(dst[d : d+nr]) = *(*[nr]float32)(row[p*nr : p*nr+nr])
				}
			}
			jp0 = full
		}
	}
	for jp := jp0; jp < jp1; jp++ {
		d := dst[(jp-first)*kc*nr : (jp-first+1)*kc*nr]
		j := jp * nr
		cols := min(nr, n-j)
		switch {
		case cols == nr && b.Cols.unit():
			// Row-major B: sixteen adjacent values per k.
			for kk := range kc {
				o := base + b.Rows.at(k0+kk) + j
				*(*[nr]float32)(d[kk*nr : kk*nr+nr]) = *(*[nr]float32)(data[o : o+nr])
			}
		case cols == nr && b.Rows.unit() && b.Cols.Offsets == nil && bt != nil:
			// B transposed, columns evenly spaced: in-register transposes.
			ldb := b.Cols.Stride
			o := base + j*ldb + k0
			bt(kc, data[o:o+(nr-1)*ldb+kc], ldb, d)
		case cols == nr && b.Rows.unit():
			// B transposed (columns contiguous along k): scatter each column.
			for jj := range nr {
				o := base + b.Cols.at(j+jj) + k0
				for kk, v := range data[o : o+kc] {
					d[kk*nr+jj] = v
				}
			}
		default:
			var co [nr]int
			for jj := range cols {
				co[jj] = base + b.Cols.at(j+jj)
			}
			for kk := range kc {
				ro := b.Rows.at(k0 + kk)
				q := d[kk*nr : kk*nr+nr : kk*nr+nr]
				for jj := range cols {
					q[jj] = data[ro+co[jj]]
				}
				for jj := cols; jj < nr; jj++ {
					q[jj] = 0
				}
			}
		}
	}
}
