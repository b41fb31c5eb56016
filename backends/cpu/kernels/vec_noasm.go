//go:build !amd64 || purego

package kernels

func expSum(dst, src []float32, scale, shift float32) float32 {
	return expSumGo(dst, src, scale, shift)
}
func maxf(x []float32) float32                         { return maxGo(x) }
func swiglu(out, g, u []float32)                       { swigluGo(out, g, u) }
func swigluBackward(dg, du, da, g, u []float32)        { swigluBackwardGo(dg, du, da, g, u) }
func adamw(data, grad, m, v []float32, c *AdamWConsts) { adamwGo(data, grad, m, v, c) }
