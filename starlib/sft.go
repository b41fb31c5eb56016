package starlib

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"

	"github.com/marin-go/marin/host/graph"
)

// resourceConfigType says where a step runs. It never changes results, so
// it is recorded but not hashed. JaxDistributedConfig is an alias so
// Python-shaped scripts read the same. Which values are valid is the
// business of the plugins: backend names the backend plugin that trains
// (the host checks it against the plugins of kind backend), and each
// engine's op schema says which devices it can use.
var resourceConfigType = &recordType{
	name: "ResourceConfig",
	fields: []field{
		{name: "backend", kind: kindString, def: starlark.String("cpu"),
			doc: "compute backend: cpu (pure-Go reference) or gomlx (XLA)"},
		{name: "device", kind: kindString, def: starlark.String("auto"),
			doc: "device kind the backend uses: auto (its best available: an accelerator when its runtime is configured, else the CPU), cpu, cuda or tpu"},
		{name: "num_devices", kind: kindInt, def: starlark.MakeInt(0), doc: "devices to use, 0 for all"},
		{name: "node_count", kind: kindInt, def: starlark.MakeInt(1), doc: "nodes the step runs on: slurm --nodes, kubernetes pods"},
		{name: "pjrt_plugin", kind: kindString, optional: true, doc: "absolute path of a PJRT plugin .so for gomlx on accelerators"},
		{name: "threads", kind: kindInt, def: starlark.MakeInt(0), doc: "CPU threads, 0 for all cores"},
		{name: "device_memory", kind: kindString, optional: true, doc: "memory of one device, e.g. \"141GB\": planning fails when a training step's estimated peak exceeds it"},
		// What a cluster runner (--runner slurm|kubernetes) asks its
		// scheduler for; --resource FIELD=VALUE overrides them. The local
		// runner ignores them. See host/runner.
		{name: "cpus", kind: kindInt, def: starlark.MakeInt(0), doc: "CPU cores per node to request (slurm --cpus-per-task, kubernetes cpu request); 0: the scheduler's default"},
		{name: "memory", kind: kindString, optional: true, doc: "memory per node to request, e.g. \"64G\" (slurm --mem, kubernetes memory request and limit)"},
		{name: "time_limit", kind: kindString, optional: true, doc: "longest the job may run, e.g. \"4h\" or \"1-12:00:00\" (slurm --time, kubernetes activeDeadlineSeconds)"},
		{name: "partition", kind: kindString, optional: true, doc: "slurm --partition"},
		{name: "account", kind: kindString, optional: true, doc: "slurm --account"},
		{name: "qos", kind: kindString, optional: true, doc: "slurm --qos"},
		{name: "gres", kind: kindString, optional: true, doc: "slurm --gres, replacing the --gpus-per-node derived from device and num_devices, e.g. \"gpu:h100:8\""},
		{name: "queue_name", kind: kindString, optional: true, doc: "kubernetes: the Kueue LocalQueue (label kueue.x-k8s.io/queue-name)"},
		{name: "node_selector", kind: kindAny, optional: true, doc: "kubernetes: the pods' node selector, a dict of label: value"},
		{name: "tolerations", kind: kindAny, optional: true, doc: "kubernetes: the pods' tolerations, a list of dicts with key, operator, value, effect"},
		{name: "image", kind: kindString, optional: true, doc: "kubernetes: the container image for this step (default --k8s-image)"},
	},
}

