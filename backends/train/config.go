package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/plugins/schema"
)

// Config is the train step's config, as starlib's default_sft writes it
// (SimpleSFTConfig's fields plus "data", "model_config", "resources" and
// "tags"). Its tags are the op's schema (see Schema): the host checks every
// step against it while planning, and the op decodes strictly with it.
type Config struct {
	Data DataConfig `json:"data" schema:"required" doc:"the token caches to train on (lm_mixture_data_config)"`

	TrainBatchSize int      `json:"train_batch_size" schema:"gt=0,default=128" doc:"sequences per optimizer step"`
	NumTrainSteps  *int64   `json:"num_train_steps" schema:"gt=0" doc:"optimizer steps"`
	NumTrainEpochs *float64 `json:"num_train_epochs" schema:"gt=0" doc:"passes over the weighted components, resolved from the caches' sizes"`
	MaxSeqLen      int      `json:"max_seq_len" schema:"gt=1" doc:"tokens per sequence (default: data.max_seq_len)"`

	LearningRate float64  `json:"learning_rate" schema:"min=0,default=5e-6" doc:"peak learning rate"`
	WeightDecay  float64  `json:"weight_decay" schema:"min=0" doc:"AdamW's decoupled weight decay"`
	Warmup       float64  `json:"warmup" schema:"min=0" doc:"warmup: a fraction of the steps (< 1) or a step count"`
	Cooldown     float64  `json:"cooldown" schema:"min=0" doc:"the final decay span: a fraction of the steps or a step count"`
	LRSchedule   string   `json:"lr_schedule" schema:"enum=linear|cosine|constant,default=linear" doc:"decay shape after warmup"`
	MinLRRatio   float64  `json:"min_lr_ratio" schema:"min=0,max=1" doc:"the final learning rate as a fraction of the peak"`
	MaxGradNorm  *float64 `json:"max_grad_norm" schema:"gt=0" doc:"global gradient-norm clip (null: 1.0)"`
	ZLossWeight  float64  `json:"z_loss_weight" schema:"min=0" doc:"weight of the z-loss (logsumexp squared)"`
	Seed         int64    `json:"seed" doc:"data order and initialisation seed"`

	StepsPerEval       int64  `json:"steps_per_eval" schema:"min=0" doc:"validation loss cadence (0: only at the end)"`
	StepsPerCheckpoint int64  `json:"steps_per_checkpoint" schema:"min=0" doc:"checkpoint cadence (0: only at the end)"`
	StepsPerHFExport   int64  `json:"steps_per_hf_export" schema:"min=0" doc:"hf/ export cadence (0: only at the end)"`
	MixtureBlockSize   int    `json:"mixture_block_size" schema:"gt=0" doc:"sequences per mixture block (default: data.mixture_block_size, else 2048)"`
	StopStrategy       string `json:"stop_strategy" schema:"enum=restart" doc:"what a component that runs out does"`
	NodeCount          int    `json:"node_count" schema:"min=1" doc:"nodes (SimpleSFTConfig.node_count)"`

	// The model: exactly one of these (model_config trains from scratch).
	ModelNameOrPath              *string         `json:"model_name_or_path" doc:"an HF model directory, a training step's output or a hub id"`
	InitializeFromCheckpointPath *string         `json:"initialize_from_checkpoint_path" doc:"a checkpoint to take the weights from (the optimizer starts fresh)"`
	ModelConfig                  json.RawMessage `json:"model_config" doc:"an HF LlamaConfig: train a new model from scratch"`
	Tokenizer                    *string         `json:"tokenizer" doc:"the tokenizer the caches were made with"`

	// Lora trains a LoRA adapter over the frozen model instead of every
	// parameter (null: full fine-tuning).
	Lora *LoraConfig `json:"lora" doc:"LoraConfig: train a LoRA adapter over the frozen model (exported to adapter/step-N in PEFT's layout); null trains every parameter"`

	Resources Resources `json:"resources" schema:"open" doc:"ResourceConfig: where the step runs (never part of the version)"`
	Tags      []string  `json:"tags" doc:"default_sft's tags"`

	// Extensions of this op (not set by SimpleSFTConfig; scripts may add
	// them to a step config by hand):
	MicroBatchSize    int     `json:"micro_batch_size" schema:"min=0" doc:"sequences per forward/backward pass (0: chosen from memory)"`
	CheckpointMinutes float64 `json:"checkpoint_minutes" doc:"a temporary checkpoint after this many minutes (0: 10; negative: never)"`
	MaxEvalSequences  int64   `json:"max_eval_sequences" schema:"min=0" doc:"cap on the sequences of each validation component evaluated (0: all)"`

	// Memory: how the step trades memory for precision and compute (see
	// Precision and PlanMemory).
	Precision             string `json:"precision" doc:"precision policy: f32, mixed (f32 weights and moments, bf16 compute), lean (bf16 weights with Kahan-compensated updates, bf16 compute and moments) or Levanter's p=…,c=…,o=… (default: the engine's)"`
	GradientCheckpointing *bool  `json:"gradient_checkpointing" doc:"recompute each decoder layer's activations in the backward pass instead of keeping them (null: the engine's default)"`
}

