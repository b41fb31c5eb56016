package train

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/plugins/sdk"
)

// OpName is the op default_sft steps run.
const OpName = "train"

// Op is the train op on one engine, for that engine's plugin: backend names
// it in checkpoints and logs, factory makes its engine. Everything but the
// numerics — config, data, schedule, checkpoints, exports, metrics — is
// shared by every engine.
func Op(backend string, factory EngineFactory) sdk.Op {
	return sdk.Op{
		Description: "train a Llama-family model on token caches (AdamW, checkpoints, hf/ exports, metrics.jsonl); resumes from its last checkpoint",
		Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
			return RunWith(ctx, req, r, backend, factory)
		},
	}
}

// RunWith runs the op for one step on factory's engine.
func RunWith(ctx context.Context, req *sdk.Request, r sdk.Reporter, backend string, factory EngineFactory) error {
	var cfg Config
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("train config of step %s: %v", req.StepName, err)}
	}
	out, err := sdk.LocalPath(req.OutputPath)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("train writes checkpoints to a local directory: output %s: %v", req.OutputPath, err)}
	}
	j := &Job{Config: &cfg, Out: out, Report: r, NewEngine: factory, BackendName: backend}
	return j.Run(ctx)
}
