package lora

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Bias values: which biases of the base model train with the adapter.
const (
	BiasNone     = "none"
	BiasAll      = "all"       // every bias of the model
	BiasLoRAOnly = "lora_only" // the biases of the targeted projections
)

// AllLinear is target_modules' shorthand for every linear layer but the
// output head (PEFT's INCLUDE_LINEAR_LAYERS_SHORTHAND).
const AllLinear = "all-linear"

// Spec is a LoRA configuration: PEFT's LoraConfig fields that change what
// is trained or how an adapter applies. The zero value of each field is
// PEFT's default except R and Alpha (see Defaults).
type Spec struct {
	R       int     // rank
	Alpha   float64 // lora_alpha; the update is scaled by Alpha/R
	Dropout float64 // lora_dropout, on the adapter's input while training
	// Targets is target_modules; empty means PEFT's default for the model
	// type (q_proj and v_proj for llama, mistral and qwen2).
	Targets Targets
	// Exclude is exclude_modules: modules matched by it are not targeted.
	Exclude Targets
	// Layers is layers_to_transform: only these decoder layers are
	// targeted (nil: all).
	Layers        []int
	Bias          string   // BiasNone (""), BiasAll or BiasLoRAOnly
	ModulesToSave []string // modules trained in full and saved with the adapter (suffix match)
	UseRSLoRA     bool     // scale Alpha/√R instead of Alpha/R

	// BaseModel and Revision are base_model_name_or_path and revision: the
	// model the adapter applies to.
	BaseModel string
	Revision  string
}

// Defaults returns PEFT's LoraConfig defaults: r 8, lora_alpha 8, no
// dropout, default targets, bias "none".
func Defaults() Spec { return Spec{R: 8, Alpha: 8, Bias: BiasNone} }

// Scale is the factor of the low-rank update: Alpha/R, or Alpha/√R with
// rank-stabilised LoRA.
func (s Spec) Scale() float64 {
	if s.UseRSLoRA {
		return s.Alpha / math.Sqrt(float64(s.R))
	}
	return s.Alpha / float64(s.R)
}

// Validate checks the values a Spec can hold regardless of the model.
func (s Spec) Validate() error {
	if s.R < 1 {
		return fmt.Errorf("lora: r must be at least 1, got %d", s.R)
	}
	if math.IsNaN(s.Alpha) || math.IsInf(s.Alpha, 0) || s.Alpha <= 0 {
		return fmt.Errorf("lora: lora_alpha must be a positive number, got %g", s.Alpha)
	}
	if !(s.Dropout >= 0 && s.Dropout < 1) {
		return fmt.Errorf("lora: lora_dropout must be in [0, 1), got %g", s.Dropout)
	}
	switch s.Bias {
	case "", BiasNone, BiasAll, BiasLoRAOnly:
	default:
		return fmt.Errorf("lora: bias must be %q, %q or %q, got %q", BiasNone, BiasAll, BiasLoRAOnly, s.Bias)
	}
	if err := s.Targets.validate("target_modules"); err != nil {
		return err
	}
	if err := s.Exclude.validate("exclude_modules"); err != nil {
		return err
	}
	for _, l := range s.Layers {
		if l < 0 {
			return fmt.Errorf("lora: layers_to_transform holds %d", l)
		}
	}
	for _, m := range s.ModulesToSave {
		if m == "" {
			return fmt.Errorf("lora: modules_to_save holds an empty name")
		}
	}
	return nil
}

func (s Spec) bias() string {
	if s.Bias == "" {
		return BiasNone
	}
	return s.Bias
}

// Targets is target_modules (or exclude_modules): module names matched
// exactly or as a dotted suffix ("q_proj" matches
// model.layers.0.self_attn.q_proj), or one regular expression matched
// against whole module names, or AllLinear. The zero value is "not given".
type Targets struct {
	Names   []string
	Pattern string
}

// IsZero reports whether no targets are given.
func (t Targets) IsZero() bool { return t.Names == nil && t.Pattern == "" }

// MarshalJSON writes a string (a pattern or "all-linear"), a sorted list,
// or null.
func (t Targets) MarshalJSON() ([]byte, error) {
	switch {
	case t.Pattern != "":
		return json.Marshal(t.Pattern)
	case t.Names != nil:
		names := append([]string(nil), t.Names...)
		sort.Strings(names)
		return json.Marshal(names)
	}
	return []byte("null"), nil
}

