//go:build !amd64 || purego

package kernels

func bestISA() ISA { return ISAGo }

func microKernel(kc int, a, b, c []float32, ldc int, accumulate bool) {
	microKernelGo(kc, a, b, c, ldc, accumulate)
}

// microKernel2 computes two adjacent mr×nr tiles (b0 and b1 are the packed
// micro-panels of columns [0,nr) and [nr,2nr) of the tile pair).
func microKernel2(kc int, a, b0, b1, c []float32, ldc int, accumulate bool) {
	microKernelGo(kc, a, b0, c, ldc, accumulate)
	microKernelGo(kc, a, b1, c[nr:], ldc, accumulate)
}
