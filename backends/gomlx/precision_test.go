package gomlx

import (
	"context"
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/train"
)

func tinyConfig(tied bool) llama.Config {
	return llama.Config{ModelType: "llama", VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8, HiddenAct: "silu", RMSNormEps: 1e-5, RopeTheta: 10000,
		MaxPositionEmbeddings: 64, TieWordEmbeddings: tied}
}

func TestToBF16RoundsToNearestEven(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // a tie: to even
		{math.Float32frombits(0x3f818000), 0x3f82}, // a tie: to even (up)
		{math.Float32frombits(0x3f808001), 0x3f81}, // above the tie
		{float32(math.Inf(1)), 0x7f80},
		{-2.5, 0xc020},
	} {
		if got := toBF16(c.in).Bits(); got != c.want {
			t.Errorf("toBF16(%v) = %#x, want %#x", c.in, got, c.want)
		}
	}
	if v := toBF16(float32(math.NaN())).Float32(); v == v {
		t.Errorf("NaN became %v", v)
	}
}

// Checkpointing recomputes activations but computes the same objective and
// gradients, for tied and untied heads, on a packed batch.
func TestCheckpointingGivesTheSameGradients(t *testing.T) {
	ctx := context.Background()
	on, off := true, false
	for _, tied := range []bool{false, true} {
		cfg := tinyConfig(tied)
		p := initParams(t, cfg, 11)
		b := BenchBatch(cfg, 2, 16, 4)
		var res [2]llama.LossResult
		var gs [2][]*llama.Tensor
		for i, ck := range []*bool{&off, &on} {
			m, err := New(p, Options{Checkpointing: ck})
			if err != nil {
				t.Fatal(err)
			}
			m.SetAdamW(optim.DefaultAdamW(), 1e-3) // z-loss too
			if res[i], gs[i], err = m.Grads(ctx, b); err != nil {
				t.Fatal(err)
			}
			m.Close()
		}
		if math.Abs(res[0].Loss-res[1].Loss) > 1e-5*math.Abs(res[0].Loss) || math.Abs(res[0].ZLoss-res[1].ZLoss) > 1e-5*math.Abs(res[0].ZLoss)+1e-9 {
			t.Fatalf("tied=%v: loss %+v, checkpointed %+v", tied, res[0], res[1])
		}
		for k, g := range gs[0] {
			for i, x := range g.Data {
				y := gs[1][k].Data[i]
				if math.Abs(float64(x-y)) > 1e-5+1e-4*math.Abs(float64(x)) {
					t.Fatalf("tied=%v: %s gradient %d: %v, checkpointed %v", tied, g.Name, i, x, y)
				}
			}
		}
	}
}

// The lean policy (bf16 weights with Kahan-compensated updates, bf16
// compute and moments) tracks float32 training of the same model on the
// same batches.
//
// Tolerance: every step's loss within 3% of float32's, the final loss
// within 2%, and at least 90% of float32's loss decrease. bf16 keeps 8
// significant bits (rounding ≤ 2⁻⁹ ≈ 0.2% per value), so bf16 activations
// and logits move a step's loss by well under 1% here; the 3% bound leaves
// room for that noise as it compounds over the steps, and is far below
// the ~40% the loss falls over the run, so a policy that loses updates (the
// failure bf16 weights invite: lr·update below half an ulp of the weight)
// or diverges fails it. TestKahanKeepsUpdatesBelowBF16Resolution checks
// the compensation itself.
func TestLeanPrecisionTracksFloat32(t *testing.T) {
	cfg := tinyConfig(false)
	p := initParams(t, cfg, 3)
	ctx := context.Background()
	batches := []*llama.Batch{BenchBatch(cfg, 4, 16, 5), BenchBatch(cfg, 4, 16, 6)}
	const steps = 24
	var losses [2][]float64
	for i, pol := range []train.Precision{train.PrecisionF32, train.PrecisionLean} {
		m, err := New(p, Options{Precision: pol})
		if err != nil {
			t.Fatal(err)
		}
		for s := range steps {
			b := batches[s%2]
			// Half the steps accumulate two micro-batches (the float32
			// gradient sum), half run fused.
			var r llama.LossResult
			if s%4 < 2 {
				r, _, err = m.TrainStep(ctx, 3e-3, b)
			} else {
				r, _, err = m.TrainStep(ctx, 3e-3, b.Rows(0, 2), b.Rows(2, 2))
			}
			if err != nil {
				t.Fatal(err)
			}
			losses[i] = append(losses[i], r.Mean())
		}
		m.Close()
	}
	t.Logf("f32  %.4f", losses[0])
	t.Logf("lean %.4f", losses[1])
	for s := range steps {
		if d := math.Abs(losses[1][s]-losses[0][s]) / losses[0][s]; d > 0.03 {
			t.Errorf("step %d: lean loss %.4f vs f32 %.4f (%.1f%%)", s+1, losses[1][s], losses[0][s], 100*d)
		}
	}
	f, l := losses[0][steps-1], losses[1][steps-1]
	if math.Abs(l-f)/f > 0.02 {
		t.Errorf("final loss: lean %.4f vs f32 %.4f", l, f)
	}
	if drop, leanDrop := losses[0][0]-f, losses[1][0]-l; !(leanDrop >= 0.9*drop) || drop < 0.1*losses[0][0] {
		t.Errorf("loss fell by %.4f in f32, %.4f in lean", drop, leanDrop)
	}
}

