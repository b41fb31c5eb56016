package gomlx

import (
	"context"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/train"
)

// Conformance adapts the backend to the conformance suite (and to any
// caller that wants the backend-neutral interface).
func Conformance(opts Options) conformance.Backend { return conformanceBackend{opts} }

type conformanceBackend struct{ opts Options }

func (c conformanceBackend) Name() string {
	if c.opts.Engine == EngineXLA {
		return "gomlx-xla"
	}
	return "gomlx-go"
}

func (c conformanceBackend) Open(ctx context.Context, configJSON []byte, weights map[string][]float32) (conformance.Model, error) {
	m, err := NewFromJSON(configJSON, weights, c.opts)
	if err != nil {
		return nil, err
	}
	return conformanceModel{m}, nil
}

func (c conformanceBackend) LoadCheckpoint(ctx context.Context, dir string) (conformance.Model, error) {
	m, _, err := LoadCheckpoint(dir, c.opts)
	if err != nil {
		return nil, err
	}
	return conformanceModel{m}, nil
}

func (c conformanceBackend) LoadHF(ctx context.Context, dir string) (conformance.Model, error) {
	m, err := LoadHF(dir, c.opts)
	if err != nil {
		return nil, err
	}
	return conformanceModel{m}, nil
}

type conformanceModel struct{ *Model }

func batchOf(b conformance.Batch) Batch {
	return Batch{BatchSize: b.BatchSize, SeqLen: b.SeqLen, Tokens: b.Tokens, LossMask: b.LossMask, SegmentIDs: b.SegmentIDs, Positions: b.Positions}
}

func (c conformanceModel) LossAndGrads(ctx context.Context, b conformance.Batch, zLoss float64) (float64, map[string][]float32, error) {
	o := c.optimNow()
	o.ZLossWeight = zLoss
	c.SetOptim(o)
	return c.Model.LossAndGrads(ctx, batchOf(b))
}

func (c conformanceModel) TrainStep(ctx context.Context, b conformance.Batch, o conformance.Optim, lr float64) (float64, error) {
	c.SetOptim(Optim{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay, MaxGradNorm: o.MaxGradNorm, ZLossWeight: o.ZLossWeight})
	r, err := c.Model.TrainStep(ctx, lr, batchOf(b))
	return r.Loss, err
}

func (c conformanceModel) Weights(ctx context.Context) (map[string][]float32, error) {
	return c.Model.Weights()
}

func (c conformanceModel) Greedy(ctx context.Context, prompt []int32, n int) ([]int32, error) {
	return c.Model.Generate(ctx, prompt, Sampling{MaxNewTokens: n})
}

func (c conformanceModel) SaveCheckpoint(ctx context.Context, dir string) error {
	return c.Model.SaveCheckpoint(ctx, dir, train.TrainerState{}, false, "")
}
