package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// refGemm is a float64 reference for Sgemm.
func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
			}
			out[i*n+j] = v
		}
	}
	return out
}

type gemmCase struct {
	tA, tB      bool
	m, n, k     int
	alpha, beta float32
	pad         int // extra stride
}

func (g gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,alpha=%g,beta=%g,pad=%d", g.tA, g.tB, g.m, g.n, g.k, g.alpha, g.beta, g.pad)
}

func makeOperands(r *rand.Rand, g gemmCase) (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	ar, ac := g.m, g.k
	if g.tA {
		ar, ac = g.k, g.m
	}
	br, bc := g.k, g.n
	if g.tB {
		br, bc = g.n, g.k
	}
	lda, ldb, ldc = max(ac, 1)+g.pad, max(bc, 1)+g.pad, max(g.n, 1)+g.pad
	a = randSlice(r, max(ar*lda, 1))
	b = randSlice(r, max(br*ldb, 1))
	c = randSlice(r, max(g.m*ldc, 1))
	return
}

func checkCase(t *testing.T, r *rand.Rand, g gemmCase, threads int) {
	t.Helper()
	a, lda, b, ldb, c, ldc := makeOperands(r, g)
	if g.beta == 0 {
		// beta == 0 must ignore C, NaNs included.
		for i := range c {
			c[i] = float32(math.NaN())
		}
	}
	want := refGemm(g.tA, g.tB, g.m, g.n, g.k, g.alpha, a, lda, b, ldb, g.beta, c, ldc)
	orig := append([]float32(nil), c...)
	SgemmThreads(threads, g.tA, g.tB, g.m, g.n, g.k, g.alpha, a, lda, b, ldb, g.beta, c, ldc)
	for i := 0; i < g.m; i++ {
		for j := 0; j < ldc && g.n > 0; j++ {
			got := c[i*ldc+j]
			if j >= g.n {
				if math.Float32bits(got) != math.Float32bits(orig[i*ldc+j]) {
					t.Fatalf("%v: wrote outside C at (%d,%d)", g, i, j)
				}
				continue
			}
			w := want[i*g.n+j]
			tol := 1e-5 * (math.Sqrt(float64(g.k)) + 1) * (1 + math.Abs(w))
			if d := math.Abs(float64(got) - w); !(d <= tol) {
				t.Fatalf("%v threads=%d: C[%d,%d] = %g, want %g (diff %g)", g, threads, i, j, got, w, d)
			}
		}
	}
}

func TestSgemmOddShapes(t *testing.T) { forEachISA(t, testSgemmOddShapes) }

func testSgemmOddShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dims := []int{1, 2, 5, 6, 7, 13, 16, 17, 31}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range dims {
				for _, n := range dims {
					for _, k := range []int{1, 3, 17} {
						checkCase(t, r, gemmCase{tA: tA, tB: tB, m: m, n: n, k: k, alpha: 1, beta: 0}, 1)
					}
				}
			}
		}
	}
}

func TestSgemmBlockEdges(t *testing.T) { forEachISA(t, testSgemmBlockEdges) }

func testSgemmBlockEdges(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []gemmCase{
		{m: 149, n: 53, k: 263, alpha: 1, beta: 0},              // past mcBlock and kcBlock
		{m: 7, n: ncBlock + 19, k: 5, alpha: 1, beta: 1},        // past ncBlock
		{m: 289, n: 97, k: 2*kcBlock + 1, alpha: 0.5, beta: -2}, // alpha, general beta
		{m: 1, n: 1, k: 1, alpha: 2, beta: 1, pad: 3},
		{m: 0, n: 5, k: 3, alpha: 1, beta: 0},
		{m: 5, n: 3, k: 0, alpha: 1, beta: 0.5},
		{m: 37, n: 41, k: 43, alpha: 0, beta: 1},
		{m: 101, n: 67, k: 89, alpha: 1, beta: 0, pad: 5},
		// Tall and wide with a short shared dimension: the parallel split
		// must offset A (or B) by columns when it is transposed.
		{m: 700, n: 20, k: 20, alpha: 1, beta: 1},
		{m: 20, n: 700, k: 20, alpha: 1, beta: 0},
	}
	for _, base := range cases {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				g := base
				g.tA, g.tB = tA, tB
				for _, th := range []int{1, 2, 3} {
					t.Run(fmt.Sprintf("%v/threads=%d", g, th), func(t *testing.T) { checkCase(t, r, g, th) })
				}
			}
		}
	}
}

// TestSgemmDeterministic: every thread count gives bit-identical results.
func TestSgemmDeterministic(t *testing.T) { forEachISA(t, testSgemmDeterministic) }

func testSgemmDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, g := range []gemmCase{
		{m: 301, n: 257, k: 519, alpha: 1, beta: 1},
		{tA: true, m: 13, n: 700, k: 300, alpha: 1, beta: 0},
		{tB: true, m: 500, n: 9, k: 70, alpha: 0.25, beta: 0},
	} {
		a, lda, b, ldb, c0, ldc := makeOperands(r, g)
		var first []float32
		for _, th := range []int{1, 2, 3, 4, 7} {
			c := append([]float32(nil), c0...)
			SgemmThreads(th, g.tA, g.tB, g.m, g.n, g.k, g.alpha, a, lda, b, ldb, g.beta, c, ldc)
			if first == nil {
				first = c
				continue
			}
			for i := range c {
				if math.Float32bits(c[i]) != math.Float32bits(first[i]) {
					t.Fatalf("%v: threads=%d differs from threads=1 at %d: %g vs %g", g, th, i, c[i], first[i])
				}
			}
		}
	}
}

func TestMicroKernelsAgree(t *testing.T) {
	// The portable micro-kernel must match the assembly one to rounding.
	r := rand.New(rand.NewPCG(7, 8))
	for _, kc := range []int{1, 3, 4, 5, 64, 257} {
		a := randSlice(r, kc*mr)
		b := randSlice(r, kc*nr)
		for _, acc := range []bool{false, true} {
			c1 := randSlice(r, mr*nr)
			c2 := append([]float32(nil), c1...)
			microKernel(kc, a, b, c1, nr, acc)
			microKernelGo(kc, a, b, c2, nr, acc)
			for i := range c1 {
				if d := math.Abs(float64(c1[i] - c2[i])); d > 1e-4*math.Sqrt(float64(kc)) {
					t.Fatalf("kc=%d acc=%v: kernels differ at %d: %g vs %g", kc, acc, i, c1[i], c2[i])
				}
			}
		}
	}
}

func TestSgemmPanicsOnShortSlice(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a short A")
		}
	}()
	Sgemm(false, false, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
}

func TestSetImplWithoutOpenBLAS(t *testing.T) {
	if openBLASFun != nil {
		t.Skip("OpenBLAS is linked")
	}
	if err := SetImpl(ImplOpenBLAS); err == nil {
		t.Fatal("SetImpl(ImplOpenBLAS) succeeded without OpenBLAS")
	}
}
