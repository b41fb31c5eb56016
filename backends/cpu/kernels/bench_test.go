package kernels_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/cpu/kernels/openblas"
)

// Shapes of the benchmark model (d_model 512, 8 heads of 64, 4 KV heads,
// intermediate 1376, vocab 32,000) with 2,048 tokens a micro-batch and the
// LM head in chunks of 512 tokens.
var benchShapes = []struct {
	name       string
	tA, tB     bool
	m, n, k    int
	serialOnly bool
}{
	{name: "square1024_NN", m: 1024, n: 1024, k: 1024},
	{name: "qproj_fwd_NT", tB: true, m: 2048, n: 512, k: 512},
	{name: "mlp_up_fwd_NT", tB: true, m: 2048, n: 1376, k: 512},
	{name: "mlp_down_fwd_NT", tB: true, m: 2048, n: 512, k: 1376},
	{name: "mlp_down_dx_NN", m: 2048, n: 1376, k: 512},
	{name: "mlp_up_dw_TN", tA: true, m: 1376, n: 512, k: 2048},
	{name: "lmhead_fwd_NT", tB: true, m: 512, n: 32000, k: 512},
	{name: "lmhead_dx_NN", m: 512, n: 512, k: 32000},
	{name: "lmhead_dw_TN", tA: true, m: 32000, n: 512, k: 512},
	{name: "attn_scores_NT", tB: true, m: 64, n: 512, k: 64, serialOnly: true},
	{name: "attn_pv_NN", m: 64, n: 64, k: 512, serialOnly: true},
}

// BenchmarkSgemm reports GFLOP/s for the model's shapes on 1 and 2 threads,
// and OpenBLAS's on the same shapes in -tags openblas builds:
//
//	go test -run '^$' -bench Sgemm ./backends/cpu/kernels/
//	env -u OPENBLAS_CORETYPE go test -tags openblas -run '^$' -bench Sgemm ./backends/cpu/kernels/
func BenchmarkSgemm(b *testing.B) {
	impls := []kernels.Impl{kernels.ImplNative}
	if openblas.Linked {
		impls = append(impls, kernels.ImplOpenBLAS)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		ar, ac := s.m, s.k
		if s.tA {
			ar, ac = s.k, s.m
		}
		br, bc := s.k, s.n
		if s.tB {
			br, bc = s.n, s.k
		}
		a := make([]float32, ar*ac)
		bb := make([]float32, br*bc)
		c := make([]float32, s.m*s.n)
		for i := range a {
			a[i] = float32(r.NormFloat64())
		}
		for i := range bb {
			bb[i] = float32(r.NormFloat64())
		}
		threadCounts := []int{1, 2}
		if s.serialOnly {
			threadCounts = []int{1}
		}
		for _, im := range impls {
			for _, th := range threadCounts {
				b.Run(fmt.Sprintf("%s/%dx%dx%d/%v/threads=%d", s.name, s.m, s.n, s.k, im, th), func(b *testing.B) {
					if err := kernels.SetImpl(im); err != nil {
						b.Fatal(err)
					}
					defer kernels.SetImpl(kernels.ImplNative)
					for b.Loop() {
						kernels.SgemmThreads(th, s.tA, s.tB, s.m, s.n, s.k, 1, a, ac, bb, bc, 0, c, s.n)
					}
					flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
