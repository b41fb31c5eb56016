//go:build amd64 && !purego

package kernels

//go:noescape
func packBTransAVX2(dst, src *float32, ldb, kc8 int)

//go:noescape
func packA6AVX2(dst, src *float32, lda, kc8 int)

// packB16Trans packs a full 16-column panel whose columns are the rows of
// b (stride ldb), over kc steps, into d.
func packB16Trans(d, b []float32, ldb, kc int) {
	kc8 := kc &^ 7
	if isa >= ISAAVX2 && kc8 > 0 {
		_ = b[15*ldb+kc-1]
		_ = d[kc*nr-1]
		packBTransAVX2(&d[0], &b[0], ldb, kc8)
	} else {
		kc8 = 0
	}
	packB16TransGo(d, b, ldb, kc8, kc)
}

// packA6Rows packs six full rows of a (stride lda) over kc steps into d,
// which must have two floats of room past d[kc*6-1].
func packA6Rows(d, a []float32, lda, kc int) {
	kc8 := kc &^ 7
	if isa >= ISAAVX2 && kc8 > 0 {
		_ = a[5*lda+kc-1]
		_ = d[kc8*mr+1]
		packA6AVX2(&d[0], &a[0], lda, kc8)
	} else {
		kc8 = 0
	}
	packA6Go(d, a, lda, kc8, kc, 1)
}

//go:noescape
func packB16AVX2(dst, src *float32, ldb, kc int)

//go:noescape
func packA6TransAVX2(dst, src *float32, lda, kc int)

// packB16 copies a full 16-column panel of rows of b (stride ldb) over kc
// steps into d.
func packB16(d, b []float32, ldb, kc int) {
	if isa >= ISAAVX2 && kc > 0 {
		_ = b[(kc-1)*ldb+nr-1]
		_ = d[kc*nr-1]
		packB16AVX2(&d[0], &b[0], ldb, kc)
		return
	}
	packB16Go(d, b, ldb, kc)
}

// packA6Trans packs six consecutive columns of a (stride lda) over kc
// rows: op(A) = Aᵀ with all six rows present.
func packA6Trans(d, a []float32, lda, kc int) {
	if isa >= ISAAVX2 && kc > 0 {
		_ = a[(kc-1)*lda+mr-1]
		_ = d[kc*mr-1]
		packA6TransAVX2(&d[0], &a[0], lda, kc)
		return
	}
	packA6TransGo(d, a, lda, kc)
}

//go:noescape
func packATransAVX2(dst, src *float32, lda, kc, panels int)

// packATransPanels packs `panels` full micro-panels of op(A) = Aᵀ: six
// columns of a each, over kc rows (stride lda).
func packATransPanels(d, a []float32, lda, kc, panels int) {
	if isa >= ISAAVX2 && kc > 0 && panels > 0 {
		_ = a[(kc-1)*lda+panels*mr-1]
		_ = d[panels*kc*mr-1]
		packATransAVX2(&d[0], &a[0], lda, kc, panels)
		return
	}
	for q := 0; q < panels; q++ {
		packA6TransGo(d[q*kc*mr:], a[q*mr:], lda, kc)
	}
}
