package adamw

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/optim"
)

// refAdamW is optax's chain in float64.
type refAdamW struct {
	cfg  optim.AdamWConfig
	step int
	m, v [][]float64
}

func (r *refAdamW) update(data [][]float64, grads [][]float64, decay []bool, lr float64) {
	var ss float64
	for _, g := range grads {
		for _, x := range g {
			ss += x * x
		}
	}
	norm := math.Sqrt(ss)
	r.step++
	for i := range data {
		for j := range data[i] {
			g := grads[i][j]
			if r.cfg.MaxGradNorm > 0 && norm >= r.cfg.MaxGradNorm {
				g = g / norm * r.cfg.MaxGradNorm
			}
			r.m[i][j] = r.cfg.Beta1*r.m[i][j] + (1-r.cfg.Beta1)*g
			r.v[i][j] = r.cfg.Beta2*r.v[i][j] + (1-r.cfg.Beta2)*g*g
			mh := r.m[i][j] / (1 - math.Pow(r.cfg.Beta1, float64(r.step)))
			vh := r.v[i][j] / (1 - math.Pow(r.cfg.Beta2, float64(r.step)))
			u := mh / (math.Sqrt(vh) + r.cfg.Epsilon)
			if decay[i] {
				u += r.cfg.WeightDecay * data[i][j]
			}
			data[i][j] -= lr * u
		}
	}
}

func TestAdamWMatchesReference(t *testing.T) {
	cfg := optim.DefaultAdamW()
	cfg.WeightDecay = 0.1
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{5, 3, 70000} // the last spans chunks
	names := []string{"model.layers.0.mlp.up_proj.weight", "model.norm.weight", "lm_head.weight"}
	params := make([]Param, len(sizes))
	ref := &refAdamW{cfg: cfg}
	var data64, grad64 [][]float64
	var decay []bool
	for i, n := range sizes {
		params[i] = Param{Name: names[i], Data: make([]float32, n), Grad: make([]float32, n), Decay: optim.LevanterWeightDecay(names[i])}
		d := make([]float64, n)
		for j := range d {
			params[i].Data[j] = float32(r.NormFloat64())
			d[j] = float64(params[i].Data[j])
		}
		data64 = append(data64, d)
		grad64 = append(grad64, make([]float64, n))
		ref.m = append(ref.m, make([]float64, n))
		ref.v = append(ref.v, make([]float64, n))
		decay = append(decay, params[i].Decay)
	}
	opt, err := NewAdamW(cfg, params)
	if err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 4; step++ {
		gscale := 1e-3
		if step%2 == 1 {
			gscale = 1 // clipped: norm ≫ 1
		}
		for i := range params {
			for j := range params[i].Grad {
				params[i].Grad[j] = float32(r.NormFloat64() * gscale)
				grad64[i][j] = float64(params[i].Grad[j])
			}
		}
		lr := 0.01 * float64(step+1)
		info, err := opt.Step(params, lr)
		if err != nil {
			t.Fatal(err)
		}
		if info.Clipped != (step%2 == 1) {
			t.Fatalf("step %d: clipped=%v with norm %g", step, info.Clipped, info.GradNorm)
		}
		ref.update(data64, grad64, decay, lr)
		for i := range params {
			for j, v := range params[i].Data {
				if d := math.Abs(float64(v) - data64[i][j]); d > 2e-6*(1+math.Abs(data64[i][j])) {
					t.Fatalf("step %d: %s[%d] = %g, reference %g", step, names[i], j, v, data64[i][j])
				}
			}
		}
	}
	if opt.State.Step != 4 {
		t.Fatalf("step count %d", opt.State.Step)
	}
}

