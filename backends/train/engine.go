package train

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/backends/llama"
	"github.com/marin-go/marin/backends/optim"
)

// Engine runs the numeric part of training for Job: forward, backward and
// the AdamW update. The cpu reference (NewCPUEngine) uses backends/llama and
// backends/optim; the gomlx backend supplies its own, so both share this
// package's data order, schedule, metrics, checkpoints and exports.
type Engine interface {
	// Step runs forward and backward over b in micro-batches of micro rows,
	// weighting them so the gradient is the mean over b's trained tokens
	// (as one big batch would give), then applies one AdamW update at lr.
	// The LossResult holds sums over b.
	Step(ctx context.Context, b *llama.Batch, micro int, lr float64) (llama.LossResult, optim.StepInfo, error)
	// Eval returns b's loss without gradients (sums).
	Eval(ctx context.Context, b *llama.Batch) (llama.LossResult, error)
	// Params returns the current weights (for checkpoints and exports).
	Params(cfg llama.Config) (*llama.Params, error)
	// OptimizerState returns AdamW's state (nil before the first update).
	OptimizerState() (*optim.State, error)
	// LoadOptimizerState restores AdamW's state when resuming.
	LoadOptimizerState(*optim.State) error
}

// EngineFactory makes an engine that starts from params.
type EngineFactory func(params *llama.Params, adamw optim.AdamWConfig, zLossWeight float64) (Engine, error)

// cpuEngine is the pure-Go reference.
type cpuEngine struct {
	params  *llama.Params
	model   *llama.Model
	grads   *llama.Params
	oparams []optim.Param
	opt     *optim.AdamW
	opts    llama.LossOptions
	batch   *llama.Batch // micro-batch buffer
}

// NewCPUEngine is the cpu reference engine. It trains params in place.
func NewCPUEngine(params *llama.Params, acfg optim.AdamWConfig, zLossWeight float64) (Engine, error) {
	model, err := llama.New(params.Config, params)
	if err != nil {
		return nil, err
	}
	grads, err := llama.NewParams(params.Config)
	if err != nil {
		return nil, err
	}
	oparams := make([]optim.Param, 0, len(params.Tensors()))
	for i, t := range params.Tensors() {
		oparams = append(oparams, optim.Param{Name: t.Name, Data: t.Data, Grad: grads.Tensors()[i].Data, Decay: optim.LevanterWeightDecay(t.Name)})
	}
	opt, err := optim.NewAdamW(acfg, oparams)
	if err != nil {
		return nil, err
	}
	return &cpuEngine{params: params, model: model, grads: grads, oparams: oparams, opt: opt, opts: llama.LossOptions{ZLossWeight: zLossWeight}}, nil
}

func (e *cpuEngine) Step(ctx context.Context, full *llama.Batch, micro int, lr float64) (llama.LossResult, optim.StepInfo, error) {
	B := full.B
	if micro <= 0 || B%micro != 0 {
		return llama.LossResult{}, optim.StepInfo{}, fmt.Errorf("micro-batch size %d does not divide batch %d", micro, B)
	}
	if e.batch == nil || e.batch.B != micro || e.batch.T != full.T {
		e.batch = llama.NewBatch(micro, full.T)
	}
	// Every micro-batch's gradient is scaled by 1/total, so the sum is the
	// mean over the whole batch.
	total := full.TrainedCount()
	e.grads.Zero()
	var res llama.LossResult
	if total > 0 {
		scale := 1 / float32(total)
		for m0 := 0; m0 < B; m0 += micro {
			if err := ctx.Err(); err != nil {
				return res, optim.StepInfo{}, err
			}
			sliceBatch(e.batch, full, m0, micro)
			r, err := e.model.LossAndGrad(e.batch, e.opts, e.grads, scale)
			if err != nil {
				return res, optim.StepInfo{}, err
			}
			res = res.Add(r)
		}
	}
	info, err := e.opt.Step(e.oparams, lr)
	return res, info, err
}

func (e *cpuEngine) Eval(_ context.Context, b *llama.Batch) (llama.LossResult, error) {
	return e.model.Loss(b, e.opts)
}

func (e *cpuEngine) Params(llama.Config) (*llama.Params, error) { return e.params, nil }

func (e *cpuEngine) OptimizerState() (*optim.State, error) { return &e.opt.State, nil }

func (e *cpuEngine) LoadOptimizerState(st *optim.State) error { return e.opt.LoadState(st) }