// SchemaRules are the rules across the train config's fields.
func (Config) SchemaRules() []schema.Rule {
	return []schema.Rule{
		{Kind: schema.ExactlyOneOf, Paths: []string{"model_name_or_path", "initialize_from_checkpoint_path", "model_config"},
			Message: "give exactly one model: model_name_or_path, initialize_from_checkpoint_path, or model_config (train from scratch)"},
		{Kind: schema.ExactlyOneOf, Paths: []string{"num_train_steps", "num_train_epochs"}},
		{Kind: schema.Equal, Paths: []string{"max_seq_len", "data.max_seq_len"}},
		{Kind: schema.Divides, Paths: []string{"micro_batch_size", "train_batch_size"}},
	}
}

// LoraConfig is starlib's LoraConfig: PEFT's LoraConfig fields and
// defaults under Marin's names (alpha is lora_alpha, dropout lora_dropout),
// plus merge_lora.
type LoraConfig struct {
	R       int     `json:"r" schema:"gt=0,default=8" doc:"rank of the low-rank update"`
	Alpha   float64 `json:"alpha" schema:"gt=0,default=8" doc:"lora_alpha: the update is scaled by alpha/r (alpha/√r with use_rslora)"`
	Dropout float64 `json:"dropout" schema:"min=0,lt=1" doc:"lora_dropout: dropout on the adapters' input while training"`
	// TargetModules is a list of module names, one regular expression or
	// "all-linear" (a string or a list: checked by the op's Plan).
	TargetModules any      `json:"target_modules" doc:"module names matched as a suffix (q_proj, self_attn.v_proj, …), one regular expression over whole module names, or \"all-linear\"; null: PEFT's default for the model (q_proj, v_proj)"`
	Bias          string   `json:"bias" schema:"enum=none|all|lora_only,default=none" doc:"biases trained with the adapter: none, all of the model's, or those of the adapted projections"`
	ModulesToSave []string `json:"modules_to_save" doc:"modules trained in full and saved with the adapter (e.g. embed_tokens, lm_head for new chat tokens)"`
	UseRSLoRA     bool     `json:"use_rslora" doc:"rank-stabilised LoRA: scale by alpha/√r"`
	MergeLora     bool     `json:"merge_lora" doc:"also export the model with the adapter merged to hf/step-N"`
}

// Spec is the adapter's lora.Spec.
func (c *LoraConfig) Spec() (lora.Spec, error) {
	t, err := lora.TargetsOf(c.TargetModules)
	if err != nil {
		return lora.Spec{}, fmt.Errorf("target_modules: %w", err)
	}
	s := lora.Spec{R: c.R, Alpha: c.Alpha, Dropout: c.Dropout, Targets: t, Bias: c.Bias, ModulesToSave: c.ModulesToSave, UseRSLoRA: c.UseRSLoRA}
	return s, s.Validate()
}

