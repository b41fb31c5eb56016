package gomlx

import (
	"context"
	"math"
	"testing"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/cpu/adamw"
	"github.com/marin-go/marin/backends/cpu/transformer"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
)

// TrainEngine steps like backends/train's loop over llama and optim: the
// same loss sums, gradient norm and weights, micro-batched.
func TestTrainEngineMatchesCPULoop(t *testing.T) {
	ctx := context.Background()
	f := conformance.TrainFixture()
	lcfg, err := llama.ParseConfig([]byte(f.Config))
	if err != nil {
		t.Fatal(err)
	}
	params, _ := llama.NewParams(lcfg)
	for _, tn := range params.Tensors() {
		copy(tn.Data, f.Weights[tn.Name])
	}
	lm, err := transformer.New(lcfg, params)
	if err != nil {
		t.Fatal(err)
	}
	grads, _ := llama.NewParams(lcfg)
	var ops []adamw.Param
	for i, tn := range params.Tensors() {
		ops = append(ops, adamw.Param{Name: tn.Name, Data: tn.Data, Grad: grads.Tensors()[i].Data, Decay: optim.LevanterWeightDecay(tn.Name)})
	}
	acfg := optim.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Epsilon: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.5}
	opt, _ := adamw.NewAdamW(acfg, ops)

	gm, err := NewFromJSON([]byte(f.Config), f.Weights, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gm.Close()
	eng := TrainEngine{M: gm}
	eng.SetAdamW(acfg, 1e-3)
	opts := llama.LossOptions{ZLossWeight: 1e-3}
	for step := range 4 {
		cb := conformance.TrainBatch(lcfg.VocabSize, step)
		lb := &llama.Batch{B: cb.BatchSize, T: cb.SeqLen, Tokens: cb.Tokens, Segments: cb.SegmentIDs, Positions: cb.Positions, LossMask: make([]bool, len(cb.LossMask))}
		for i, v := range cb.LossMask {
			lb.LossMask[i] = v != 0
		}
		grads.Zero()
		want, err := lm.LossAndGrad(lb, opts, grads, 1/float32(lb.TrainedCount()))
		if err != nil {
			t.Fatal(err)
		}
		wantInfo, err := opt.Step(ops, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		got, info, err := eng.Step(ctx, lb, 1, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		if got.Count != want.Count || math.Abs(got.Loss-want.Loss) > 1e-4 || math.Abs(got.ZLoss-want.ZLoss) > 1e-5 ||
			math.Abs(info.GradNorm-wantInfo.GradNorm) > 1e-5 || info.Clipped != wantInfo.Clipped {
			t.Fatalf("step %d: gomlx %+v %+v, cpu %+v %+v", step, got, info, want, wantInfo)
		}
		ev, err := eng.Eval(ctx, lb)
		if err != nil || ev.Count != want.Count {
			t.Fatalf("eval: %+v %v", ev, err)
		}
	}
	p, err := eng.Params(lcfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, tn := range p.Tensors() {
		for j, v := range tn.Data {
			if d := math.Abs(float64(v - params.Tensors()[i].Data[j])); d > 1e-5 {
				t.Fatalf("%s[%d]: gomlx %v, cpu %v", tn.Name, j, v, params.Tensors()[i].Data[j])
			}
		}
	}
	st, err := eng.OptimizerState()
	if err != nil || st.Step != opt.State.Step || len(st.Names) != len(opt.State.Names) || st.Names[3] != opt.State.Names[3] {
		t.Fatalf("optimizer state %v, %v", st, err)
	}
	if err := eng.LoadOptimizerState(st); err != nil {
		t.Fatal(err)
	}
}
