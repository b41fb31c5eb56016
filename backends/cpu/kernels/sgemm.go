package kernels

import (
	"fmt"
	"sync"
)

// Micro-kernel and cache-block sizes. mr×nr is the register tile; kcBlock×nr
// floats of packed B (16 KiB) stay in L1 while a micro-panel of A streams
// past; mcBlock×kcBlock floats of packed A (144 KiB) stay in L2; kcBlock×
// ncBlock floats of packed B (4 MiB) live in L3.
const (
	mr      = 6
	nr      = 16
	kcBlock = 256
	mcBlock = 144 // multiple of mr
	ncBlock = 4080
)

// serialFlops is the size (m·n·k) under which Sgemm does not fork.
const serialFlops = 48 * 48 * 48

// Impl names a matrix-multiply implementation.
type Impl int

const (
	// ImplNative is this package's Go/assembly sgemm (the default).
	ImplNative Impl = iota
	// ImplOpenBLAS routes Sgemm to OpenBLAS; only in -tags openblas builds.
	ImplOpenBLAS
)

func (i Impl) String() string {
	switch i {
	case ImplNative:
		return "native"
	case ImplOpenBLAS:
		return "openblas"
	}
	return fmt.Sprintf("Impl(%d)", int(i))
}

// SgemmFunc is the signature of an external sgemm: Sgemm's arguments after
// a thread count. The arguments have been checked when it is called.
type SgemmFunc func(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

var (
	impl        = ImplNative
	openBLASFun SgemmFunc
)

// RegisterOpenBLAS makes f available as ImplOpenBLAS. Package
// backends/cpu/kernels/openblas calls it from init in -tags openblas builds
// (cgo and assembly cannot share a package, hence the indirection).
func RegisterOpenBLAS(f SgemmFunc) { openBLASFun = f }

// SetImpl chooses the implementation behind Sgemm. ImplOpenBLAS needs a
// -tags openblas build that imports backends/cpu/kernels/openblas; otherwise an
// error says so. It is not safe to call while multiplies are running.
func SetImpl(i Impl) error {
	switch i {
	case ImplNative:
	case ImplOpenBLAS:
		if openBLASFun == nil {
			return fmt.Errorf("sgemm implementation %v: not linked (build with -tags openblas and import backends/cpu/kernels/openblas)", i)
		}
	default:
		return fmt.Errorf("sgemm implementation %v: unknown", i)
	}
	impl = i
	return nil
}

// CurrentImpl reports the implementation behind Sgemm.
func CurrentImpl() Impl { return impl }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C with row-major matrices:
// op(A) is m×k, op(B) is k×n and C is m×n. transA says A is stored k×m (so
// op(A) = Aᵀ), transB says B is stored n×k. lda, ldb and ldc are the row
// strides of A, B and C as stored. With beta == 0 the old contents of C are
// ignored (NaNs included). It uses up to Threads() goroutines; results are
// bit-identical for every thread count.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	CheckGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if impl == ImplOpenBLAS {
		openBLASFun(Threads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemm(Threads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SgemmSerial is Sgemm on the calling goroutine alone.
func SgemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	CheckGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if impl == ImplOpenBLAS {
		openBLASFun(1, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemm(1, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SgemmThreads is Sgemm with an explicit goroutine count.
func SgemmThreads(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	CheckGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if impl == ImplOpenBLAS {
		openBLASFun(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemm(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// CheckGemm panics unless the arguments describe valid Sgemm operands.
func CheckGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels.Sgemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMat("A", ar, ac, a, lda)
	checkMat("B", br, bc, b, ldb)
	checkMat("C", m, n, c, ldc)
}

func checkMat(name string, rows, cols int, x []float32, ld int) {
	if ld < max(cols, 1) {
		panic(fmt.Sprintf("kernels.Sgemm: %s is %d×%d but its row stride is %d", name, rows, cols, ld))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("kernels.Sgemm: %s is %d×%d with stride %d and needs %d elements, has %d", name, rows, cols, ld, need, len(x)))
	}
}

// scaleC sets C = beta·C (beta == 0 writes zeros).
func scaleC(threads, m, n int, beta float32, c []float32, ldc int) {
	row := func(i int) {
		r := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(r)
			return
		}
		for j := range r {
			r[j] *= beta
		}
	}
	if threads <= 1 || m*n < 1<<16 {
		for i := 0; i < m; i++ {
			row(i)
		}
		return
	}
	ParallelForThreads(threads, m, func(_, i int) { row(i) })
}

// Packing buffers are recycled through pools and sized to the call, so
// that small multiplies (attention blocks, decoding) stay small.
var packBPool, packAPool sync.Pool

func getBuf(pool *sync.Pool, n int) *[]float32 {
	p, _ := pool.Get().(*[]float32)
	if p == nil || cap(*p) < n {
		s := make([]float32, n)
		p = &s
	}
	*p = (*p)[:n]
	return p
}

func sgemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		if beta != 1 {
			scaleC(threads, m, n, beta, c, ldc)
		}
		return
	}
	if beta != 0 && beta != 1 {
		scaleC(threads, m, n, beta, c, ldc)
		beta = 1
	}
	if m*n*k <= serialFlops {
		threads = 1
	}
	if threads > 1 {
		sgemmParallel(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemmParallel splits C into one part per thread, by rows when op(B) is
// the smaller operand (each thread then packs all of it) and by columns
// otherwise, and runs the serial algorithm on each part: one fork and join
// per call, however long the shared dimension. Waking an idle core costs
// tens of microseconds on a virtual machine, so synchronising once per
// cache block of k (as BLIS does) loses a third of the second core on
// long-k shapes. Parts are multiples of the register tile, and the
// arithmetic of every element is the same whatever the split.
func sgemmParallel(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	byRows := n < m
	if byRows && m < 2*mr && n >= 2*nr {
		byRows = false
	} else if !byRows && n < 2*nr && m >= 2*mr {
		byRows = true
	}
	size, unit := m, mr
	if !byRows {
		size, unit = n, nr
	}
	parts := min(threads, (size+unit-1)/unit)
	if parts <= 1 {
		sgemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	chunk := ((size+parts-1)/parts + unit - 1) / unit * unit
	parts = (size + chunk - 1) / chunk
	ParallelForThreads(parts, parts, func(_, p int) {
		lo := p * chunk
		hi := min(lo+chunk, size)
		if byRows {
			var sa []float32
			if transA {
				sa = a[lo:]
			} else {
				sa = a[lo*lda:]
			}
			sgemmSerial(transA, transB, hi-lo, n, k, alpha, sa, lda, b, ldb, beta, c[lo*ldc:], ldc)
			return
		}
		var sb []float32
		if transB {
			sb = b[lo*ldb:]
		} else {
			sb = b[lo:]
		}
		sgemmSerial(transA, transB, m, hi-lo, k, alpha, a, lda, sb, ldb, beta, c[lo:], ldc)
	})
}

// sgemmSerial is the GotoBLAS/BLIS loop nest on one goroutine. beta is 0
// or 1 here; k and alpha are non-zero.
func sgemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kcMax := min(k, kcBlock)
	bufB := getBuf(&packBPool, kcMax*((min(n, ncBlock)+nr-1)/nr*nr))
	defer packBPool.Put(bufB)
	bufA := getBuf(&packAPool, kcMax*((min(m, mcBlock)+mr-1)/mr*mr)+8)
	defer packAPool.Put(bufA)
	bp, ap := *bufB, *bufA
	for jc := 0; jc < n; jc += ncBlock {
		nc := min(ncBlock, n-jc)
		for pc := 0; pc < k; pc += kcBlock {
			kc := min(kcBlock, k-pc)
			accumulate := pc > 0 || beta != 0
			packB(bp, transB, b, ldb, pc, jc, kc, 0, nc)
			for i0 := 0; i0 < m; i0 += mcBlock {
				mc := min(mcBlock, m-i0)
				packA(ap, transA, a, lda, i0, pc, mc, kc, alpha)
				macroKernel(ap, bp, mc, kc, 0, nc, c[i0*ldc+jc:], ldc, accumulate)
			}
		}
	}
}

// macroKernel multiplies a packed mc×kc block of A by the packed B columns
// [j0, j1) and adds (or writes) the result into c, whose (0,0) is the block's
// first row and the panel's first column. With AVX-512, pairs of full B
// micro-panels go through the 6×32 kernel.
func macroKernel(ap, bp []float32, mc, kc, j0, j1 int, c []float32, ldc int, accumulate bool) {
	var tmp [mr * nr]float32
	pairs := isa >= ISAAVX512
	full := mc / mr * mr
	for jr := j0; jr < j1; jr += nr {
		cols := min(nr, j1-jr)
		bPanel := bp[jr*kc : jr*kc+nr*kc]
		if pairs && j1-jr >= 2*nr && full > 0 {
			bNext := bp[(jr+nr)*kc : (jr+nr)*kc+nr*kc]
			for ir := 0; ir < full; ir += mr {
				off := ir*ldc + jr
				_ = c[off+(mr-1)*ldc+2*nr-1]
				microKernel2(kc, ap[ir*kc:ir*kc+mr*kc], bPanel, bNext, c[off:], ldc, accumulate)
			}
			if full < mc {
				macroRows(ap, bPanel, full, mc, kc, jr, nr, c, ldc, accumulate, &tmp)
				macroRows(ap, bNext, full, mc, kc, jr+nr, nr, c, ldc, accumulate, &tmp)
			}
			jr += nr
			continue
		}
		macroRows(ap, bPanel, 0, mc, kc, jr, cols, c, ldc, accumulate, &tmp)
	}
}

// macroRows runs the micro-kernel on the row micro-panels [ir0, mc) of a
// packed A block and one micro-panel of B (columns jr, jr+cols).
func macroRows(ap, bPanel []float32, ir0, mc, kc, jr, cols int, c []float32, ldc int, accumulate bool, tmp *[mr * nr]float32) {
	for ir := ir0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		aPanel := ap[ir*kc : ir*kc+mr*kc]
		off := ir*ldc + jr
		if rows == mr && cols == nr {
			_ = c[off+(mr-1)*ldc+nr-1]
			microKernel(kc, aPanel, bPanel, c[off:], ldc, accumulate)
			continue
		}
		microKernel(kc, aPanel, bPanel, tmp[:], nr, false)
		for i := 0; i < rows; i++ {
			dst := c[off+i*ldc : off+i*ldc+cols]
			src := tmp[i*nr : i*nr+cols]
			if accumulate {
				for j, v := range src {
					dst[j] += v
				}
			} else {
				copy(dst, src)
			}
		}
	}
}

// packA packs rows [i0, i0+mc) and columns [p0, p0+kc) of op(A), times
// alpha, into mr-row micro-panels: panel q holds element (q·mr+r, p) at
// q·mr·kc + p·mr + r. Rows past mc are zero. dst needs two floats of room
// past the last panel.
func packA(dst []float32, transA bool, a []float32, lda, i0, p0, mc, kc int, alpha float32) {
	start := 0
	if transA && alpha == 1 {
		// Full panels of Aᵀ in one row-ordered sweep of A.
		full := mc / mr
		packATransPanels(dst, a[p0*lda+i0:], lda, kc, full)
		start = full * mr
	}
	for ip := start; ip < mc; ip += mr {
		rows := min(mr, mc-ip)
		d := dst[ip*kc : ip*kc+mr*kc+2]
		if !transA {
			src := a[(i0+ip)*lda+p0:]
			if rows == mr {
				if alpha == 1 {
					packA6Rows(d, src, lda, kc)
				} else {
					packA6Go(d, src, lda, 0, kc, alpha)
				}
				continue
			}
			for r := 0; r < rows; r++ {
				sr := src[r*lda : r*lda+kc]
				for p, v := range sr {
					d[p*mr+r] = v * alpha
				}
			}
			for r := rows; r < mr; r++ {
				for p := 0; p < kc; p++ {
					d[p*mr+r] = 0
				}
			}
			continue
		}
		if rows == mr && alpha == 1 {
			packA6Trans(d, a[p0*lda+i0+ip:], lda, kc)
			continue
		}
		for p := 0; p < kc; p++ {
			src := a[(p0+p)*lda+i0+ip : (p0+p)*lda+i0+ip+rows]
			dd := d[p*mr : p*mr+mr]
			for r, v := range src {
				dd[r] = v * alpha
			}
			for r := rows; r < mr; r++ {
				dd[r] = 0
			}
		}
	}
}

// packA6TransGo packs six consecutive columns of a (stride lda) over kc
// rows.
func packA6TransGo(d, a []float32, lda, kc int) {
	d = d[:kc*mr]
	for p := 0; p < kc; p++ {
		s := a[p*lda : p*lda+mr : p*lda+mr]
		o := d[p*mr : p*mr+mr : p*mr+mr]
		o[0], o[1], o[2], o[3], o[4], o[5] = s[0], s[1], s[2], s[3], s[4], s[5]
	}
}

// packA6Go packs columns [from, kc) of six full rows of a (stride lda),
// times alpha.
func packA6Go(d, a []float32, lda, from, kc int, alpha float32) {
	if from >= kc {
		return
	}
	r0 := a[0*lda : 0*lda+kc]
	r1 := a[1*lda : 1*lda+kc]
	r2 := a[2*lda : 2*lda+kc]
	r3 := a[3*lda : 3*lda+kc]
	r4 := a[4*lda : 4*lda+kc]
	r5 := a[5*lda : 5*lda+kc]
	d = d[:kc*mr]
	for p := from; p < kc; p++ {
		o := d[p*mr : p*mr+mr : p*mr+mr]
		o[0], o[1], o[2], o[3], o[4], o[5] = r0[p]*alpha, r1[p]*alpha, r2[p]*alpha, r3[p]*alpha, r4[p]*alpha, r5[p]*alpha
	}
}

// packB16TransGo packs steps [from, kc) of a full 16-column panel whose
// columns are rows of b (stride ldb).
func packB16TransGo(d, b []float32, ldb, from, kc int) {
	if from >= kc {
		return
	}
	for j := 0; j < nr; j++ {
		src := b[j*ldb : j*ldb+kc]
		for p := from; p < kc; p++ {
			d[p*nr+j] = src[p]
		}
	}
}

// packB packs columns [j0, j1) (relative to jc) and rows [p0, p0+kc) of
// op(B) into nr-column micro-panels: the panel starting at column q·nr holds
// element (p, q·nr+j) at q·nr·kc + p·nr + j. Columns past the panel's end
// are zero. j0 must be a multiple of nr.
func packB(dst []float32, transB bool, b []float32, ldb, p0, jc, kc, j0, j1 int) {
	for jp := j0; jp < j1; jp += nr {
		cols := min(nr, j1-jp)
		d := dst[jp*kc : jp*kc+nr*kc]
		col0 := jc + jp
		if !transB {
			if cols == nr {
				packB16(d, b[p0*ldb+col0:], ldb, kc)
				continue
			}
			for p := 0; p < kc; p++ {
				src := b[(p0+p)*ldb+col0 : (p0+p)*ldb+col0+cols]
				dd := d[p*nr : p*nr+nr]
				copy(dd, src)
				for j := cols; j < nr; j++ {
					dd[j] = 0
				}
			}
			continue
		}
		if cols == nr {
			packB16Trans(d, b[col0*ldb+p0:], ldb, kc)
			continue
		}
		for j := 0; j < cols; j++ {
			src := b[(col0+j)*ldb+p0 : (col0+j)*ldb+p0+kc]
			for p, v := range src {
				d[p*nr+j] = v
			}
		}
		for p := 0; p < kc; p++ {
			for j := cols; j < nr; j++ {
				d[p*nr+j] = 0
			}
		}
	}
}

// packB16Go copies 16 consecutive floats of each of kc rows of b (stride
// ldb) into d.
func packB16Go(d, b []float32, ldb, kc int) {
	for p := 0; p < kc; p++ {
		copy(d[p*nr:p*nr+nr], b[p*ldb:p*ldb+nr])
	}
}