// loraConfigType is LoraConfig: PEFT's LoraConfig fields and defaults
// under Marin's (Levanter's) names — alpha and dropout, also accepted as
// PEFT's lora_alpha and lora_dropout — plus merge_lora. Which values are
// valid (ranks, target modules against the model) is the train op's schema
// and plan; every field counts in the step's version.
var loraConfigType = &recordType{
	name: "LoraConfig",
	fields: []field{
		{name: "r", kind: kindInt, def: starlark.MakeInt(8), doc: "rank of the low-rank update"},
		{name: "alpha", kind: kindFloat, def: starlark.Float(8), doc: "lora_alpha: the update is scaled by alpha/r"},
		{name: "dropout", kind: kindFloat, def: starlark.Float(0), doc: "lora_dropout on the adapters' input while training"},
		{name: "target_modules", kind: kindAny, optional: true,
			doc: `module names (["q_proj", "v_proj"]), a regular expression over whole module names, or "all-linear"; None: PEFT's default (q_proj, v_proj)`},
		{name: "bias", kind: kindString, def: starlark.String("none"), doc: "none, all or lora_only: biases trained with the adapter"},
		{name: "modules_to_save", kind: kindAny, optional: true, doc: "modules trained in full and saved with the adapter (e.g. [\"embed_tokens\"] for new chat tokens)"},
		{name: "use_rslora", kind: kindBool, def: starlark.False, doc: "rank-stabilised LoRA: scale by alpha/√r"},
		{name: "merge_lora", kind: kindBool, def: starlark.False, doc: "also export the merged model to hf/step-N"},
	},
	aliases: map[string]string{"lora_alpha": "alpha", "lora_dropout": "dropout"},
}

// sftConfigType mirrors Python Marin's SimpleSFTConfig, with its keyword
// names and defaults. The rules the values must follow (ranges, enums, "one
// model source", "steps or epochs") are the train op's schema
// (backends/train), checked by the host at plan time with this record's
// positions.
var sftConfigType = &recordType{
	name: "SimpleSFTConfig",
	fields: []field{
		{name: "data_config", kind: kindAny, optional: true, doc: "a tokenized step or lm_mixture_data_config(...)"},
		{name: "train_batch_size", kind: kindInt, def: starlark.MakeInt(128)},
		{name: "num_train_steps", kind: kindInt, optional: true, doc: "default 10000 unless num_train_epochs is set"},
		{name: "num_train_epochs", kind: kindFloat, optional: true, doc: "resolved from the tokenized caches' counts"},
		{name: "learning_rate", kind: kindFloat, def: starlark.Float(5e-6)},
		{name: "max_seq_len", kind: kindInt, def: starlark.MakeInt(4096)},
		{name: "tokenizer", kind: kindString, optional: true},
		{name: "model_name_or_path", kind: kindString, optional: true},
		{name: "initialize_from_checkpoint_path", kind: kindAny, optional: true},
		{name: "weight_decay", kind: kindFloat, def: starlark.Float(0)},
		{name: "warmup", kind: kindFloat, def: starlark.Float(0.03), doc: "fraction of steps (< 1) or a step count"},
		{name: "cooldown", kind: kindFloat, def: starlark.Float(0), doc: "fraction of steps of final decay"},
		{name: "lr_schedule", kind: kindString, def: starlark.String("linear")},
		{name: "min_lr_ratio", kind: kindFloat, def: starlark.Float(0)},
		{name: "max_grad_norm", kind: kindFloat, def: starlark.Float(1.0), doc: "None means 1.0, as in Marin"},
		{name: "steps_per_eval", kind: kindInt, def: starlark.MakeInt(1000), nonSemantic: true},
		{name: "steps_per_checkpoint", kind: kindInt, def: starlark.MakeInt(1000), nonSemantic: true},
		{name: "steps_per_hf_export", kind: kindInt, def: starlark.MakeInt(500), nonSemantic: true},
		{name: "mixture_block_size", kind: kindInt, def: starlark.MakeInt(2048)},
		{name: "stop_strategy", kind: kindString, def: starlark.String("restart")},
		{name: "seed", kind: kindInt, def: starlark.MakeInt(0)},
		{name: "node_count", kind: kindInt, def: starlark.MakeInt(1), nonSemantic: true},
		{name: "z_loss_weight", kind: kindFloat, def: starlark.Float(0)},
		{name: "lora", kind: kindAny, optional: true, doc: "LoraConfig(...): train a LoRA adapter over the frozen model instead of every parameter"},
		{name: "resources", kind: kindAny, optional: true, nonSemantic: true, doc: "ResourceConfig / JaxDistributedConfig"},
		// Extensions (not in Marin's SimpleSFTConfig); left out of the step's
		// config when not given, so they move no existing output path.
		{name: "precision", kind: kindString, optional: true, doc: "precision policy: f32, mixed, lean or Levanter's p=…,c=…,o=… (default: the engine's)"},
		{name: "gradient_checkpointing", kind: kindBool, optional: true, nonSemantic: true, doc: "recompute each decoder layer's activations in the backward pass (default: the engine's)"},
	},
	validate: func(r *Record) error {
		if r.Get("max_grad_norm") == starlark.None {
			r.values["max_grad_norm"] = starlark.Float(1.0)
		}
		steps, epochs := r.Get("num_train_steps"), r.Get("num_train_epochs")
		if steps == starlark.None && epochs == starlark.None {
			r.values["num_train_steps"] = starlark.MakeInt(10000)
		}
		switch d := r.Get("data_config").(type) {
		case starlark.NoneType, *Step, *InputName, *MixtureConfig:
		default:
			return fmt.Errorf("data_config must be a tokenized step or lm_mixture_data_config(...), got %s", d.Type())
		}
		switch res := r.Get("resources").(type) {
		case starlark.NoneType:
		case *Record:
			if res.typ != resourceConfigType {
				return fmt.Errorf("resources must be ResourceConfig(...) or JaxDistributedConfig(...), got %s", res.Type())
			}
		default:
			return fmt.Errorf("resources must be ResourceConfig(...) or JaxDistributedConfig(...), got %s", res.Type())
		}
		if l, ok := r.Get("lora").(*Record); r.Get("lora") != starlark.None && (!ok || l.typ != loraConfigType) {
			return fmt.Errorf("lora must be LoraConfig(...), got %s", r.Get("lora").Type())
		}
		switch v := r.Get("initialize_from_checkpoint_path").(type) {
		case starlark.NoneType, starlark.String, *Step, *InputName:
		default:
			return fmt.Errorf("initialize_from_checkpoint_path must be a path or a step, got %s", v.Type())
		}
		return nil
	},
}

