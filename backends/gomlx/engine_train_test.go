package gomlx

import (
	"context"
	"math"
	"testing"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
)

// As train.Engines, the gomlx and cpu engines step alike: the same loss
// sums, gradient norm, clipping, weights and optimizer state, micro-batched.
func TestEngineMatchesCPUEngine(t *testing.T) {
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
	acfg := optim.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Epsilon: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.5}
	ce, err := cpu.NewEngine(params.Clone(), acfg, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close()
	ge, err := EngineFactory(Options{})(params, acfg, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	defer ge.Close()
	for step := range 4 {
		cb := conformance.TrainBatch(lcfg.VocabSize, step)
		lb := &llama.Batch{B: cb.BatchSize, T: cb.SeqLen, Tokens: cb.Tokens, Segments: cb.SegmentIDs, Positions: cb.Positions, LossMask: make([]bool, len(cb.LossMask))}
		for i, v := range cb.LossMask {
			lb.LossMask[i] = v != 0
		}
		micro := 1 + step%2
		want, wantInfo, err := ce.Step(ctx, lb, micro, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		got, info, err := ge.Step(ctx, lb, micro, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		if got.Count != want.Count || math.Abs(got.Loss-want.Loss) > 1e-4 || math.Abs(got.ZLoss-want.ZLoss) > 1e-5 ||
			math.Abs(info.GradNorm-wantInfo.GradNorm) > 1e-5 || info.Clipped != wantInfo.Clipped {
			t.Fatalf("step %d: gomlx %+v %+v, cpu %+v %+v", step, got, info, want, wantInfo)
		}
		ev, err := ge.Eval(ctx, lb)
		if err != nil || ev.Count != want.Count {
			t.Fatalf("eval: %+v %v", ev, err)
		}
	}
	gp, err := ge.Params()
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := ce.Params()
	for i, tn := range gp.Tensors() {
		for j, v := range tn.Data {
			if d := math.Abs(float64(v - cp.Tensors()[i].Data[j])); d > 1e-5 {
				t.Fatalf("%s[%d]: gomlx %v, cpu %v", tn.Name, j, v, cp.Tensors()[i].Data[j])
			}
		}
	}
	st, err := ge.OptimizerState()
	want, _ := ce.OptimizerState()
	if err != nil || st.Step != want.Step || len(st.Names) != len(want.Names) || st.Names[3] != want.Names[3] {
		t.Fatalf("optimizer state %v, %v", st, err)
	}
	if err := ge.LoadOptimizerState(st); err != nil {
		t.Fatal(err)
	}
}