// UnmarshalJSON reads a string, a list of strings or null.
func (t *Targets) UnmarshalJSON(data []byte) error {
	*t = Targets{}
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		return json.Unmarshal(data, &t.Pattern)
	}
	var names []string
	if err := json.Unmarshal(data, &names); err != nil {
		return fmt.Errorf("want a string or a list of module names: %w", err)
	}
	if names == nil {
		names = []string{}
	}
	t.Names = names
	return nil
}

// TargetsOf reads target_modules as a step config holds it: nil, a string,
// or a list of strings.
func TargetsOf(v any) (Targets, error) {
	switch x := v.(type) {
	case nil:
		return Targets{}, nil
	case string:
		if x == "" {
			return Targets{}, fmt.Errorf("an empty string")
		}
		return Targets{Pattern: x}, nil
	case []string:
		return Targets{Names: append([]string{}, x...)}, nil
	case []any:
		names := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return Targets{}, fmt.Errorf("element %d is %T, not a module name", i, e)
			}
			names = append(names, s)
		}
		return Targets{Names: names}, nil
	}
	return Targets{}, fmt.Errorf("want a module name list, a regular expression or %q, got %T", AllLinear, v)
}

func (t Targets) validate(what string) error {
	if t.Names != nil && t.Pattern != "" {
		return fmt.Errorf("lora: %s is both a list and a pattern", what)
	}
	for _, n := range t.Names {
		if n == "" {
			return fmt.Errorf("lora: %s holds an empty name", what)
		}
	}
	if t.Pattern != "" && !t.isAllLinear() {
		if _, err := compilePattern(t.Pattern); err != nil {
			return fmt.Errorf("lora: %s %q: %w", what, t.Pattern, err)
		}
	}
	return nil
}

func (t Targets) isAllLinear() bool { return strings.EqualFold(t.Pattern, AllLinear) }

// ConfigName is the adapter's config file.
const ConfigName = "adapter_config.json"

// WeightsName is the adapter's tensors file.
const WeightsName = "adapter_model.safetensors"

// adapterConfig is adapter_config.json as PEFT writes it for LoRA (the keys
// marin reads; others are accepted when at their defaults).
type adapterConfig struct {
	PeftType          string          `json:"peft_type"`
	TaskType          *string         `json:"task_type"`
	R                 int             `json:"r"`
	LoraAlpha         float64         `json:"lora_alpha"`
	LoraDropout       float64         `json:"lora_dropout"`
	TargetModules     Targets         `json:"target_modules"`
	ExcludeModules    Targets         `json:"exclude_modules"`
	LayersToTransform json.RawMessage `json:"layers_to_transform"`
	Bias              string          `json:"bias"`
	ModulesToSave     []string        `json:"modules_to_save"`
	UseRSLoRA         bool            `json:"use_rslora"`
	BaseModel         *string         `json:"base_model_name_or_path"`
	Revision          *string         `json:"revision"`

	// Refused unless at their defaults: they change how the adapter applies.
	UseDora         bool            `json:"use_dora"`
	FanInFanOut     bool            `json:"fan_in_fan_out"`
	RankPattern     json.RawMessage `json:"rank_pattern"`
	AlphaPattern    json.RawMessage `json:"alpha_pattern"`
	LayerReplicate  json.RawMessage `json:"layer_replication"`
	LoraBias        bool            `json:"lora_bias"`
	TargetParams    json.RawMessage `json:"target_parameters"`
	MegatronConfig  json.RawMessage `json:"megatron_config"`
	LayersPattern   json.RawMessage `json:"layers_pattern"`
	TrainableTokens json.RawMessage `json:"trainable_token_indices"`
}

// ConfigJSON is adapter_config.json for s, with PEFT's keys at their
// defaults where marin has nothing to say (sorted, as PEFT writes them).
func (s Spec) ConfigJSON() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var layers any
	if s.Layers != nil {
		layers = s.Layers
	}
	var save any
	if s.ModulesToSave != nil {
		save = s.ModulesToSave
	}
	var base, rev any
	if s.BaseModel != "" {
		base = s.BaseModel
	}
	if s.Revision != "" {
		rev = s.Revision
	}
	m := map[string]any{
		"alpha_pattern":           map[string]any{},
		"auto_mapping":            nil,
		"base_model_name_or_path": base,
		"bias":                    s.bias(),
		"exclude_modules":         s.Exclude,
		"fan_in_fan_out":          false,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"layer_replication":       nil,
		"layers_pattern":          nil,
		"layers_to_transform":     layers,
		"loftq_config":            map[string]any{},
		"lora_alpha":              s.Alpha,
		"lora_bias":               false,
		"lora_dropout":            s.Dropout,
		"megatron_config":         nil,
		"megatron_core":           "megatron.core",
		"modules_to_save":         save,
		"peft_type":               "LORA",
		"r":                       s.R,
		"rank_pattern":            map[string]any{},
		"revision":                rev,
		"target_modules":          s.Targets,
		"task_type":               "CAUSAL_LM",
		"use_dora":                false,
		"use_rslora":              s.UseRSLoRA,
	}
	return json.MarshalIndent(m, "", "  ")
}