func addSFTBuiltins(env starlark.StringDict) {
	env["SimpleSFTConfig"] = &recordConstructor{sftConfigType}
	env["LoraConfig"] = &recordConstructor{loraConfigType}
	env["ResourceConfig"] = &recordConstructor{resourceConfigType}
	env["JaxDistributedConfig"] = &recordConstructor{resourceConfigType}
	env["default_sft"] = starlark.NewBuiltin("default_sft", defaultSFT)
}

// default_sft(name, tokenized=None, model_config=None, sft_config, tags=[])
//
// Makes the training step "checkpoints/{name}" (op "train").
func defaultSFT(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name                                string
		tokenized, modelConfig, cfgV, tagsV starlark.Value = starlark.None, starlark.None, nil, starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name", &name, "tokenized?", &tokenized, "model_config?", &modelConfig, "sft_config", &cfgV, "tags?", &tagsV); err != nil {
		return nil, err
	}
	cfg, ok := cfgV.(*Record)
	if !ok || cfg.typ != sftConfigType {
		return nil, fmt.Errorf("%s: sft_config must be SimpleSFTConfig(...), got %s", b.Name(), cfgV.Type())
	}
	stepName := "checkpoints/" + strings.TrimPrefix(name, "checkpoints/")
	if err := checkStepName(b.Name(), stepName); err != nil {
		return nil, err
	}
	tags, err := starStrings(b.Name(), "tags", tagsV)
	if err != nil {
		return nil, err
	}

	data := tokenized
	if data == starlark.None {
		data = cfg.Get("data_config")
	} else if cfg.Get("data_config") != starlark.None {
		return nil, fmt.Errorf("%s: data given both as tokenized= and in sft_config.data_config (made at %s); give one", b.Name(), cfg.pos)
	}
	var mix *MixtureConfig
	switch d := data.(type) {
	case starlark.NoneType:
		return nil, fmt.Errorf("%s: no training data: set data_config in SimpleSFTConfig (made at %s) or pass tokenized=", b.Name(), cfg.pos)
	case *MixtureConfig:
		mix = d
	case *Step:
		mix = singleComponent(d.s.Name[strings.LastIndex(d.s.Name, "/")+1:], d, cfg.Get("max_seq_len"), intField(cfg, "mixture_block_size"), "restart")
	case *InputName:
		mix = singleComponent(d.ref.Step.Name[strings.LastIndex(d.ref.Step.Name, "/")+1:], d, cfg.Get("max_seq_len"), intField(cfg, "mixture_block_size"), "restart")
	default:
		return nil, fmt.Errorf("%s: tokenized must be a tokenized step or lm_mixture_data_config(...), got %s", b.Name(), data.Type())
	}

	conf, err := cfg.configValue()
	if err != nil {
		return nil, fmt.Errorf("%s: sft_config: %w", b.Name(), err)
	}
	m := conf.(map[string]any)
	delete(m, "data_config")
	if cfg.Get("lora") == starlark.None {
		// Absent, not null: full fine-tuning steps keep their versions.
		delete(m, "lora")
	}
	for _, k := range []string{"precision", "gradient_checkpointing"} {
		if v, ok := m[k].(graph.Unversioned); m[k] == nil || ok && v.Value == nil {
			delete(m, k)
		}
	}
	dc, err := mix.configValue()
	if err != nil {
		return nil, fmt.Errorf("%s: data: %w", b.Name(), err)
	}
	m["data"] = dc
	mc, err := toConfig(modelConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: model_config: %w", b.Name(), err)
	}
	m["model_config"] = mc
	if cfg.Get("resources") == starlark.None {
		// Default resources: the CPU backend on every core.
		def, _ := mustPreset(resourceConfigType, nil).configValue()
		m["resources"] = graph.Unversioned{Value: def}
	}
	m["tags"] = graph.Unversioned{Value: stringsToAny(tags)}
	st := newStep(thread, stepName, "train", m)
	st.s.Sources = sftSources(site(thread), cfg, mix, tokenized != starlark.None)
	st.s.Description = "fine-tune " + name
	// The backend routes the op ("gomlx/train"); it is not hashed.
	st.s.Backend = "cpu"
	if res, ok := cfg.Get("resources").(*Record); ok {
		st.s.Backend, _ = starlark.AsString(res.Get("backend"))
	}
	return st, nil
}

