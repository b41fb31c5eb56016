//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

func bestISA() ISA {
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return ISAAVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasAVX:
		return ISAAVX2
	}
	return ISAGo
}

// sgemmKernelAVX2 is the 6×16 AVX2/FMA micro-kernel (sgemm_amd64.s).
//
//go:noescape
func sgemmKernelAVX2(k int, a, b, c *float32, ldc int, accumulate bool)

// sgemmKernelAVX512 is the 6×32 AVX-512 micro-kernel (sgemm_avx512_amd64.s):
// two adjacent 16-column micro-panels of B, b0 and b1, at once.
//
//go:noescape
func sgemmKernelAVX512(k int, a, b0, b1, c *float32, ldc int, accumulate bool)

// microKernel computes the mr×nr tile c (+)= aPanel·bPanel over kc steps.
// The slices must cover the whole tile; kc must be at least 1.
func microKernel(kc int, a, b, c []float32, ldc int, accumulate bool) {
	if isa >= ISAAVX2 {
		_ = a[kc*mr-1]
		_ = b[kc*nr-1]
		_ = c[(mr-1)*ldc+nr-1]
		sgemmKernelAVX2(kc, &a[0], &b[0], &c[0], ldc, accumulate)
		return
	}
	microKernelGo(kc, a, b, c, ldc, accumulate)
}

// microKernel2 computes two adjacent mr×nr tiles: c[:, 0:nr] from the
// micro-panel b0 and c[:, nr:2nr] from b1. Every element is the same
// sequence of fused multiply-adds as microKernel's, so results are
// bit-identical to two microKernel calls on AVX2.
func microKernel2(kc int, a, b0, b1, c []float32, ldc int, accumulate bool) {
	if isa >= ISAAVX512 {
		_ = a[kc*mr-1]
		_ = b0[kc*nr-1]
		_ = b1[kc*nr-1]
		_ = c[(mr-1)*ldc+2*nr-1]
		sgemmKernelAVX512(kc, &a[0], &b0[0], &b1[0], &c[0], ldc, accumulate)
		return
	}
	microKernel(kc, a, b0, c, ldc, accumulate)
	microKernel(kc, a, b1, c[nr:], ldc, accumulate)
}
