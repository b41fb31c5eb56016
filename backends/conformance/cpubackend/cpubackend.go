// Package cpubackend adapts the cpu reference backend (backends/model/llama for
// the model, backends/model/optim for AdamW, backends/train and backends/model/weights
// for checkpoints and exports, as the train op writes them) to the
// conformance suite, so that suite runs on it and other backends can be
// compared with it (conformance.RunPair).
package cpubackend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/cpu/adamw"
	"github.com/marin-go/marin/backends/cpu/transformer"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/train"
)

// Backend returns the cpu backend as a conformance.Backend.
func Backend() conformance.Backend { return backend{} }

type backend struct{}

func (backend) Name() string { return "cpu" }

func (backend) Open(ctx context.Context, configJSON []byte, weights map[string][]float32) (conformance.Model, error) {
	return open(configJSON, weights)
}

func open(configJSON []byte, weights map[string][]float32) (*model, error) {
	cfg, err := llama.ParseConfig(configJSON)
	if err != nil {
		return nil, err
	}
	params, err := llama.NewParams(cfg)
	if err != nil {
		return nil, err
	}
	for _, t := range params.Tensors() {
		w, ok := weights[t.Name]
		if !ok || len(w) != len(t.Data) {
			return nil, fmt.Errorf("cpu: weights for %s missing or of the wrong size", t.Name)
		}
		copy(t.Data, w)
	}
	m, err := transformer.New(cfg, params)
	if err != nil {
		return nil, err
	}
	grads, err := llama.NewParams(cfg)
	if err != nil {
		return nil, err
	}
	return &model{raw: append([]byte(nil), configJSON...), m: m, grads: grads}, nil
}

func (backend) LoadHF(ctx context.Context, dir string) (conformance.Model, error) {
	p, _, err := weights.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	return fromParams(dir, p)
}

func fromParams(dir string, p *llama.Params) (*model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	w := map[string][]float32{}
	for _, t := range p.Tensors() {
		w[t.Name] = t.Data
	}
	return open(raw, w)
}

func (backend) LoadCheckpoint(ctx context.Context, dir string) (conformance.Model, error) {
	ck, err := train.LoadCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	m, err := fromParams(dir, ck.Params)
	if err != nil {
		return nil, err
	}
	m.pending = ck.Optimizer
	return m, nil
}

type model struct {
	raw     []byte
	m       *transformer.Model
	grads   *llama.Params
	opt     *adamw.AdamW
	pending *optim.State // loaded before the optimizer is configured
}

func (c *model) toLlama(b conformance.Batch) *llama.Batch {
	lb := &llama.Batch{B: b.BatchSize, T: b.SeqLen, Tokens: b.Tokens, Segments: b.SegmentIDs, Positions: b.Positions,
		LossMask: make([]bool, len(b.LossMask))}
	for i, v := range b.LossMask {
		lb.LossMask[i] = v != 0
	}
	return lb
}

func (c *model) lossAndGrad(b conformance.Batch, zLoss float64) (llama.LossResult, error) {
	lb := c.toLlama(b)
	if len(b.LossMask) != b.BatchSize*b.SeqLen {
		return llama.LossResult{}, fmt.Errorf("cpu: loss mask of %d for %d×%d", len(b.LossMask), b.BatchSize, b.SeqLen)
	}
	if err := lb.Validate(c.m.Config); err != nil {
		return llama.LossResult{}, err
	}
	c.grads.Zero()
	scale := float32(1)
	if n := lb.TrainedCount(); n > 0 {
		scale = 1 / float32(n)
	}
	return c.m.LossAndGrad(lb, llama.LossOptions{ZLossWeight: zLoss}, c.grads, scale)
}

func (c *model) LossAndGrads(ctx context.Context, b conformance.Batch, zLoss float64) (float64, map[string][]float32, error) {
	res, err := c.lossAndGrad(b, zLoss)
	if err != nil {
		return 0, nil, err
	}
	out := map[string][]float32{}
	for _, t := range c.grads.Tensors() {
		out[t.Name] = append([]float32(nil), t.Data...)
	}
	return res.ObjectiveMean(), out, nil
}

func (c *model) TrainStep(ctx context.Context, b conformance.Batch, o conformance.Optim, lr float64) (float64, error) {
	res, err := c.lossAndGrad(b, o.ZLossWeight)
	if err != nil {
		return 0, err
	}
	var ps []adamw.Param
	for _, t := range c.m.Params.Tensors() {
		ps = append(ps, adamw.Param{Name: t.Name, Data: t.Data, Grad: c.grads.Tensor(t.Name).Data, Decay: optim.LevanterWeightDecay(t.Name)})
	}
	cfg := optim.AdamWConfig{Beta1: o.Beta1, Beta2: o.Beta2, Epsilon: o.Eps, WeightDecay: o.WeightDecay, MaxGradNorm: o.MaxGradNorm}
	if c.opt == nil {
		if c.opt, err = adamw.NewAdamW(cfg, ps); err != nil {
			return 0, err
		}
		if c.pending != nil {
			if err := c.opt.LoadState(c.pending); err != nil {
				return 0, err
			}
			c.pending = nil
		}
	}
	c.opt.Config = cfg
	if _, err := c.opt.Step(ps, lr); err != nil {
		return 0, err
	}
	return res.Mean(), nil
}

func (c *model) Weights(ctx context.Context) (map[string][]float32, error) {
	out := map[string][]float32{}
	for _, t := range c.m.Params.Tensors() {
		out[t.Name] = append([]float32(nil), t.Data...)
	}
	return out, nil
}

func (c *model) Greedy(ctx context.Context, prompt []int32, n int) ([]int32, error) {
	toks := append([]int32(nil), prompt...)
	V := c.m.Config.VocabSize
	for range n {
		lg, err := c.m.Logits(&llama.Batch{B: 1, T: len(toks), Tokens: toks}, []int{len(toks) - 1})
		if err != nil {
			return nil, err
		}
		best := 0
		for j, v := range lg[:V] {
			if v > lg[best] {
				best = j
			}
		}
		toks = append(toks, int32(best))
	}
	return toks[len(prompt):], nil
}

func (c *model) SaveCheckpoint(ctx context.Context, dir string) error {
	var st *optim.State
	switch {
	case c.opt != nil:
		st = &c.opt.State
	case c.pending != nil:
		st = c.pending
	}
	var step int64
	if st != nil {
		step = st.Step
	}
	return train.SaveCheckpoint(dir, step, c.m.Params, st, train.TrainerState{Backend: "cpu"}, false, "")
}

func (c *model) ExportHF(ctx context.Context, dir string) error {
	return weights.ExportHF(dir, c.m.Params, weights.ExportOptions{})
}

func (c *model) Close() error { return nil }
