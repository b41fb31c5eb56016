package gomlx

import (
	"context"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/train"
)

// A Model is backends/train's Engine on GoMLX: the train op's loop drives
// it with the same data order, schedule, metrics, checkpoints and exports
// as the cpu engine, the forward, backward and AdamW update running here.
var _ train.Engine = (*Model)(nil)

// EngineFactory returns a backends/train engine that runs on GoMLX with opts.
func EngineFactory(opts Options) train.EngineFactory {
	return func(params *llama.Params, s train.Setup) (train.Engine, error) {
		var m *Model
		var err error
		if s.LoRA != nil {
			m, err = NewLoRA(params, s.LoRA, opts, s.Seed)
		} else {
			m, err = New(params, opts)
		}
		if err != nil {
			return nil, err
		}
		m.SetAdamW(s.AdamW, s.ZLossWeight)
		return m, nil
	}
}

// Step runs forward and backward over b in micro-batches of micro rows and
// applies one AdamW update at lr (train.Engine).
func (m *Model) Step(ctx context.Context, b *llama.Batch, micro int, lr float64) (llama.LossResult, optim.StepInfo, error) {
	if micro <= 0 || b.B%micro != 0 {
		return llama.LossResult{}, optim.StepInfo{}, fmt.Errorf("gomlx: micro-batch %d does not divide batch %d", micro, b.B)
	}
	if err := b.Validate(m.cfg); err != nil {
		return llama.LossResult{}, optim.StepInfo{}, err
	}
	var parts []*llama.Batch
	for r := 0; r < b.B; r += micro {
		parts = append(parts, b.Rows(r, micro))
	}
	res, info, err := m.TrainStep(ctx, lr, parts...)
	if err != nil {
		return llama.LossResult{}, info, err
	}
	if math.IsNaN(info.GradNorm) || math.IsInf(info.GradNorm, 0) {
		return llama.LossResult{}, info, fmt.Errorf("gomlx step: %w (%g)", optim.ErrNonFinite, info.GradNorm)
	}
	return res, info, nil
}

// PeakFLOPS is the matmul rate of the device the model runs on, in its
// compute dtype (bf16 on accelerators): the figure MFU is reported against.
func (m *Model) PeakFLOPS() float64 {
	dt := dtypes.Float32
	if m.opts.bf16() {
		dt = dtypes.BFloat16
	}
	return matmulPeak(m.backend, dt, m.opts.Engine == EngineXLA) * float64(max(1, len(m.dev)))
}
