//go:build amd64 && !purego

package kernels

//go:noescape
func expShiftSumAVX2(dst, src *float32, n int, scale, shift float32) float32

//go:noescape
func swigluAVX2(out, gate, up *float32, n int)

//go:noescape
func swigluBackwardAVX2(dg, du, da, gate, up *float32, n int)

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func expShiftSumAVX512(dst, src *float32, n int, scale, shift float32) float32

//go:noescape
func swigluAVX512(out, gate, up *float32, n int)

//go:noescape
func swigluBackwardAVX512(dg, du, da, gate, up *float32, n int)

//go:noescape
func maxAVX512(x *float32, n int) float32

//go:noescape
func adamwAVX512(data, grad, m, v *float32, n int, c *AdamWConsts)

func expSum(dst, src []float32, scale, shift float32) float32 {
	n := len(src) &^ 7
	if isa < ISAAVX2 || n == 0 {
		return expSumGo(dst, src, scale, shift)
	}
	_ = dst[len(src)-1]
	var s float32
	if n16 := len(src) &^ 15; isa >= ISAAVX512 && n16 > 0 {
		n = n16
		s = expShiftSumAVX512(&dst[0], &src[0], n, scale, shift)
	} else {
		s = expShiftSumAVX2(&dst[0], &src[0], n, scale, shift)
	}
	if n < len(src) {
		s += expSumGo(dst[n:], src[n:], scale, shift)
	}
	return s
}

func maxf(x []float32) float32 {
	n := len(x) &^ 7
	if isa < ISAAVX2 || n == 0 {
		return maxGo(x)
	}
	var m float32
	if n16 := len(x) &^ 15; isa >= ISAAVX512 && n16 > 0 {
		n = n16
		m = maxAVX512(&x[0], n)
	} else {
		m = maxAVX2(&x[0], n)
	}
	for _, v := range x[n:] {
		if v > m {
			m = v
		}
	}
	return m
}

func swiglu(out, g, u []float32) {
	n := len(g) &^ 7
	if isa < ISAAVX2 || n == 0 {
		swigluGo(out, g, u)
		return
	}
	_, _ = out[len(g)-1], u[len(g)-1]
	if n16 := len(g) &^ 15; isa >= ISAAVX512 && n16 > 0 {
		n = n16
		swigluAVX512(&out[0], &g[0], &u[0], n)
	} else {
		swigluAVX2(&out[0], &g[0], &u[0], n)
	}
	swigluGo(out[n:], g[n:], u[n:])
}

func swigluBackward(dg, du, da, g, u []float32) {
	n := len(g) &^ 7
	if isa < ISAAVX2 || n == 0 {
		swigluBackwardGo(dg, du, da, g, u)
		return
	}
	if n16 := len(g) &^ 15; isa >= ISAAVX512 && n16 > 0 {
		n = n16
		swigluBackwardAVX512(&dg[0], &du[0], &da[0], &g[0], &u[0], n)
	} else {
		swigluBackwardAVX2(&dg[0], &du[0], &da[0], &g[0], &u[0], n)
	}
	swigluBackwardGo(dg[n:], du[n:], da[n:], g[n:], u[n:])
}

//go:noescape
func adamwAVX2(data, grad, m, v *float32, n int, c *AdamWConsts)

func adamw(data, grad, m, v []float32, c *AdamWConsts) {
	n := len(data) &^ 7
	if isa < ISAAVX2 || n == 0 {
		adamwGo(data, grad, m, v, c)
		return
	}
	if n16 := len(data) &^ 15; isa >= ISAAVX512 && n16 > 0 {
		n = n16
		adamwAVX512(&data[0], &grad[0], &m[0], &v[0], n, c)
	} else {
		adamwAVX2(&data[0], &grad[0], &m[0], &v[0], n, c)
	}
	adamwGo(data[n:], grad[n:], m[n:], v[n:], c)
}
