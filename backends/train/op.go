package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/plugins/sdk"
)

// OpName is the op default_sft steps run.
const OpName = "train"

// EngineSpec is what an engine's plugin tells the train op about itself.
type EngineSpec struct {
	// Name is the backend's name, recorded in checkpoints and logs.
	Name string
	// Devices are the resources.device values the engine can use ("auto"
	// among them: its best available device).
	Devices []string
	// New returns the engine factory for a step's resources (threads,
	// device, accelerator runtime).
	New func(res Resources) (EngineFactory, error)
	// Plan, optional, checks a step's resources while the host plans it
	// (e.g. that an accelerator's runtime is present). It returns
	// diagnostics with config attributes such as "resources.device".
	Plan func(res Resources) []*sdk.Diagnostic
}

// Op is the train op on one engine, for that engine's plugin. Everything
// but the numerics — config, data, schedule, checkpoints, exports, metrics
// — is shared by every engine.
func Op(e EngineSpec) sdk.Op {
	return sdk.Op{
		Description: "train a Llama-family model on token caches (AdamW, checkpoints, hf/ exports, metrics.jsonl); resumes from its last checkpoint",
		Schema:      Schema(e.Devices),
		Plan: func(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
			return plan(req, e)
		},
		Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
			return RunWith(ctx, req, r, e)
		},
	}
}

// RunWith runs the op for one step on e's engine.
func RunWith(ctx context.Context, req *sdk.Request, r sdk.Reporter, e EngineSpec) error {
	var cfg Config
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.resolve(); err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("train config of step %s: %v", req.StepName, err)}
	}
	out, err := sdk.LocalPath(req.OutputPath)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("train writes checkpoints to a local directory: output %s: %v", req.OutputPath, err)}
	}
	factory, err := e.New(cfg.Resources)
	if err != nil {
		return err
	}
	j := &Job{Config: &cfg, Out: out, Report: r, NewEngine: factory, BackendName: e.Name}
	return j.Run(ctx)
}

// plan checks what the schema cannot: the model's own limits against the
// config when the model is known now (inline model_config, or a local
// model directory), and the engine's resources.
func plan(req *sdk.PlanRequest, e EngineSpec) (*sdk.PlanResult, error) {
	res := &sdk.PlanResult{}
	var cfg Config
	if err := req.Decode(&cfg); err != nil {
		return res, nil // the schema's issues are reported by the host
	}
	if cfg.MaxSeqLen == 0 {
		cfg.MaxSeqLen = cfg.Data.MaxSeqLen
	}
	mcfg, attr, err := planModelConfig(req, &cfg)
	switch {
	case err != nil:
		res.Errorf(attr, "%v", err)
	case mcfg != nil:
		n := mcfg.Normalized()
		if cfg.MaxSeqLen > n.MaxPositionEmbeddings {
			res.Errorf("max_seq_len", "%d exceeds the model's max_position_embeddings (%d)", cfg.MaxSeqLen, n.MaxPositionEmbeddings)
		}
		res.Notes = append(res.Notes, fmt.Sprintf("model: %s, %.3gM parameters, %d layers, hidden %d",
			n.ModelType, float64(n.NumParams())/1e6, n.NumHiddenLayers, n.HiddenSize))
	}
	if cfg.Lora != nil {
		planLoRA(res, &cfg, mcfg)
	}
	if e.Plan != nil {
		res.Diagnostics = append(res.Diagnostics, e.Plan(cfg.Resources)...)
	}
	return res, nil
}

// planLoRA checks the lora config: its values, and the adapter it lays out
// over the model when the model is known now.
func planLoRA(res *sdk.PlanResult, cfg *Config, mcfg *llama.Config) {
	if hasModelConfig(cfg.ModelConfig) {
		res.Errorf("lora", "LoRA trains an adapter over a pretrained model, but model_config trains a new model from scratch: give model_name_or_path or initialize_from_checkpoint_path")
		return
	}
	spec, err := cfg.Lora.Spec()
	if err != nil {
		res.Errorf(loraAttr(err), "%v", err)
		return
	}
	if mcfg == nil {
		return
	}
	a, err := lora.New(spec, *mcfg)
	if err != nil {
		res.Errorf(loraAttr(err), "%v", err)
		return
	}
	n := mcfg.Normalized().NumParams()
	res.Notes = append(res.Notes, fmt.Sprintf("LoRA: r %d over %d projections, %d tensors trained in full: %.3gM trainable parameters (%.2g%% of the model)",
		spec.R, len(a.Modules), len(a.Full), float64(a.NumParams())/1e6, 100*float64(a.NumParams())/float64(n)))
}

// loraAttr is the lora config key an error is about.
func loraAttr(err error) string {
	msg := err.Error()
	for _, k := range []string{"target_modules", "modules_to_save", "bias", "dropout", "alpha"} {
		if strings.Contains(msg, k) {
			return "lora." + k
		}
	}
	if strings.Contains(msg, "r must") {
		return "lora.r"
	}
	return "lora"
}

// planModelConfig returns the model's config when it is known at plan
// time: model_config itself, or config.json of a local model directory
// that exists (a hub id or another step's output is known only later).
func planModelConfig(req *sdk.PlanRequest, cfg *Config) (*llama.Config, string, error) {
	if hasModelConfig(cfg.ModelConfig) {
		c, err := llama.ParseConfig(cfg.ModelConfig)
		if err != nil {
			return nil, "model_config", err
		}
		return &c, "", nil
	}
	p := cfg.ModelNameOrPath
	if p == nil || *p == "" || req.IsStepOutput(*p) {
		return nil, "", nil
	}
	dir, err := sdk.LocalPath(*p)
	if err != nil {
		return nil, "", nil // a remote URL: read when the step runs
	}
	explicit := strings.HasPrefix(*p, "file://") || filepath.IsAbs(*p) || strings.HasPrefix(*p, ".")
	if _, err := os.Stat(dir); err != nil {
		if explicit {
			return nil, "model_name_or_path", fmt.Errorf("%s: no such model directory", *p)
		}
		return nil, "", nil // a hub id such as meta-llama/Llama-3.1-8B
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, "", nil // a training step's output: its latest export is found when the step runs
	}
	c, err := llama.ParseConfig(raw)
	if err != nil {
		return nil, "model_name_or_path", fmt.Errorf("%s/config.json: %w", *p, err)
	}
	return &c, "", nil
}