func TestAdamWRefusesNonFinite(t *testing.T) {
	p := []Param{{Name: "w", Data: []float32{1, 2}, Grad: []float32{float32(math.NaN()), 0}, Decay: true}}
	opt, _ := NewAdamW(optim.DefaultAdamW(), p)
	_, err := opt.Step(p, 0.1)
	if !errors.Is(err, optim.ErrNonFinite) {
		t.Fatalf("error %v, want ErrNonFinite", err)
	}
	if p[0].Data[0] != 1 || opt.State.Step != 0 {
		t.Fatal("a non-finite step changed the parameters or the step count")
	}
}

func TestAdamWDeterministicAcrossThreads(t *testing.T) {
	prev := kernels.Threads()
	defer kernels.SetThreads(prev)
	var first []float32
	for _, th := range []int{1, 2, 3} {
		kernels.SetThreads(th)
		r := rand.New(rand.NewPCG(3, 4))
		n := 3*chunk + 17
		p := []Param{{Name: "w", Data: make([]float32, n), Grad: make([]float32, n), Decay: true}}
		for j := range p[0].Data {
			p[0].Data[j] = float32(r.NormFloat64())
			p[0].Grad[j] = float32(r.NormFloat64())
		}
		cfg := optim.DefaultAdamW()
		cfg.WeightDecay = 0.01
		opt, _ := NewAdamW(cfg, p)
		for s := 0; s < 2; s++ {
			if _, err := opt.Step(p, 0.1); err != nil {
				t.Fatal(err)
			}
		}
		if first == nil {
			first = p[0].Data
			continue
		}
		for j, v := range p[0].Data {
			if math.Float32bits(v) != math.Float32bits(first[j]) {
				t.Fatalf("threads=%d differs at %d", th, j)
			}
		}
	}
}

func TestStateRoundTripAndCorruption(t *testing.T) {
	p := []Param{
		{Name: "a", Data: make([]float32, 3), Grad: []float32{1, 2, 3}},
		{Name: "b", Data: make([]float32, chunk+5), Grad: make([]float32, chunk+5)},
	}
	for i := range p[1].Grad {
		p[1].Grad[i] = float32(i%7) - 3
	}
	opt, _ := NewAdamW(optim.DefaultAdamW(), p)
	for i := 0; i < 3; i++ {
		if _, err := opt.Step(p, 0.01); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	n, err := opt.State.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d bytes, %v (buffer %d)", n, err, buf.Len())
	}
	s, err := optim.ReadState(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	opt2, _ := NewAdamW(optim.DefaultAdamW(), p)
	if err := opt2.LoadState(s); err != nil {
		t.Fatal(err)
	}
	if opt2.State.Step != 3 {
		t.Fatalf("restored step %d", opt2.State.Step)
	}
	for i := range p {
		for j := range opt.State.M[i] {
			if opt.State.M[i][j] != opt2.State.M[i][j] || opt.State.V[i][j] != opt2.State.V[i][j] {
				t.Fatalf("moment %s[%d] differs after round trip", p[i].Name, j)
			}
		}
	}
	// Both optimizers continue identically.
	q := []Param{{Name: "a", Data: append([]float32(nil), p[0].Data...), Grad: p[0].Grad}, {Name: "b", Data: append([]float32(nil), p[1].Data...), Grad: p[1].Grad}}
	opt.Step(p, 0.01)
	opt2.Step(q, 0.01)
	for i := range p {
		for j := range p[i].Data {
			if p[i].Data[j] != q[i].Data[j] {
				t.Fatal("resumed optimizer diverged")
			}
		}
	}

	data := buf.Bytes()
	for _, cut := range []int{0, 5, 20, len(data) / 2, len(data) - 1} {
		_, err := optim.ReadState(bytes.NewReader(data[:cut]))
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "magic") {
			t.Errorf("truncated at %d: error %v", cut, err)
		}
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0x40
	if _, err := optim.ReadState(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("flipped bit: error %v, want a checksum mismatch", err)
	}
	wrong := &optim.State{Names: []string{"a"}, M: [][]float32{{0}}, V: [][]float32{{0}}}
	if err := opt2.LoadState(wrong); err == nil {
		t.Error("LoadState accepted a state for other parameters")
	}
}
