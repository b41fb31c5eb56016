package kernels

import (
	"fmt"
	"math"
)

// expBlock is the length over which ExpSum accumulates in float32 before
// adding into its float64 total.
const expBlock = 2048

// ExpSum sets dst[i] = exp(scale·src[i] + shift) and returns the sum of the
// dst values. dst may be src. The exponential is Cephes' expf (about 1 ulp);
// arguments below −87.34 give about 1.2e−38 rather than 0. The sum is
// accumulated in float32 lanes over blocks of 2,048 and in float64 across
// blocks, in a fixed order.
func ExpSum(dst, src []float32, scale, shift float32) float64 {
	if len(dst) < len(src) {
		panic(fmt.Sprintf("kernels.ExpSum: dst has %d elements, src %d", len(dst), len(src)))
	}
	var total float64
	for lo := 0; lo < len(src); lo += expBlock {
		hi := min(lo+expBlock, len(src))
		total += float64(expSum(dst[lo:hi], src[lo:hi], scale, shift))
	}
	return total
}

// Max returns the largest element of x (−Inf for an empty x). NaNs are not
// handled specially.
func Max(x []float32) float32 {
	if len(x) == 0 {
		return float32(math.Inf(-1))
	}
	return maxf(x)
}

// SwiGLU sets out[i] = silu(g[i])·u[i] with silu(x) = x/(1+exp(−x)). out may
// alias g or u.
func SwiGLU(out, g, u []float32) {
	if len(g) != len(u) || len(out) < len(g) {
		panic(fmt.Sprintf("kernels.SwiGLU: lengths out=%d g=%d u=%d", len(out), len(g), len(u)))
	}
	swiglu(out[:len(g)], g, u)
}

// SwiGLUBackward takes the gradient da of a = silu(g)·u and sets
// du = da·silu(g) and dg = da·u·silu′(g). dg may alias g and du may alias u.
func SwiGLUBackward(dg, du, da, g, u []float32) {
	n := len(g)
	if len(u) != n || len(da) != n || len(dg) < n || len(du) < n {
		panic(fmt.Sprintf("kernels.SwiGLUBackward: lengths dg=%d du=%d da=%d g=%d u=%d", len(dg), len(du), len(da), len(g), len(u)))
	}
	swigluBackward(dg[:n], du[:n], da, g, u)
}

// expf is the scalar form of the vector exponential, used by the portable
// kernels and for tails.
func expf(x float32) float32 {
	const (
		hi    = 88.3762626647949
		lo    = -87.33654475
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	x = min(max(x, lo), hi)
	n := float32(math.RoundToEven(float64(x * log2e)))
	x = x - n*c1
	x = x - n*c2
	p := float32(1.9875691500e-4)
	p = p*x + 1.3981999507e-3
	p = p*x + 8.3334519073e-3
	p = p*x + 4.1665795894e-2
	p = p*x + 1.6666665459e-1
	p = p*x + 5.0000001201e-1
	y := p*(x*x) + x + 1
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}

func expSumGo(dst, src []float32, scale, shift float32) float32 {
	var s float32
	dst = dst[:len(src)]
	for i, v := range src {
		// One rounding of the argument, as the vector kernel's FMA does.
		e := expf(float32(math.FMA(float64(scale), float64(v), float64(shift))))
		dst[i] = e
		s += e
	}
	return s
}

func maxGo(x []float32) float32 {
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	return m
}

func swigluGo(out, g, u []float32) {
	u = u[:len(g)]
	out = out[:len(g)]
	for i, gv := range g {
		out[i] = gv * u[i] / (1 + expf(-gv))
	}
}

func swigluBackwardGo(dg, du, da, g, u []float32) {
	n := len(g)
	u, da, dg, du = u[:n], da[:n], dg[:n], du[:n]
	for i := 0; i < n; i++ {
		gv, uv, a := g[i], u[i], da[i]
		s := 1 / (1 + expf(-gv))
		du[i] = a * gv * s
		dg[i] = a * uv * s * (1 + gv*(1-s))
	}
}

// AdamWConsts are the per-step scalars of an AdamW update (see
// AdamWUpdate).
type AdamWConsts struct {
	Clip         float32 // gradient multiplier (global-norm clipping; 1 for none)
	Beta1, Beta2 float32
	InvBC1       float32 // 1/(1−β1^t)
	InvBC2       float32 // 1/(1−β2^t)
	Eps          float32
	WeightDecay  float32 // 0 for parameters that do not decay
	LR           float32
}

// AdamWUpdate applies one AdamW update to a slice of parameters:
//
//	g = grad·Clip
//	m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
//	u = m·InvBC1 / (√(v·InvBC2) + Eps) + WeightDecay·data
//	data −= LR·u
func AdamWUpdate(data, grad, m, v []float32, c AdamWConsts) {
	n := len(data)
	if len(grad) != n || len(m) != n || len(v) != n {
		panic(fmt.Sprintf("kernels.AdamWUpdate: lengths data=%d grad=%d m=%d v=%d", n, len(grad), len(m), len(v)))
	}
	adamw(data, grad, m, v, &c)
}

func adamwGo(data, grad, m, v []float32, c *AdamWConsts) {
	n := len(data)
	grad, m, v = grad[:n], m[:n], v[:n]
	ob1, ob2 := 1-c.Beta1, 1-c.Beta2
	for i, g := range grad {
		g *= c.Clip
		mi := c.Beta1*m[i] + ob1*g
		vi := c.Beta2*v[i] + ob2*(g*g)
		m[i], v[i] = mi, vi
		u := mi * c.InvBC1 / (float32(math.Sqrt(float64(vi*c.InvBC2))) + c.Eps)
		u += c.WeightDecay * data[i]
		data[i] -= c.LR * u
	}
}
