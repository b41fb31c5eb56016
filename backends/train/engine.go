package train

import (
	"context"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
)

// Engine runs the numeric part of training for Job: forward, backward and
// the AdamW update. Each engine (backends/cpu, backends/gomlx) supplies one,
// so all share this package's data order, schedule, metrics, checkpoints
// and exports; backends/conformance checks every engine through this
// interface.
//
// An engine trains either every parameter of the model, or a LoRA adapter
// over frozen weights (Setup.LoRA): then only the adapter's tensors have
// gradients and optimizer state, and the adapter's dropout is drawn with
// lora.Dropout for update number OptimizerState().Step+1.
type Engine interface {
	// Step runs forward and backward over b in micro-batches of micro rows,
	// weighting them so the gradient is the mean over b's trained tokens
	// (as one big batch would give), then applies one AdamW update at lr.
	// The LossResult holds sums over b.
	Step(ctx context.Context, b *llama.Batch, micro int, lr float64) (llama.LossResult, optim.StepInfo, error)
	// Grads returns b's loss sums and the gradient of the objective's mean
	// over b's trained tokens (cross-entropy plus z-loss: what a step on b
	// alone would clip and apply, LoRA dropout included) with respect to
	// the trained tensors, named and ordered as the optimizer state names
	// them (llama.Params' tensors, or the adapter's), changing neither
	// weights nor optimizer state. The loop does not call it;
	// backends/conformance checks it against finite differences.
	Grads(ctx context.Context, b *llama.Batch) (llama.LossResult, []*llama.Tensor, error)
	// Eval returns b's loss without gradients (sums).
	Eval(ctx context.Context, b *llama.Batch) (llama.LossResult, error)
	// Params returns the weights the model computes with (for checkpoints
	// and exports): with LoRA, the base with the adapter merged.
	Params() (*llama.Params, error)
	// Adapter returns the LoRA adapter being trained, or nil when every
	// parameter is.
	Adapter() (*lora.Adapter, error)
	// OptimizerState returns AdamW's state (nil before the first update).
	OptimizerState() (*optim.State, error)
	// LoadOptimizerState restores AdamW's state when resuming.
	LoadOptimizerState(*optim.State) error
	// Close releases what the engine holds (device memory); the engine is
	// not used after it.
	Close() error
	// PeakFLOPS is the FLOP/s of the hardware the engine runs on, the
	// figure MFU is reported against (0: unknown, no MFU).
	PeakFLOPS() float64
}

// Setup says what an engine trains, and how.
type Setup struct {
	AdamW optim.AdamWConfig
	// ZLossWeight adds ZLossWeight·logsumexp² per trained token.
	ZLossWeight float64
	// LoRA, when not nil, is the adapter to train, from its current
	// values, over the frozen params (an engine trains it in place or a
	// copy: Engine.Adapter reads it back); nil trains every parameter.
	LoRA *lora.Adapter
	// Seed keys the LoRA dropout masks (lora.StepKey).
	Seed int64
}

// EngineFactory makes an engine that starts from params.
type EngineFactory func(params *llama.Params, s Setup) (Engine, error)
