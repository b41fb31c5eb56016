package cpu

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/backends/cpu/adamw"
	"github.com/marin-go/marin/backends/cpu/generate"
	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/cpu/transformer"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/train"
)

var (
	_ train.EngineFactory   = NewEngine
	_ sample.DecoderFactory = NewDecoder
)

// NewDecoder is the CPU engine's decoder (a sample.DecoderFactory):
// backends/cpu/generate's key/value cache over params, which it reads as
// they are at each Feed.
func NewDecoder(params *llama.Params, rows, maxLen int) (sample.Decoder, error) {
	d, err := generate.NewDecoder(params, rows, maxLen)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// cpuEngine is the pure-Go reference.
type cpuEngine struct {
	params  *llama.Params
	model   *transformer.Model
	grads   *llama.Params
	oparams []adamw.Param
	opt     *adamw.AdamW
	opts    llama.LossOptions
}

// NewEngine is the CPU engine (a train.EngineFactory). It trains params in place.
func NewEngine(params *llama.Params, acfg optim.AdamWConfig, zLossWeight float64) (train.Engine, error) {
	model, err := transformer.New(params.Config, params)
	if err != nil {
		return nil, err
	}
	grads, err := llama.NewParams(params.Config)
	if err != nil {
		return nil, err
	}
	oparams := make([]adamw.Param, 0, len(params.Tensors()))
	for i, t := range params.Tensors() {
		oparams = append(oparams, adamw.Param{Name: t.Name, Data: t.Data, Grad: grads.Tensors()[i].Data, Decay: optim.LevanterWeightDecay(t.Name)})
	}
	opt, err := adamw.NewAdamW(acfg, oparams)
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
	if err := full.Validate(e.params.Config); err != nil {
		return llama.LossResult{}, optim.StepInfo{}, err
	}
	// Every micro-batch's gradient is scaled by 1/total, so the sum is the
	// mean over the whole batch.
	total := full.TrainedCount()
	zero(e.grads.Flat())
	var res llama.LossResult
	if total > 0 {
		scale := 1 / float32(total)
		for m0 := 0; m0 < B; m0 += micro {
			if err := ctx.Err(); err != nil {
				return res, optim.StepInfo{}, err
			}
			r, err := e.model.LossAndGrad(full.Rows(m0, micro), e.opts, e.grads, scale)
			if err != nil {
				return res, optim.StepInfo{}, err
			}
			res = res.Add(r)
		}
	}
	info, err := e.opt.Step(e.oparams, lr)
	return res, info, err
}

// Grads returns b's loss sums and the gradient of the mean objective over
// its trained tokens, changing neither weights nor optimizer state.
func (e *cpuEngine) Grads(ctx context.Context, b *llama.Batch) (llama.LossResult, *llama.Params, error) {
	if err := b.Validate(e.params.Config); err != nil {
		return llama.LossResult{}, nil, err
	}
	if err := ctx.Err(); err != nil {
		return llama.LossResult{}, nil, err
	}
	zero(e.grads.Flat())
	scale := float32(1)
	if n := b.TrainedCount(); n > 0 {
		scale = 1 / float32(n)
	}
	res, err := e.model.LossAndGrad(b, e.opts, e.grads, scale)
	if err != nil {
		return llama.LossResult{}, nil, err
	}
	return res, e.grads.Clone(), nil
}

func (e *cpuEngine) Eval(_ context.Context, b *llama.Batch) (llama.LossResult, error) {
	return e.model.Loss(b, e.opts)
}

func (e *cpuEngine) Params() (*llama.Params, error) { return e.params, nil }

func (e *cpuEngine) OptimizerState() (*optim.State, error) { return &e.opt.State, nil }

func (e *cpuEngine) LoadOptimizerState(st *optim.State) error { return e.opt.LoadState(st) }

func (e *cpuEngine) PeakFLOPS() float64 { return PeakFLOPS() }

// Close lets go of the weights (the caller's params stay as trained).
func (e *cpuEngine) Close() error { e.model, e.grads = nil, nil; return nil }

// zero clears x in parallel.
func zero(x []float32) {
	kernels.ParallelRange(len(x), 1<<18, func(lo, hi int) { clear(x[lo:hi]) })
}