// DataConfig is lm_mixture_data_config's value.
type DataConfig struct {
	Components       map[string]Component `json:"components" schema:"required,nonempty" doc:"tokenized datasets by name"`
	MaxSeqLen        int                  `json:"max_seq_len" schema:"gt=1"`
	MixtureBlockSize int                  `json:"mixture_block_size" schema:"gt=0"`
	PermutationType  string               `json:"permutation_type" schema:"enum=feistel" doc:"this op shuffles with Feistel permutations only"`
	Shuffle          *bool                `json:"shuffle"`
	StopStrategy     string               `json:"stop_strategy" schema:"enum=restart"`
}

// SchemaRules: some component is trained on.
func (DataConfig) SchemaRules() []schema.Rule {
	return []schema.Rule{{Kind: schema.SomePositive, Paths: []string{"components.*.weight"},
		Message: "no component has a training weight (all are validation-only): nothing to train on"}}
}

// Component is one tokenized dataset of the mixture.
type Component struct {
	Cache          string  `json:"cache" schema:"required,nonempty" doc:"the tokenize step's output (a token cache)"`
	Weight         float64 `json:"weight" schema:"min=0" doc:"relative sampling weight; 0: validation only"`
	ValidationOnly bool    `json:"validation_only"`
}

// Resources is ResourceConfig, as the train op reads it. Other keys
// (scheduler settings) belong to the runner and are accepted unread.
type Resources struct {
	Backend    string  `json:"backend" doc:"the backend plugin that trains (the host routes the step to it)"`
	Device     string  `json:"device" schema:"default=auto" doc:"the device kind the engine uses; auto: the engine's best available"`
	NumDevices int     `json:"num_devices" schema:"min=0" doc:"devices to use, 0 for all"`
	NodeCount  int     `json:"node_count" schema:"min=1" doc:"nodes"`
	PJRTPlugin *string `json:"pjrt_plugin" doc:"absolute path of a PJRT plugin .so (gomlx on accelerators)"`
	Threads    int     `json:"threads" schema:"min=0" doc:"CPU threads, 0 for all cores"`
	// DeviceMemory is the memory of one device; the memory plan refuses a
	// step whose estimated peak exceeds it.
	DeviceMemory string `json:"device_memory" doc:"memory of one device, e.g. \"141GB\" or \"80GiB\": planning fails when a step's estimated peak exceeds it"`
}

var configSchema = schema.MustFromStruct(Config{})

// Schema is the train op's config schema on an engine that can use devices
// (resources.device's allowed values).
func Schema(devices []string) *schema.Field {
	raw, _ := configSchema.Marshal()
	s, _ := schema.Unmarshal(raw) // a private copy to set the devices on
	if f := s.Lookup("resources.device"); f != nil && len(devices) > 0 {
		f.Enum = append([]string(nil), devices...)
	}
	return s
}

// ParseConfig decodes and checks a train step config (strictly, with the
// schema's defaults), as the op does.
func ParseConfig(raw []byte) (*Config, error) {
	m, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	c := &Config{}
	if err := schema.Decode(configSchema, m, c); err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	if err := c.resolve(); err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	return c, nil
}

func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// resolve fills the values derived from others, once the config has passed
// its schema.
func (c *Config) resolve() error {
	if c.MaxSeqLen == 0 {
		c.MaxSeqLen = c.Data.MaxSeqLen
	}
	if c.MaxSeqLen < 2 {
		return fmt.Errorf("max_seq_len is not set (here or in data)")
	}
	if c.MaxGradNorm == nil {
		one := 1.0
		c.MaxGradNorm = &one
	}
	if c.MixtureBlockSize == 0 {
		c.MixtureBlockSize = c.Data.MixtureBlockSize
	}
	if c.MixtureBlockSize == 0 {
		c.MixtureBlockSize = 2048
	}
	return nil
}

func hasModelConfig(raw json.RawMessage) bool {
	s := string(raw)
	return len(raw) > 0 && s != "null" && s != "{}"
}

// trainNames and validationNames list the components, sorted.
func (c *Config) trainNames() []string {
	var out []string
	for n, comp := range c.Data.Components {
		if comp.Weight > 0 && !comp.ValidationOnly {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Config) validationNames() []string {
	var out []string
	for n, comp := range c.Data.Components {
		if !(comp.Weight > 0) || comp.ValidationOnly {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Config) shuffle() bool { return c.Data.Shuffle == nil || *c.Data.Shuffle }
