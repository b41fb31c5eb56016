//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasAVX

var microKernelName = func() string {
	if hasAVX2FMA {
		return "avx2-fma-6x16"
	}
	return "go-6x16"
}()

// sgemmKernelAVX2 is the 6×16 AVX2/FMA micro-kernel (sgemm_amd64.s).
//
//go:noescape
func sgemmKernelAVX2(k int, a, b, c *float32, ldc int, accumulate bool)

// microKernel computes the mr×nr tile c (+)= aPanel·bPanel over kc steps.
// The slices must cover the whole tile; kc must be at least 1.
func microKernel(kc int, a, b, c []float32, ldc int, accumulate bool) {
	if hasAVX2FMA {
		_ = a[kc*mr-1]
		_ = b[kc*nr-1]
		_ = c[(mr-1)*ldc+nr-1]
		sgemmKernelAVX2(kc, &a[0], &b[0], &c[0], ldc, accumulate)
		return
	}
	microKernelGo(kc, a, b, c, ldc, accumulate)
}
