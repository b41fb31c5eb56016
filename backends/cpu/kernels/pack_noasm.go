//go:build !amd64 || purego

package kernels

func packB16Trans(d, b []float32, ldb, kc int) { packB16TransGo(d, b, ldb, 0, kc) }

func packA6Rows(d, a []float32, lda, kc int) { packA6Go(d, a, lda, 0, kc, 1) }

func packB16(d, b []float32, ldb, kc int) { packB16Go(d, b, ldb, kc) }

func packA6Trans(d, a []float32, lda, kc int) { packA6TransGo(d, a, lda, kc) }

func packATransPanels(d, a []float32, lda, kc, panels int) {
	for q := 0; q < panels; q++ {
		packA6TransGo(d[q*kc*mr:], a[q*mr:], lda, kc)
	}
}
