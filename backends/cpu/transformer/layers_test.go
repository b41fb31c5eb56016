package transformer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
)

// Layer-by-layer gradient checks: each backward function against central
// finite differences of the float64 reference of its layer, for a random
// upstream gradient dy (the checked scalar is Σ out·dy).

func randF32(r *rand.Rand, n int, std float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * std)
	}
	return s
}

func f64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// checkGrad compares an analytic gradient with finite differences of f
// over x (perturbed in place).
func checkGrad(t *testing.T, what string, got []float32, x []float64, f func() float64) {
	t.Helper()
	const h = 1e-6
	fd := make([]float64, len(x))
	maxAbs := 0.0
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		a := f()
		x[i] = orig - h
		b := f()
		x[i] = orig
		fd[i] = (a - b) / (2 * h)
		maxAbs = math.Max(maxAbs, math.Abs(fd[i]))
	}
	for i, want := range fd {
		if d := math.Abs(float64(got[i]) - want); d > 1e-4*maxAbs+1e-3*math.Abs(want)+1e-6 {
			t.Fatalf("%s[%d]: gradient %g, finite difference %g", what, i, got[i], want)
		}
	}
}

func TestRMSNormGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	const n, d, eps = 5, 7, 1e-5
	x, w, dy := randF32(r, n*d, 1), randF32(r, d, 1), randF32(r, n*d, 1)
	y, rstd := make([]float32, n*d), make([]float32, n)
	rmsNorm(y, x, rstd, w, n, d, eps)
	dx, dw := make([]float32, n*d), make([]float32, d)
	rmsNormBackward(dx, dw, dy, x, rstd, w, n, d)
	xr, wr, dyr := f64(x), f64(w), f64(dy)
	f := func() float64 {
		s := 0.0
		for row := 0; row < n; row++ {
			for i, v := range refRMSNorm(xr[row*d:row*d+d], wr, eps) {
				s += v * dyr[row*d+i]
			}
		}
		return s
	}
	for i, v := range f64(y) {
		row := i / d
		if want := refRMSNorm(xr[row*d:row*d+d], wr, eps)[i%d]; math.Abs(v-want) > 1e-5*(1+math.Abs(want)) {
			t.Fatalf("rmsnorm[%d] = %g, want %g", i, v, want)
		}
	}
	checkGrad(t, "rmsnorm dx", dx, xr, f)
	checkGrad(t, "rmsnorm dw", dw, wr, f)
}

func TestRopeGradient(t *testing.T) {
	cfg := tinyConfig()
	cfg.RopeScaling = &llama.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
	cfg = cfg.Normalized()
	tab := llama.NewRopeTable(cfg, cfg.MaxPositionEmbeddings)
	r := rand.New(rand.NewPCG(2, 2))
	const n, heads = 6, 3
	ld := heads * cfg.HeadDim
	pos := []int32{0, 1, 5, 17, 40, 63}
	x, dy := randF32(r, n*ld, 1), randF32(r, n*ld, 1)
	y := append([]float32(nil), x...)
	ropeApply(tab, y, ld, heads, pos, 0, n)
	dx := append([]float32(nil), dy...)
	ropeApplyInverse(tab, dx, ld, heads, pos, 0, n)
	inv := refInvFreq(cfg)
	xr, dyr := f64(x), f64(dy)
	f := func() float64 {
		s := 0.0
		for row := 0; row < n; row++ {
			v := append([]float64(nil), xr[row*ld:row*ld+ld]...)
			refRope(v, int(pos[row]), inv, heads)
			for i, e := range v {
				s += e * dyr[row*ld+i]
			}
		}
		return s
	}
	for row := 0; row < n; row++ {
		v := append([]float64(nil), xr[row*ld:row*ld+ld]...)
		refRope(v, int(pos[row]), inv, heads)
		for i, want := range v {
			if got := float64(y[row*ld+i]); math.Abs(got-want) > 2e-5*(1+math.Abs(want)) {
				t.Fatalf("rope row %d [%d] = %g, want %g", row, i, got, want)
			}
		}
	}
	checkGrad(t, "rope dx", dx, xr, f)
}