// Updates far below bf16's resolution still move bf16 weights: after a
// few steps at a tiny learning rate the lean weights (with their
// compensation, as Params reports them) follow float32's, where plain
// rounding would have kept most of them where they started. The bf16
// compensation buffer holds 8 bits of what rounding lost, so bf16 weight
// and compensation together resolve about 16 bits (the pure-Go engine
// truncates where XLA rounds to nearest, which biases what is lost): the
// lean weights must be within 30% of float32's total movement, where
// plain rounding would be off by the share of weights it keeps in place.
func TestKahanKeepsUpdatesBelowBF16Resolution(t *testing.T) {
	cfg := tinyConfig(false)
	p := initParams(t, cfg, 9)
	// Start from weights bf16 holds exactly, so both runs start equal.
	for i, x := range p.Flat() {
		p.Flat()[i] = toBF16(x).Float32()
	}
	ctx := context.Background()
	b := BenchBatch(cfg, 2, 16, 7)
	var ws [2]*llama.Params
	// float32, and bf16 weights alone (float32 compute and moments, a policy
	// ParsePrecision does not offer, so that only the weights' storage
	// differs).
	for i, pol := range []train.Precision{train.PrecisionF32, {Params: train.BF16, Compute: train.F32, Optimizer: train.F32}} {
		m, err := New(p, Options{Precision: pol})
		if err != nil {
			t.Fatal(err)
		}
		for range 8 {
			if _, _, err := m.TrainStep(ctx, 1e-6, b); err != nil {
				t.Fatal(err)
			}
		}
		if ws[i], err = m.Params(); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	var moved, off, stuck float64
	w := ws[0].Tensor("model.layers.0.mlp.up_proj.weight").Data
	l := ws[1].Tensor("model.layers.0.mlp.up_proj.weight").Data
	w0 := p.Tensor("model.layers.0.mlp.up_proj.weight").Data
	for j := range w {
		moved += math.Abs(float64(w[j] - w0[j]))
		off += math.Abs(float64(l[j] - w[j]))
		if toBF16(w0[j]+(w[j]-w0[j])).Float32() == w0[j] {
			stuck++
		}
	}
	t.Logf("float32 moved the weights by %.3g in all; lean is %.3g from float32; plain bf16 rounding would have kept %.0f%% in place", moved, off, 100*stuck/float64(len(w)))
	if stuck < 0.5*float64(len(w)) {
		t.Fatalf("the test's updates are not below bf16's resolution (only %.0f%% would round away)", 100*stuck/float64(len(w)))
	}
	if off > 0.3*moved {
		t.Fatalf("lean weights are %.3g from float32's, which moved %.3g", off, moved)
	}
}

// A lean model written as float32 weights (Params adds the compensation)
// and loaded again continues exactly as if never interrupted.
func TestLeanResumesExactly(t *testing.T) {
	cfg := tinyConfig(false)
	p := initParams(t, cfg, 5)
	ctx := context.Background()
	b := BenchBatch(cfg, 2, 16, 3)
	opts := Options{Precision: train.PrecisionLean}
	a, err := New(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 3 {
		if _, _, err := a.TrainStep(ctx, 1e-3, b); err != nil {
			t.Fatal(err)
		}
	}
	w, err := a.Params()
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.OptimizerState()
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(w, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.LoadOptimizerState(st); err != nil {
		t.Fatal(err)
	}
	for s := range 2 {
		la, _, err := a.TrainStep(ctx, 1e-3, b)
		if err != nil {
			t.Fatal(err)
		}
		lr, _, err := r.TrainStep(ctx, 1e-3, b)
		if err != nil {
			t.Fatal(err)
		}
		if la != lr {
			t.Fatalf("step %d after resuming: loss %+v, uninterrupted %+v", s+1, lr, la)
		}
	}
	wa, _ := a.Params()
	wr, _ := r.Params()
	for i, x := range wa.Flat() {
		if wr.Flat()[i] != x {
			t.Fatalf("weight %d: resumed %v, uninterrupted %v", i, wr.Flat()[i], x)
		}
	}
}

// LoRA under the memory-lean settings: checkpointing computes the same
// adapter gradients (dropout and a fully trained lm_head included), and
// the lean policy — adapter in bf16 with Kahan compensation, the frozen
// base in bf16 — tracks a float32 run.
func TestLoRAWithCheckpointingAndLean(t *testing.T) {
	ctx := context.Background()
	lf := conformance.LoRATrainFixture()
	newModel := func(o Options) *Model {
		m, err := NewLoRA(lf.Params(t), lf.NewAdapter(t), o, conformance.TrainSeed)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		m.SetAdamW(conformance.TrainAdamW, conformance.TrainZLoss)
		return m
	}
	const vocab = 24
	on, off := true, false
	b := conformance.TrainBatch(vocab, 0)
	var res [2]llama.LossResult
	var gs [2][]*llama.Tensor
	for i, ck := range []*bool{&off, &on} {
		var err error
		if res[i], gs[i], err = newModel(Options{Engine: EngineGo, Checkpointing: ck}).Grads(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if math.Abs(res[0].Loss-res[1].Loss) > 1e-5*math.Abs(res[0].Loss) {
		t.Fatalf("LoRA loss %+v, checkpointed %+v", res[0], res[1])
	}
	for k, g := range gs[0] {
		for i, x := range g.Data {
			if y := gs[1][k].Data[i]; math.Abs(float64(x-y)) > 1e-5+1e-4*math.Abs(float64(x)) {
				t.Fatalf("%s gradient %d: %v, checkpointed %v", g.Name, i, x, y)
			}
		}
	}

	mf := newModel(Options{Engine: EngineGo, Precision: train.PrecisionF32})
	ml := newModel(Options{Engine: EngineGo, Precision: train.PrecisionLean, Checkpointing: &on})
	for i, p := range ml.dev[0].params {
		if p.DType() != dtypes.BFloat16 || ml.dev[0].comp[i].DType() != dtypes.BFloat16 {
			t.Fatalf("lean adapter tensor %s held as %s", ml.specs[i].name, p.DType())
		}
	}
	for i, ft := range ml.dev[0].frozen {
		if ft.DType() != dtypes.BFloat16 {
			t.Fatalf("lean frozen %s held as %s", ml.frozen[i].name, ft.DType())
		}
	}
	for i := range 6 {
		bt := conformance.TrainBatch(vocab, i)
		micro := bt.B
		if i%2 == 1 && bt.B%2 == 0 {
			micro = bt.B / 2 // accumulated
		}
		rl, _, err := ml.Step(ctx, bt, micro, conformance.TrainLR(i))
		if err != nil {
			t.Fatal(err)
		}
		rf, _, err := mf.Step(ctx, bt, micro, conformance.TrainLR(i))
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(rl.Mean()-rf.Mean()) / rf.Mean(); d > 3e-2 {
			t.Errorf("step %d: lean LoRA loss %.5g, float32 %.5g", i, rl.Mean(), rf.Mean())
		}
	}
	al, err := ml.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	af, err := mf.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	// Adam moves each value by about the learning rate a step, whatever
	// the gradient's scale, so bf16 compute's noise shows at that scale
	// (TestLoRABF16Base allows 2e-3 after 3 steps): the lean adapter must
	// move as far as float32's and stay within that noise of it.
	start := lf.NewAdapter(t)
	var moved, movedLean, diff float64
	for i, x := range af.Flat() {
		moved = math.Max(moved, math.Abs(float64(x-start.Flat()[i])))
		movedLean = math.Max(movedLean, math.Abs(float64(al.Flat()[i]-start.Flat()[i])))
		diff = math.Max(diff, math.Abs(float64(x-al.Flat()[i])))
	}
	t.Logf("lean vs float32 LoRA after 6 steps: adapter within %.3g (moved up to %.3g, lean %.3g)", diff, moved, movedLean)
	if moved == 0 || movedLean < 0.5*moved || diff > 3e-3 {
		t.Errorf("lean adapter off by %.3g; float32 moved %.3g, lean %.3g", diff, moved, movedLean)
	}
}
