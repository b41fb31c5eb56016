package gomlx

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
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
	cfg, err := llama.ParseConfig(configJSON)
	if err != nil {
		return nil, err
	}
	p, err := llama.NewParams(cfg)
	if err != nil {
		return nil, err
	}
	for _, t := range p.Tensors() {
		w, ok := weights[t.Name]
		if !ok || len(w) != len(t.Data) {
			return nil, fmt.Errorf("gomlx: weights for %s missing or of the wrong size", t.Name)
		}
		copy(t.Data, w)
	}
	m, err := New(p, c.opts)
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

func batchOf(b conformance.Batch) *llama.Batch {
	lb := &llama.Batch{B: b.BatchSize, T: b.SeqLen, Tokens: b.Tokens, Segments: b.SegmentIDs, Positions: b.Positions,
		LossMask: make([]bool, len(b.LossMask))}
	for i, v := range b.LossMask {
		lb.LossMask[i] = v != 0
	}
	return lb
}

func (c conformanceModel) LossAndGrads(ctx context.Context, b conformance.Batch, zLoss float64) (float64, map[string][]float32, error) {
	c.SetAdamW(c.adamw, zLoss)
	res, g, err := c.Grads(ctx, batchOf(b))
	if err != nil {
		return 0, nil, err
	}
	out := map[string][]float32{}
	for _, t := range g.Tensors() {
		out[t.Name] = t.Data
	}
	return res.ObjectiveMean(), out, nil
}

func (c conformanceModel) TrainStep(ctx context.Context, b conformance.Batch, o conformance.Optim, lr float64) (float64, error) {
	c.SetAdamW(optim.AdamWConfig{Beta1: o.Beta1, Beta2: o.Beta2, Epsilon: o.Eps, WeightDecay: o.WeightDecay, MaxGradNorm: o.MaxGradNorm}, o.ZLossWeight)
	r, _, err := c.Model.TrainStep(ctx, lr, batchOf(b))
	return r.Mean(), err
}

func (c conformanceModel) Weights(ctx context.Context) (map[string][]float32, error) {
	p, err := c.Params()
	if err != nil {
		return nil, err
	}
	out := map[string][]float32{}
	for _, t := range p.Tensors() {
		out[t.Name] = t.Data
	}
	return out, nil
}

func (c conformanceModel) Greedy(ctx context.Context, prompt []int32, n int) ([]int32, error) {
	return c.Model.Generate(ctx, prompt, Sampling{MaxNewTokens: n})
}

func (c conformanceModel) SaveCheckpoint(ctx context.Context, dir string) error {
	return c.Model.SaveCheckpoint(ctx, dir, train.TrainerState{}, false, "")
}