// TestAttentionGradient runs attention over packed, padded rows with GQA and
// a reappearing segment id, against the reference forward and finite
// differences.
func TestAttentionGradient(t *testing.T) {
	cfg := tinyConfig()
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 4, 2
	cfg = cfg.Normalized()
	b := testBatch(cfg, 3)
	l := newSeqLayout(b)
	d := newAttnDims(cfg, b.T)
	N := b.B * b.T
	r := rand.New(rand.NewPCG(3, 3))
	q, k, v := randF32(r, N*d.qDim, 1), randF32(r, N*d.kvDim, 1), randF32(r, N*d.kvDim, 1)
	dy := randF32(r, N*d.qDim, 1)
	out, lse := make([]float32, N*d.qDim), make([]float32, b.B*d.H*b.T)
	scratch := [][]float32{make([]float32, d.scratchFloat), make([]float32, d.scratchFloat)}
	attentionForward(out, lse, q, k, v, l, d, scratch)
	dq, dk, dv := make([]float32, N*d.qDim), make([]float32, N*d.kvDim), make([]float32, N*d.kvDim)
	attentionBackward(dq, dk, dv, dy, q, k, v, out, lse, l, d, scratch)

	qr, kr, vr, dyr := f64(q), f64(k), f64(v), f64(dy)
	rows := func(x []float64, row, width int) [][]float64 {
		m := make([][]float64, b.T)
		for tt := range m {
			m[tt] = x[(row*b.T+tt)*width : (row*b.T+tt+1)*width]
		}
		return m
	}
	ref := func(row int) [][]float64 {
		return refAttention(rows(qr, row, d.qDim), rows(kr, row, d.kvDim), rows(vr, row, d.kvDim), l.seg[row*b.T:(row+1)*b.T], d.H, d.KV, d.hd)
	}
	for row := 0; row < b.B; row++ {
		want := ref(row)
		for tt := 0; tt < b.T; tt++ {
			for j, w := range want[tt] {
				if got := float64(out[(row*b.T+tt)*d.qDim+j]); math.Abs(got-w) > 1e-5*(1+math.Abs(w)) {
					t.Fatalf("attention row %d t %d [%d] = %g, want %g", row, tt, j, got, w)
				}
			}
		}
	}
	f := func() float64 {
		s := 0.0
		for row := 0; row < b.B; row++ {
			for tt, o := range ref(row) {
				for j, e := range o {
					s += e * dyr[(row*b.T+tt)*d.qDim+j]
				}
			}
		}
		return s
	}
	checkGrad(t, "attention dq", dq, qr, f)
	checkGrad(t, "attention dk", dk, kr, f)
	checkGrad(t, "attention dv", dv, vr, f)
}

func TestSwiGLUGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	const n = 37
	g, u, da := randF32(r, n, 3), randF32(r, n, 1), randF32(r, n, 1)
	dg, du := make([]float32, n), make([]float32, n)
	kernels.SwiGLUBackward(dg, du, da, g, u)
	gr, ur, dar := f64(g), f64(u), f64(da)
	f := func() float64 {
		s := 0.0
		for i := range gr {
			s += silu(gr[i]) * ur[i] * dar[i]
		}
		return s
	}
	checkGrad(t, "swiglu dg", dg, gr, f)
	checkGrad(t, "swiglu du", du, ur, f)
}

// TestHeadLossGradient checks the LM head and masked cross-entropy with
// z-loss: gradients with respect to the final hidden states and the head
// weight, tied and untied.
func TestHeadLossGradient(t *testing.T) {
	for _, tied := range []bool{false, true} {
		cfg := tinyConfig()
		cfg.TieWordEmbeddings = tied
		cfg.NumHiddenLayers = 0
		p := randomParams(t, cfg, 5)
		m, err := New(cfg, p)
		if err != nil {
			t.Fatal(err)
		}
		b := testBatch(cfg, 6)
		ws, err := m.prepare(b, true)
		if err != nil {
			t.Fatal(err)
		}
		d, V := cfg.HiddenSize, cfg.VocabSize
		N := b.B * b.T
		r := rand.New(rand.NewPCG(7, 7))
		hF := randF32(r, N*d, 1)
		dhF := make([]float32, N*d)
		g, _ := llama.NewParams(cfg)
		gw := g.LMHead
		if tied {
			gw = g.Embed
		}
		const zw, scale = 0.1, 0.25
		res := m.headLoss(hF, ws.rows, dhF, gw, scale, llama.LossOptions{ZLossWeight: zw})
		hr := f64(hF)
		wr := f64(m.headWeight().Data)
		f := func() float64 {
			s := 0.0
			for _, row := range ws.rows {
				lg := refLinear(hr[int(row)*d:int(row)*d+d], wr, nil, V)
				mx := math.Inf(-1)
				for _, v := range lg {
					mx = math.Max(mx, v)
				}
				z := 0.0
				for _, v := range lg {
					z += math.Exp(v - mx)
				}
				lse := mx + math.Log(z)
				s += lse - lg[b.Tokens[row+1]] + zw*lse*lse
			}
			return scale * s
		}
		if want := f() / scale; math.Abs(res.Loss+res.ZLoss-want) > 1e-5*want {
			t.Fatalf("tied=%v: loss %g, want %g", tied, res.Loss+res.ZLoss, want)
		}
		checkGrad(t, "head dh", dhF, hr, f)
		checkGrad(t, "head dW", gw.Data, wr, f)
	}
}
