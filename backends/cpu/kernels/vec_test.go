package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpSumAccuracy(t *testing.T) { forEachISA(t, testExpSumAccuracy) }

func testExpSumAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 24, 33, 100, 2049, 5000} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(r.Float64()*60 - 50)
		}
		src = append(src, -90, -87, 0, 80)[:max(n, 0)+4][:n+4]
		dst := make([]float32, len(src))
		const scale, shift = 0.75, -3
		sum := ExpSum(dst, src, scale, shift)
		var want float64
		for i, v := range src {
			x := float64(scale)*float64(v) + float64(shift)
			w := math.Exp(x)
			want += float64(dst[i])
			if w < 1e-37 {
				if dst[i] > 2e-38 {
					t.Fatalf("n=%d: exp(%g) = %g, want ~0", n, x, dst[i])
				}
				continue
			}
			// One rounding of the argument (|x|·2⁻²⁴) plus the kernel's own error.
			if rel := math.Abs(float64(dst[i])-w) / w; rel > 3e-7+math.Abs(x)*1.2e-7 {
				t.Fatalf("n=%d i=%d: exp(%g) = %g, want %g (rel %g)", n, i, x, dst[i], w, rel)
			}
		}
		if math.Abs(sum-want) > 1e-6*want {
			t.Fatalf("n=%d: sum %g, want %g", n, sum, want)
		}
		// The portable kernel agrees.
		dst2 := make([]float32, len(src))
		expSumGo(dst2, src, scale, shift)
		for i := range dst {
			if d := math.Abs(float64(dst[i] - dst2[i])); d > 2e-6*math.Abs(float64(dst[i])) {
				t.Fatalf("n=%d i=%d: asm %g vs go %g", n, i, dst[i], dst2[i])
			}
		}
	}
}

func TestMax(t *testing.T) { forEachISA(t, testMax) }

func testMax(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{1, 5, 8, 9, 16, 17, 24, 31, 32, 33, 1000} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for _, at := range []int{0, n / 2, n - 1} {
			y := append([]float32(nil), x...)
			y[at] = 100
			if got := Max(y); got != 100 {
				t.Fatalf("n=%d at=%d: Max = %g", n, at, got)
			}
		}
	}
	if !math.IsInf(float64(Max(nil)), -1) {
		t.Fatal("Max(nil) is not -Inf")
	}
}

func TestSwiGLU(t *testing.T) { forEachISA(t, testSwiGLU) }

func testSwiGLU(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{1, 8, 13, 16, 24, 40, 64, 100} {
		g := make([]float32, n)
		u := make([]float32, n)
		da := make([]float32, n)
		for i := range g {
			g[i] = float32(r.NormFloat64() * 4)
			u[i] = float32(r.NormFloat64())
			da[i] = float32(r.NormFloat64())
		}
		g[0] = -100
		out := make([]float32, n)
		SwiGLU(out, g, u)
		dg := make([]float32, n)
		du := make([]float32, n)
		SwiGLUBackward(dg, du, da, g, u)
		for i := range g {
			gv, uv := float64(g[i]), float64(u[i])
			s := 1 / (1 + math.Exp(-gv))
			want := gv * s * uv
			if math.Abs(float64(out[i])-want) > 1e-6*(1+math.Abs(want)) {
				t.Fatalf("n=%d i=%d: swiglu(%g,%g) = %g, want %g", n, i, gv, uv, out[i], want)
			}
			wdu := float64(da[i]) * gv * s
			wdg := float64(da[i]) * uv * s * (1 + gv*(1-s))
			if math.Abs(float64(du[i])-wdu) > 1e-5*(1+math.Abs(wdu)) || math.Abs(float64(dg[i])-wdg) > 1e-5*(1+math.Abs(wdg)) {
				t.Fatalf("n=%d i=%d: backward du=%g dg=%g, want %g %g", n, i, du[i], dg[i], wdu, wdg)
			}
		}
		// In place: dg over g, du over u.
		g2, u2 := append([]float32(nil), g...), append([]float32(nil), u...)
		SwiGLUBackward(g2, u2, da, g2, u2)
		for i := range g2 {
			if g2[i] != dg[i] || u2[i] != du[i] {
				t.Fatalf("n=%d i=%d: in-place backward differs", n, i)
			}
		}
	}
}

func TestAdamWUpdate(t *testing.T) { forEachISA(t, testAdamWUpdate) }

func testAdamWUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, n := range []int{1, 8, 16, 29, 40} {
		data, grad, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range data {
			data[i], grad[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			m[i], v[i] = float32(r.NormFloat64()*0.1), float32(r.Float64()*0.1)
		}
		c := AdamWConsts{Clip: 0.5, Beta1: 0.9, Beta2: 0.95, InvBC1: 1 / 0.19, InvBC2: 1 / 0.0975, Eps: 1e-8, WeightDecay: 0.1, LR: 0.01}
		d2, g2, m2, v2 := append([]float32(nil), data...), append([]float32(nil), grad...), append([]float32(nil), m...), append([]float32(nil), v...)
		AdamWUpdate(data, grad, m, v, c)
		for i := range d2 {
			g := float64(g2[i]) * 0.5
			mi := 0.9*float64(m2[i]) + 0.1*g
			vi := 0.95*float64(v2[i]) + 0.05*g*g
			u := mi/0.19/(math.Sqrt(vi/0.0975)+1e-8) + 0.1*float64(d2[i])
			want := float64(d2[i]) - 0.01*u
			if math.Abs(float64(data[i])-want) > 1e-6*(1+math.Abs(want)) || math.Abs(float64(m[i])-mi) > 1e-6 || math.Abs(float64(v[i])-vi) > 1e-6 {
				t.Fatalf("n=%d i=%d: data %g m %g v %g, want %g %g %g", n, i, data[i], m[i], v[i], want, mi, vi)
			}
		}
	}
}