// ParseConfig reads adapter_config.json. It refuses adapters that are not
// LoRA for a causal LM, or that use what marin cannot apply exactly.
func ParseConfig(data []byte) (Spec, error) {
	var c adapterConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return Spec{}, fmt.Errorf("%s: %w", ConfigName, err)
	}
	if c.PeftType != "LORA" {
		return Spec{}, fmt.Errorf("%s: peft_type is %q; only LORA adapters are supported", ConfigName, c.PeftType)
	}
	if c.TaskType != nil && *c.TaskType != "CAUSAL_LM" {
		return Spec{}, fmt.Errorf("%s: task_type is %q; only CAUSAL_LM adapters apply to a Llama-family language model", ConfigName, *c.TaskType)
	}
	refuse := func(what string) (Spec, error) {
		return Spec{}, fmt.Errorf("%s: %s is not supported", ConfigName, what)
	}
	switch {
	case c.UseDora:
		return refuse("use_dora (DoRA)")
	case c.FanInFanOut:
		return refuse("fan_in_fan_out")
	case c.LoraBias:
		return refuse("lora_bias")
	case !emptyJSON(c.RankPattern):
		return refuse("rank_pattern (per-module ranks)")
	case !emptyJSON(c.AlphaPattern):
		return refuse("alpha_pattern (per-module alphas)")
	case !emptyJSON(c.LayerReplicate):
		return refuse("layer_replication")
	case !emptyJSON(c.TargetParams):
		return refuse("target_parameters")
	case !emptyJSON(c.MegatronConfig):
		return refuse("megatron_config")
	case !emptyJSON(c.TrainableTokens):
		return refuse("trainable_token_indices")
	}
	s := Spec{R: c.R, Alpha: c.LoraAlpha, Dropout: c.LoraDropout, Targets: c.TargetModules, Exclude: c.ExcludeModules,
		Bias: c.Bias, ModulesToSave: c.ModulesToSave, UseRSLoRA: c.UseRSLoRA}
	if !emptyJSON(c.LayersToTransform) {
		var one int
		if err := json.Unmarshal(c.LayersToTransform, &one); err == nil {
			s.Layers = []int{one}
		} else if err := json.Unmarshal(c.LayersToTransform, &s.Layers); err != nil {
			return Spec{}, fmt.Errorf("%s: layers_to_transform: want a layer index or a list of them: %w", ConfigName, err)
		}
		if !emptyJSON(c.LayersPattern) {
			var p any
			_ = json.Unmarshal(c.LayersPattern, &p)
			if p != "layers" && !reflectEqualStrings(p, "layers") {
				return refuse(fmt.Sprintf("layers_pattern %s", c.LayersPattern))
			}
		}
	}
	if c.BaseModel != nil {
		s.BaseModel = *c.BaseModel
	}
	if c.Revision != nil {
		s.Revision = *c.Revision
	}
	if err := s.Validate(); err != nil {
		return Spec{}, fmt.Errorf("%s: %w", ConfigName, err)
	}
	return s, nil
}

func reflectEqualStrings(v any, want string) bool {
	l, ok := v.([]any)
	return ok && len(l) == 1 && l[0] == want
}

// emptyJSON: absent, null, {} or [].
func emptyJSON(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || s == "{}" || s == "[]"
}

// ReadConfig reads dir/adapter_config.json.
func ReadConfig(dir string) (Spec, error) {
	p := filepath.Join(dir, ConfigName)
	f, err := os.Open(p)
	if err != nil {
		return Spec{}, fmt.Errorf("read adapter: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Spec{}, fmt.Errorf("read adapter: %w", err)
	}
	if st.Size() > maxConfigBytes {
		return Spec{}, fmt.Errorf("read adapter: %s is %d bytes, more than an adapter config's %d", p, st.Size(), maxConfigBytes)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigBytes))
	if err != nil {
		return Spec{}, fmt.Errorf("read adapter: %s: %w", p, err)
	}
	s, err := ParseConfig(raw)
	if err != nil {
		return Spec{}, fmt.Errorf("adapter %s: %w", dir, err)
	}
	return s, nil
}

const maxConfigBytes = 1 << 20

// IsAdapterDir reports whether dir holds an adapter (adapter_config.json).
func IsAdapterDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ConfigName))
	return err == nil
}
