package train

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// Config is the train step's config, as starlib's default_sft writes it
// (SimpleSFTConfig's fields plus "data", "model_config" and "resources").
type Config struct {
	Data DataConfig `json:"data"`

	TrainBatchSize int      `json:"train_batch_size"`
	NumTrainSteps  *int64   `json:"num_train_steps"`
	NumTrainEpochs *float64 `json:"num_train_epochs"`
	MaxSeqLen      int      `json:"max_seq_len"`

	LearningRate float64  `json:"learning_rate"`
	WeightDecay  float64  `json:"weight_decay"`
	Warmup       float64  `json:"warmup"`
	Cooldown     float64  `json:"cooldown"`
	LRSchedule   string   `json:"lr_schedule"`
	MinLRRatio   float64  `json:"min_lr_ratio"`
	MaxGradNorm  *float64 `json:"max_grad_norm"`
	ZLossWeight  float64  `json:"z_loss_weight"`
	Seed         int64    `json:"seed"`

	StepsPerEval       int64  `json:"steps_per_eval"`
	StepsPerCheckpoint int64  `json:"steps_per_checkpoint"`
	StepsPerHFExport   int64  `json:"steps_per_hf_export"`
	MixtureBlockSize   int    `json:"mixture_block_size"`
	StopStrategy       string `json:"stop_strategy"`

	// The model: exactly one of these (model_config trains from scratch).
	ModelNameOrPath              *string         `json:"model_name_or_path"`
	InitializeFromCheckpointPath *string         `json:"initialize_from_checkpoint_path"`
	ModelConfig                  json.RawMessage `json:"model_config"`
	Tokenizer                    *string         `json:"tokenizer"`

	Resources Resources `json:"resources"`

	// Extensions of this backend (not set by SimpleSFTConfig; scripts may
	// add them to a step config by hand):
	// MicroBatchSize fixes the sequences per forward/backward pass (0:
	// chosen from ActivationMemory).
	MicroBatchSize int `json:"micro_batch_size"`
	// CheckpointMinutes writes a temporary checkpoint when this many
	// minutes have passed since the last one (0: 10; negative: never).
	CheckpointMinutes float64 `json:"checkpoint_minutes"`
	// MaxEvalSequences caps the sequences of each validation component
	// evaluated (0: all).
	MaxEvalSequences int64 `json:"max_eval_sequences"`
}

// DataConfig is lm_mixture_data_config's value.
type DataConfig struct {
	Components       map[string]Component `json:"components"`
	MaxSeqLen        int                  `json:"max_seq_len"`
	MixtureBlockSize int                  `json:"mixture_block_size"`
	PermutationType  string               `json:"permutation_type"`
	Shuffle          *bool                `json:"shuffle"`
	StopStrategy     string               `json:"stop_strategy"`
}

// Component is one tokenized dataset of the mixture.
type Component struct {
	Cache          string  `json:"cache"` // the tokenize step's output (a token cache)
	Weight         float64 `json:"weight"`
	ValidationOnly bool    `json:"validation_only"`
}

// Resources is ResourceConfig.
type Resources struct {
	Backend string `json:"backend"`
	Threads int    `json:"threads"`
}

// ParseConfig decodes and checks a train step config.
func ParseConfig(raw []byte) (*Config, error) {
	c := &Config{}
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	return c, nil
}

func (c *Config) validate() error {
	if len(c.Data.Components) == 0 {
		return fmt.Errorf("data.components is empty: nothing to train on")
	}
	if c.MaxSeqLen == 0 {
		c.MaxSeqLen = c.Data.MaxSeqLen
	}
	if c.Data.MaxSeqLen != 0 && c.Data.MaxSeqLen != c.MaxSeqLen {
		return fmt.Errorf("max_seq_len %d differs from data.max_seq_len %d", c.MaxSeqLen, c.Data.MaxSeqLen)
	}
	if c.MaxSeqLen < 2 {
		return fmt.Errorf("max_seq_len %d must be at least 2", c.MaxSeqLen)
	}
	if c.TrainBatchSize <= 0 {
		return fmt.Errorf("train_batch_size %d must be positive", c.TrainBatchSize)
	}
	switch {
	case c.NumTrainSteps != nil && c.NumTrainEpochs != nil:
		return fmt.Errorf("give num_train_steps or num_train_epochs, not both")
	case c.NumTrainSteps == nil && c.NumTrainEpochs == nil:
		return fmt.Errorf("neither num_train_steps nor num_train_epochs is set")
	case c.NumTrainSteps != nil && *c.NumTrainSteps <= 0:
		return fmt.Errorf("num_train_steps %d must be positive", *c.NumTrainSteps)
	case c.NumTrainEpochs != nil && !(*c.NumTrainEpochs > 0) || c.NumTrainEpochs != nil && math.IsInf(*c.NumTrainEpochs, 0):
		return fmt.Errorf("num_train_epochs %v must be a positive number", *c.NumTrainEpochs)
	}
	if !(c.LearningRate >= 0) {
		return fmt.Errorf("learning_rate %v must be non-negative", c.LearningRate)
	}
	if c.LRSchedule == "" {
		c.LRSchedule = "linear"
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
	for _, s := range []string{c.StopStrategy, c.Data.StopStrategy} {
		if s != "" && s != "restart" {
			return fmt.Errorf("stop_strategy %q: only \"restart\" is implemented", s)
		}
	}
	if p := c.Data.PermutationType; p != "" && p != "feistel" {
		return fmt.Errorf("data.permutation_type %q: this backend shuffles with Feistel permutations only (\"feistel\")", p)
	}
	for name, comp := range c.Data.Components {
		if comp.Cache == "" {
			return fmt.Errorf("data.components.%s.cache is empty", name)
		}
		if comp.Weight < 0 || math.IsNaN(comp.Weight) {
			return fmt.Errorf("data.components.%s.weight %v must be >= 0", name, comp.Weight)
		}
	}
	if len(c.trainNames()) == 0 {
		return fmt.Errorf("no data component has a training weight (all are validation-only)")
	}
	n := 0
	for _, p := range []*string{c.ModelNameOrPath, c.InitializeFromCheckpointPath} {
		if p != nil && *p != "" {
			n++
		}
	}
	if hasModelConfig(c.ModelConfig) {
		n++
	}
	if n == 0 {
		return fmt.Errorf("no model: set model_name_or_path, initialize_from_checkpoint_path or model_config")
	}
	if n > 1 {
		return fmt.Errorf("give one of model_name_or_path, initialize_from_checkpoint_path and model_config")
	}
	for key, v := range map[string]int64{"steps_per_eval": c.StepsPerEval, "steps_per_checkpoint": c.StepsPerCheckpoint, "steps_per_hf_export": c.StepsPerHFExport} {
		if v < 0 {
			return fmt.Errorf("%s %d is negative", key, v)
		}
	}
	if c.MicroBatchSize < 0 || (c.MicroBatchSize > 0 && c.TrainBatchSize%c.MicroBatchSize != 0) {
		return fmt.Errorf("micro_batch_size %d must divide train_batch_size %d", c.MicroBatchSize, c.TrainBatchSize)
	}
	if c.Resources.Backend != "" && c.Resources.Backend != "cpu" {
		return fmt.Errorf("resources.backend is %q, but this is the cpu backend's train op", c.Resources.Backend)
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
