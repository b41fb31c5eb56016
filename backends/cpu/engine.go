package cpu

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/backends/cpu/adamw"
	"github.com/marin-go/marin/backends/cpu/generate"
	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/cpu/transformer"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
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
	params  *llama.Params // trained in place; with LoRA, the frozen base
	model   *transformer.Model
	grads   *llama.Params // nil with LoRA
	oparams []adamw.Param
	opt     *adamw.AdamW
	opts    llama.LossOptions

	// LoRA: the adapter trained in place, its gradients, and the dropout.
	adapter  *lora.Adapter
	agrads   *lora.Adapter
	dropRate float64
	seed     int64
}

// NewEngine is the CPU engine (a train.EngineFactory). It trains params in
// place, or with s.LoRA the adapter in place over frozen params.
func NewEngine(params *llama.Params, s train.Setup) (train.Engine, error) {
	e := &cpuEngine{params: params, opts: llama.LossOptions{ZLossWeight: s.ZLossWeight}, seed: s.Seed}
	view := params
	if s.LoRA != nil {
		if err := s.LoRA.Check(params.Config); err != nil {
			return nil, err
		}
		var err error
		if view, err = s.LoRA.View(params); err != nil {
			return nil, err
		}
	}
	model, err := transformer.New(params.Config, view)
	if err != nil {
		return nil, err
	}
	e.model = model
	if s.LoRA != nil {
		if err := model.SetAdapter(s.LoRA); err != nil {
			return nil, err
		}
		e.adapter, e.agrads, e.dropRate = s.LoRA, s.LoRA.ZerosLike(), s.LoRA.Spec.Dropout
		gt := e.agrads.Tensors()
		for i, t := range s.LoRA.Tensors() {
			e.oparams = append(e.oparams, adamw.Param{Name: t.Name, Data: t.Data, Grad: gt[i].Data, Decay: lora.Decays(t.Name, optim.LevanterWeightDecay)})
		}
	} else {
		if e.grads, err = llama.NewParams(params.Config); err != nil {
			return nil, err
		}
		for i, t := range params.Tensors() {
			e.oparams = append(e.oparams, adamw.Param{Name: t.Name, Data: t.Data, Grad: e.grads.Tensors()[i].Data, Decay: optim.LevanterWeightDecay(t.Name)})
		}
	}
	if e.opt, err = adamw.NewAdamW(s.AdamW, e.oparams); err != nil {
		return nil, err
	}
	return e, nil
}

// dropout is the LoRA dropout of the next update, for a pass starting at
// row row0 of its batch of rows of t tokens.
func (e *cpuEngine) dropout(row0, t int) lora.Dropout {
	return lora.Dropout{Rate: e.dropRate, Step: lora.StepKey(e.seed, e.opt.State.Step+1), Token0: uint32(row0 * t)}
}

// lossAndGrad adds scale·gradient of b (rows row0.. of the step's batch)
// into the engine's gradients.
func (e *cpuEngine) lossAndGrad(b *llama.Batch, row0 int, scale float32) (llama.LossResult, error) {
	if e.adapter != nil {
		return e.model.LossAndGradLoRA(b, e.opts, e.dropout(row0, b.T), e.agrads, scale)
	}
	return e.model.LossAndGrad(b, e.opts, e.grads, scale)
}

func (e *cpuEngine) zeroGrads() {
	if e.adapter != nil {
		zero(e.agrads.Flat())
		return
	}
	zero(e.grads.Flat())
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
	e.zeroGrads()
	var res llama.LossResult
	if total > 0 {
		scale := 1 / float32(total)
		for m0 := 0; m0 < B; m0 += micro {
			if err := ctx.Err(); err != nil {
				return res, optim.StepInfo{}, err
			}
			r, err := e.lossAndGrad(full.Rows(m0, micro), m0, scale)
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
func (e *cpuEngine) Grads(ctx context.Context, b *llama.Batch) (llama.LossResult, []*llama.Tensor, error) {
	if err := b.Validate(e.params.Config); err != nil {
		return llama.LossResult{}, nil, err
	}
	if err := ctx.Err(); err != nil {
		return llama.LossResult{}, nil, err
	}
	e.zeroGrads()
	scale := float32(1)
	if n := b.TrainedCount(); n > 0 {
		scale = 1 / float32(n)
	}
	res, err := e.lossAndGrad(b, 0, scale)
	if err != nil {
		return llama.LossResult{}, nil, err
	}
	if e.adapter != nil {
		return res, e.agrads.Clone().Tensors(), nil
	}
	return res, e.grads.Clone().Tensors(), nil
}

func (e *cpuEngine) Eval(_ context.Context, b *llama.Batch) (llama.LossResult, error) {
	return e.model.Loss(b, e.opts)
}

// Params returns the weights: the trained ones, or with LoRA the base with
// the adapter merged (a copy).
func (e *cpuEngine) Params() (*llama.Params, error) {
	if e.adapter != nil {
		return e.adapter.Merge(e.params)
	}
	return e.params, nil
}

// Adapter returns the adapter being trained (nil without LoRA).
func (e *cpuEngine) Adapter() (*lora.Adapter, error) { return e.adapter, nil }

func (e *cpuEngine) OptimizerState() (*optim.State, error) { return &e.opt.State, nil }

func (e *cpuEngine) LoadOptimizerState(st *optim.State) error { return e.opt.LoadState(st) }

func (e *cpuEngine) PeakFLOPS() float64 { return PeakFLOPS() }

// Close lets go of the weights (the caller's params stay as trained).
func (e *cpuEngine) Close() error { e.model, e.grads, e.agrads = nil, nil, nil; return nil }

// zero clears x in parallel.
func zero(x []float32) {
	kernels.ParallelRange(len(x), 1<<18, func(lo, hi int) { clear(x[lo:hi]) })
}
