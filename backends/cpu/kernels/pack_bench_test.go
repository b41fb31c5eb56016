package kernels

import "testing"

// BenchmarkPack reports nanoseconds per packed element for the four packing
// routines on one cache block.
func BenchmarkPack(b *testing.B) {
	const kc, mc, nc = kcBlock, mcBlock, 1024
	src := make([]float32, 2048*2048)
	dst := make([]float32, kcBlock*(ncBlock+nr)+64)
	b.Run("A_notrans", func(b *testing.B) {
		for b.Loop() {
			packA(dst, false, src, 2048, 0, 0, mc, kc, 1)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*mc*kc), "ns/elem")
	})
	b.Run("A_trans", func(b *testing.B) {
		for b.Loop() {
			packA(dst, true, src, 2048, 0, 0, mc, kc, 1)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*mc*kc), "ns/elem")
	})
	b.Run("B_notrans", func(b *testing.B) {
		for b.Loop() {
			packB(dst, false, src, 2048, 0, 0, kc, 0, nc)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nc*kc), "ns/elem")
	})
	b.Run("B_trans", func(b *testing.B) {
		for b.Loop() {
			packB(dst, true, src, 2048, 0, 0, kc, 0, nc)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nc*kc), "ns/elem")
	})
}
