//go:build openblas && cgo

package kernels_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/cpu/kernels/openblas"
)

// TestOpenBLASMatchesNative: in -tags openblas builds, OpenBLAS and the
// native sgemm agree on every transpose combination, and SetImpl routes
// Sgemm to OpenBLAS.
func TestOpenBLASMatchesNative(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const m, n, k = 37, 53, 71
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			a := make([]float32, m*k)
			b := make([]float32, k*n)
			for i := range a {
				a[i] = float32(r.NormFloat64())
			}
			for i := range b {
				b[i] = float32(r.NormFloat64())
			}
			lda, ldb := k, n
			if tA {
				lda = m
			}
			if tB {
				ldb = k
			}
			c1 := make([]float32, m*n)
			c2 := make([]float32, m*n)
			kernels.Sgemm(tA, tB, m, n, k, 1, a, lda, b, ldb, 0, c1, n)
			openblas.Sgemm(2, tA, tB, m, n, k, 1, a, lda, b, ldb, 0, c2, n)
			for i := range c1 {
				if math.Abs(float64(c1[i]-c2[i])) > 1e-4*(1+math.Abs(float64(c2[i]))) {
					t.Fatalf("tA=%v tB=%v: [%d] native %g, OpenBLAS %g", tA, tB, i, c1[i], c2[i])
				}
			}
		}
	}
	if err := kernels.SetImpl(kernels.ImplOpenBLAS); err != nil {
		t.Fatal(err)
	}
	defer kernels.SetImpl(kernels.ImplNative)
	if kernels.CurrentImpl() != kernels.ImplOpenBLAS {
		t.Fatal("SetImpl did not switch")
	}
	t.Logf("OpenBLAS core: %s", openblas.Core())
}
