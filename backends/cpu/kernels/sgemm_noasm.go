//go:build !amd64 || purego

package kernels

const microKernelName = "go-6x16"

func microKernel(kc int, a, b, c []float32, ldc int, accumulate bool) {
	microKernelGo(kc, a, b, c, ldc, accumulate)
}
