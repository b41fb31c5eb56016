package gomlx

import (
	"context"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
)

// TrainEngine puts a Model behind the types of backends/train's step loop
// (llama.Batch, llama.LossResult, optim.StepInfo, llama.Params,
// optim.State), so that loop can drive either backend: the same data
// order, schedule, metrics, checkpoints and exports, with the forward,
// backward and AdamW update on GoMLX.
type TrainEngine struct {
	M *Model
}

// BatchFromLlama converts a backends/model/llama batch (nil Segments: one document
// per row).
func BatchFromLlama(b *llama.Batch) Batch {
	n := b.B * b.T
	out := Batch{BatchSize: b.B, SeqLen: b.T, Tokens: b.Tokens, Positions: b.Positions, SegmentIDs: b.Segments,
		LossMask: make([]float32, n)}
	if out.SegmentIDs == nil {
		out.SegmentIDs = make([]int32, n)
	}
	for i, v := range b.LossMask {
		if v {
			out.LossMask[i] = 1
		}
	}
	return out
}

// Step runs forward and backward over b in micro-batches of micro rows and
// applies one AdamW update at lr: what backends/train does with
// llama.Model.LossAndGrad and optim.AdamW.Step.
func (e TrainEngine) Step(ctx context.Context, b *llama.Batch, micro int, lr float64) (llama.LossResult, optim.StepInfo, error) {
	if micro <= 0 || b.B%micro != 0 {
		return llama.LossResult{}, optim.StepInfo{}, fmt.Errorf("gomlx: micro-batch %d does not divide batch %d", micro, b.B)
	}
	whole := BatchFromLlama(b)
	var parts []Batch
	for r := 0; r < b.B; r += micro {
		lo, hi := r*b.T, (r+micro)*b.T
		p := Batch{BatchSize: micro, SeqLen: b.T, Tokens: whole.Tokens[lo:hi], LossMask: whole.LossMask[lo:hi], SegmentIDs: whole.SegmentIDs[lo:hi]}
		if whole.Positions != nil {
			p.Positions = whole.Positions[lo:hi]
		}
		parts = append(parts, p)
	}
	r, err := e.M.TrainStep(ctx, lr, parts...)
	if err != nil {
		return llama.LossResult{}, optim.StepInfo{}, err
	}
	o := e.M.optimNow()
	info := optim.StepInfo{GradNorm: r.GradNorm, LR: lr, Clipped: o.MaxGradNorm > 0 && !(r.GradNorm < o.MaxGradNorm)}
	if math.IsNaN(r.GradNorm) || math.IsInf(r.GradNorm, 0) {
		return llama.LossResult{}, info, fmt.Errorf("gomlx step: %w (%g)", optim.ErrNonFinite, r.GradNorm)
	}
	return llama.LossResult{Loss: r.LossSum, ZLoss: r.ZLossSum, Count: int(r.Tokens)}, info, nil
}

// Eval returns b's loss without gradients.
func (e TrainEngine) Eval(ctx context.Context, b *llama.Batch) (llama.LossResult, error) {
	r, err := e.M.Eval(ctx, BatchFromLlama(b))
	return llama.LossResult{Loss: r.LossSum, ZLoss: r.ZLossSum, Count: int(r.Tokens)}, err
}

// Params copies the weights into backends/model/llama's parameters (for
// checkpoints and exports).
func (e TrainEngine) Params(cfg llama.Config) (*llama.Params, error) {
	w, err := e.M.Weights()
	if err != nil {
		return nil, err
	}
	p, err := llama.NewParams(cfg)
	if err != nil {
		return nil, err
	}
	for _, t := range p.Tensors() {
		src, ok := w[t.Name]
		if !ok || len(src) != len(t.Data) {
			return nil, fmt.Errorf("gomlx: no weights for %s", t.Name)
		}
		copy(t.Data, src)
	}
	return p, nil
}

// OptimizerState returns AdamW's state in backends/model/optim's form (nil
// before the first update).
func (e TrainEngine) OptimizerState() (*optim.State, error) {
	mom, vel, steps, err := e.M.OptimizerState()
	if err != nil || mom == nil {
		return nil, err
	}
	st := &optim.State{Step: int64(steps)}
	for _, s := range e.M.specs {
		st.Names = append(st.Names, s.Name)
		st.M = append(st.M, mom[s.Name])
		st.V = append(st.V, vel[s.Name])
	}
	return st, nil
}

// LoadOptimizerState restores AdamW's state (a resumed checkpoint).
func (e TrainEngine) LoadOptimizerState(st *optim.State) error {
	if st == nil {
		return e.M.SetOptimizerState(nil, nil, 0)
	}
	mom, vel := map[string][]float32{}, map[string][]float32{}
	for i, name := range st.Names {
		mom[name], vel[name] = st.M[i], st.V[i]
	}
	return e.M.SetOptimizerState(mom, vel, int(st.Step))
}

// SetAdamW sets the optimizer's hyper-parameters from backends/model/optim's config.
func (e TrainEngine) SetAdamW(c optim.AdamWConfig, zLossWeight float64) {
	e.M.SetOptim(Optim{Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Epsilon, WeightDecay: c.WeightDecay, MaxGradNorm: c.MaxGradNorm, ZLossWeight: zLossWeight})
}

// PeakFLOPS is the matmul rate of the device the model runs on, in its
// compute dtype (bf16 on accelerators): the figure MFU is reported against.
func (e TrainEngine) PeakFLOPS() float64 {
	dt := dtypes.Float32
	if e.M.opts.bf16() {
		dt = dtypes.BFloat16
	}
	return matmulPeak(e.M.backend, dt, e.M.opts.Engine == EngineXLA) * float64(max(1, len(e.M.dev)))
}
