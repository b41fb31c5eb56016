package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
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
	// New returns the engine factory for a step (its resources: threads,
	// device, accelerator runtime; its precision and checkpointing).
	New func(cfg *Config) (EngineFactory, error)
	// Plan, optional, checks a step's resources while the host plans it
	// (e.g. that an accelerator's runtime is present). It returns
	// diagnostics with config attributes such as "resources.device".
	Plan func(res Resources) []*sdk.Diagnostic
	// Profile, optional, says how the engine would run a step: its
	// precision policy and checkpointing resolved, and the devices it
	// trains on; an error names what the engine cannot do (attribute
	// "precision" or "gradient_checkpointing"). Without it the engine
	// trains in float32, keeping every activation, on one device.
	Profile func(cfg *Config) (Profile, error)
}

// Profile is how an engine runs a step: what its memory plan assumes.
type Profile struct {
	Precision     Precision
	Checkpointing bool
	// Devices the step trains on; 0 when not known while planning (all of
	// a machine's): the plan then assumes one.
	Devices int
}

// ProfileOf resolves how e runs cfg.
func (e EngineSpec) ProfileOf(cfg *Config) (Profile, error) {
	if e.Profile != nil {
		return e.Profile(cfg)
	}
	if cfg.Precision != "" {
		p, err := ParsePrecision(cfg.Precision)
		if err != nil {
			return Profile{}, &sdk.Diagnostic{Summary: err.Error(), Attribute: "precision"}
		}
		if p != PrecisionF32 {
			return Profile{}, &sdk.Diagnostic{Summary: fmt.Sprintf("the %s engine trains in float32 only, not %s (use resources.backend = \"gomlx\")", e.Name, p), Attribute: "precision"}
		}
	}
	if cfg.GradientCheckpointing != nil && *cfg.GradientCheckpointing {
		return Profile{}, &sdk.Diagnostic{Summary: fmt.Sprintf("the %s engine keeps every activation: gradient_checkpointing needs resources.backend = \"gomlx\"", e.Name), Attribute: "gradient_checkpointing"}
	}
	return Profile{Precision: PrecisionF32, Devices: 1}, nil
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
	stage, err := storage.NewStage(req.OutputPath)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("train output %s: %v", req.OutputPath, err)}
	}
	defer stage.Close()
	prof, err := e.ProfileOf(&cfg)
	if err != nil {
		return err
	}
	factory, err := e.New(&cfg)
	if err != nil {
		return err
	}
	j := &Job{Config: &cfg, Out: stage.Dir, Stage: stage, Report: r, NewEngine: factory, BackendName: e.Name, Profile: &prof}
	return j.urlError(j.Run(ctx))
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
	if cfg.TrainBatchSize == 0 {
		cfg.TrainBatchSize = 128 // the schema's default
	}
	mcfg, source, attr, err := planModelConfig(req, &cfg)
	switch {
	case err != nil:
		res.Errorf(attr, "%v", err)
	case mcfg != nil:
		n := mcfg.Normalized()
		if cfg.MaxSeqLen > n.MaxPositionEmbeddings {
			res.Errorf("max_seq_len", "%d exceeds the model's max_position_embeddings (%d)", cfg.MaxSeqLen, n.MaxPositionEmbeddings)
		}
		res.Notes = append(res.Notes, fmt.Sprintf("model: %s, %.3gM parameters, %d layers, hidden %d%s",
			n.ModelType, float64(n.NumParams())/1e6, n.NumHiddenLayers, n.HiddenSize, source))
	}
	if cfg.Lora != nil {
		planLoRA(res, &cfg, mcfg)
	}
	if e.Plan != nil {
		res.Diagnostics = append(res.Diagnostics, e.Plan(cfg.Resources)...)
	}
	prof, err := e.ProfileOf(&cfg)
	if err != nil {
		res.Diagnostics = append(res.Diagnostics, asDiagnostic(err, "precision"))
		return res, nil
	}
	if mcfg != nil && cfg.MaxSeqLen > 1 && cfg.TrainBatchSize > 0 {
		planMemory(res, req, &cfg, *mcfg, prof, e)
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
	a, err := lora.Measure(spec, *mcfg) // not lora.New: an 8B model's modules_to_save are gigabytes
	if err != nil {
		res.Errorf(loraAttr(err), "%v", err)
		return
	}
	n := mcfg.Normalized().NumParams()
	res.Notes = append(res.Notes, fmt.Sprintf("LoRA: r %d over %d projections, %d tensors trained in full: %.3gM trainable parameters (%.2g%% of the model)",
		spec.R, a.Modules, a.Full, float64(a.Params())/1e6, 100*float64(a.Params())/float64(n)))
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

func asDiagnostic(err error, attr string) *sdk.Diagnostic {
	var d *sdk.Diagnostic
	if errors.As(err, &d) {
		return d
	}
	return &sdk.Diagnostic{Summary: err.Error(), Attribute: attr}
}

// planModelConfig returns the model's config when it is known at plan
// time: model_config itself, config.json of a local model directory that
// exists, or the shipped config of a known hub model (KnownHubModel); a
// hub id marin does not know or another step's output is known only
// later. source says where a hub model's config came from.
func planModelConfig(req *sdk.PlanRequest, cfg *Config) (c *llama.Config, source, attr string, err error) {
	if hasModelConfig(cfg.ModelConfig) {
		c, err := llama.ParseConfig(cfg.ModelConfig)
		if err != nil {
			return nil, "", "model_config", err
		}
		return &c, "", "", nil
	}
	p := cfg.ModelNameOrPath
	if p == nil || *p == "" || req.IsStepOutput(*p) {
		return nil, "", "", nil
	}
	dir, err := sdk.LocalPath(*p)
	if err != nil {
		return nil, "", "", nil // a remote URL: read when the step runs
	}
	explicit := strings.HasPrefix(*p, "file://") || filepath.IsAbs(*p) || strings.HasPrefix(*p, ".")
	if _, err := os.Stat(dir); err != nil {
		if explicit {
			return nil, "", "model_name_or_path", fmt.Errorf("%s: no such model directory", *p)
		}
		// A hub id such as meta-llama/Llama-3.1-8B.
		hm, ok, err := KnownHubModel(*p)
		if err != nil || !ok {
			return nil, "", "", nil
		}
		return &hm.Config, fmt.Sprintf(" (config.json of %s@%.7s, shipped with marin)", hm.ID, hm.Revision), "", nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, "", "", nil // a training step's output: its latest export is found when the step runs
	}
	mc, err := llama.ParseConfig(raw)
	if err != nil {
		return nil, "", "model_name_or_path", fmt.Errorf("%s/config.json: %w", *p, err)
	}
	return &mc, "", "", nil
}
