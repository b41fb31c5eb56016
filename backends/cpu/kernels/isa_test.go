package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// forEachISA runs f once per instruction-set level this CPU supports
// (go, avx2, avx512 on an AVX-512 machine), so every kernel the CPU can
// run is checked against the references.
func forEachISA(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := CurrentISA()
	defer SetISA(saved)
	for _, i := range SupportedISAs() {
		if err := SetISA(i); err != nil {
			t.Fatal(err)
		}
		t.Run(i.String(), f)
	}
}

func TestSetISA(t *testing.T) {
	saved := CurrentISA()
	defer SetISA(saved)
	all := SupportedISAs()
	if len(all) == 0 || all[0] != ISAGo {
		t.Fatalf("SupportedISAs() = %v, want go first", all)
	}
	best := all[len(all)-1]
	if saved != best {
		t.Logf("running below the CPU's best level (%v < %v): %s is set", saved, best, ISAEnv)
	}
	if err := SetISA(best + 1); err == nil {
		t.Fatalf("SetISA(%v) succeeded past the best level %v", best+1, best)
	}
	for _, i := range all {
		if err := SetISA(i); err != nil || CurrentISA() != i {
			t.Fatalf("SetISA(%v): %v (current %v)", i, err, CurrentISA())
		}
	}
	t.Logf("supported: %v; micro-kernel at best: %s", all, MicroKernel())
}

// TestMicroKernel2 checks the paired (6×32) kernel of every level against
// two single-panel Go kernels, and that on AVX-512 it is bit-identical to
// the AVX2 kernel: both run one FMA per element and step, in order.
func TestMicroKernel2(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	saved := CurrentISA()
	defer SetISA(saved)
	for _, kc := range []int{1, 2, 3, 4, 5, 8, 64, 257} {
		a := randSlice(r, kc*mr)
		b0 := randSlice(r, kc*nr)
		b1 := randSlice(r, kc*nr)
		for _, acc := range []bool{false, true} {
			const ldc = 2*nr + 3
			c0 := randSlice(r, mr*ldc)
			want := append([]float32(nil), c0...)
			microKernelGo(kc, a, b0, want, ldc, acc)
			microKernelGo(kc, a, b1, want[nr:], ldc, acc)
			var avx2 []float32
			for _, level := range SupportedISAs() {
				SetISA(level)
				c := append([]float32(nil), c0...)
				microKernel2(kc, a, b0, b1, c, ldc, acc)
				for i := range c {
					if i%ldc >= 2*nr {
						if c[i] != c0[i] {
							t.Fatalf("%v kc=%d: wrote outside the tile at %d", level, kc, i)
						}
						continue
					}
					if d := math.Abs(float64(c[i] - want[i])); d > 1e-4*math.Sqrt(float64(kc)) {
						t.Fatalf("%v kc=%d acc=%v: differs from Go at %d: %g vs %g", level, kc, acc, i, c[i], want[i])
					}
				}
				switch level {
				case ISAAVX2:
					avx2 = c
				case ISAAVX512:
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(avx2[i]) {
							t.Fatalf("kc=%d acc=%v: avx512 %g != avx2 %g at %d", kc, acc, c[i], avx2[i], i)
						}
					}
				}
			}
		}
	}
}

// TestSgemmSameAcrossSIMD: the AVX2 and AVX-512 paths give bit-identical
// products (same fused multiply-adds in the same order).
func TestSgemmSameAcrossSIMD(t *testing.T) {
	all := SupportedISAs()
	if all[len(all)-1] < ISAAVX512 {
		t.Skip("no AVX-512 on this CPU")
	}
	saved := CurrentISA()
	defer SetISA(saved)
	r := rand.New(rand.NewPCG(19, 20))
	for _, g := range []gemmCase{
		{m: 301, n: 257, k: 519, alpha: 1, beta: 1},
		{tA: true, m: 13, n: 700, k: 300, alpha: 1, beta: 0},
		{tB: true, m: 500, n: 95, k: 70, alpha: 0.25, beta: 0},
		{tA: true, tB: true, m: 97, n: ncBlock + 40, k: 33, alpha: 1, beta: 1},
	} {
		a, lda, b, ldb, c0, ldc := makeOperands(r, g)
		var ref []float32
		for _, level := range []ISA{ISAAVX2, ISAAVX512} {
			SetISA(level)
			c := append([]float32(nil), c0...)
			SgemmThreads(2, g.tA, g.tB, g.m, g.n, g.k, g.alpha, a, lda, b, ldb, g.beta, c, ldc)
			if ref == nil {
				ref = c
				continue
			}
			for i := range c {
				if math.Float32bits(c[i]) != math.Float32bits(ref[i]) {
					t.Fatalf("%v: avx512 %g != avx2 %g at %d", g, c[i], ref[i], i)
				}
			}
		}
	}
}
