package train

import (
	"context"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
)

// Engine runs the numeric part of training for Job: forward, backward and
// the AdamW update. Each engine (backends/cpu, backends/gomlx) supplies one,
// so all share this package's data order, schedule, metrics, checkpoints
// and exports; backends/conformance checks every engine through this
// interface.
type Engine interface {
	// Step runs forward and backward over b in micro-batches of micro rows,
	// weighting them so the gradient is the mean over b's trained tokens
	// (as one big batch would give), then applies one AdamW update at lr.
	// The LossResult holds sums over b.
	Step(ctx context.Context, b *llama.Batch, micro int, lr float64) (llama.LossResult, optim.StepInfo, error)
	// Grads returns b's loss sums and the gradient of the objective's mean
	// over b's trained tokens (cross-entropy plus z-loss: what a step on b
	// alone would clip and apply), changing neither weights nor optimizer
	// state. The loop does not call it; backends/conformance checks it
	// against finite differences.
	Grads(ctx context.Context, b *llama.Batch) (llama.LossResult, *llama.Params, error)
	// Eval returns b's loss without gradients (sums).
	Eval(ctx context.Context, b *llama.Batch) (llama.LossResult, error)
	// Params returns the current weights (for checkpoints and exports).
	Params() (*llama.Params, error)
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

// EngineFactory makes an engine that starts from params.
type EngineFactory func(params *llama.Params, adamw optim.AdamWConfig, zLossWeight float64) (Engine, error)
