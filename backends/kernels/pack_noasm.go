//go:build !amd64 || purego

package kernels

func packB16Trans(d, b []float32, ldb, kc int) { packB16TransGo(d, b, ldb, 0, kc) }

func packA6Rows(d, a []float32, lda, kc int) { packA6Go(d, a, lda, 0, kc, 1) }