// sftSources says where the script wrote each part of a train step's config.
func sftSources(cs *callSite, cfg *Record, mix *MixtureConfig, dataFromKwarg bool) map[string]graph.Source {
	src := map[string]graph.Source{"": {Pos: posString(cs.pos), Attr: "default_sft"}}
	cfg.sources("", src)
	for k := range src {
		if k == "data_config" || strings.HasPrefix(k, "data_config.") {
			delete(src, k)
		}
	}
	mix.sources("data", src)
	if !mix.pos.IsValid() { // one tokenized step, not lm_mixture_data_config
		if dataFromKwarg {
			src["data"] = graph.Source{Pos: posString(cs.at("tokenized")), Attr: "default_sft.tokenized"}
		} else {
			src["data"] = graph.Source{Pos: posString(cfg.fieldPosOr("data_config")), Attr: "SimpleSFTConfig.data_config"}
		}
		// The single component's limits are SimpleSFTConfig's.
		src["data.max_seq_len"] = src["max_seq_len"]
		src["data.mixture_block_size"] = src["mixture_block_size"]
	}
	src["model_config"] = graph.Source{Pos: posString(cs.at("model_config")), Attr: "default_sft.model_config"}
	for k, p := range cs.args {
		if rest, ok := strings.CutPrefix(k, "model_config."); ok {
			src[k] = graph.Source{Pos: posString(p), Attr: "default_sft.model_config." + rest}
		}
	}
	src["tags"] = graph.Source{Pos: posString(cs.at("tags")), Attr: "default_sft.tags"}
	return src
}

func intField(r *Record, name string) int64 {
	n, _ := r.Get(name).(starlark.Int).Int64()
	return n
}
