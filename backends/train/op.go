package train

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/plugins/sdk"
)

// OpName is the op default_sft steps run.
const OpName = "train"

// Op is the train op, for a plugin's op table.
func Op() sdk.Op {
	return sdk.Op{
		Description: "train a Llama-family model on token caches (AdamW, checkpoints, hf/ exports, metrics.jsonl); resumes from its last checkpoint",
		Run:         Run,
	}
}

// Run runs the op for one step on the cpu reference engine.
func Run(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	return RunWith(ctx, req, r, "", nil)
}

// RunWith runs the op on another backend's engine (backend names it in
// checkpoints; nil factory: the cpu engine). Everything but the numerics —
// config, data, schedule, checkpoints, exports, metrics — is shared.
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
