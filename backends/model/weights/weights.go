// Package weights moves Llama-family weights between disk and
// backends/model/llama: it loads the Hugging Face layout (config.json plus one
// model.safetensors or shards named by model.safetensors.index.json, F32,
// BF16 or F16 on disk) from a directory or from the hub, initialises
// parameters from a config for from-scratch runs, and exports the layout
// transformers and vLLM load.
//
// # The hf/ export (hf/step-N/)
//
//	config.json              the model's LlamaConfig (HF names), normalised: model_type,
//	                         architectures (LlamaForCausalLM, Qwen2ForCausalLM or
//	                         MistralForCausalLM), torch_dtype of the weights, bos/eos ids
//	model.safetensors        every parameter, HF names and [out, in] layout, F32 by default
//	                         (BF16 on request); above 10 GB, model-0000i-of-0000n.safetensors
//	                         shards and model.safetensors.index.json
//	generation_config.json   bos_token_id, eos_token_id (a list: the tokenizer's eos and
//	                         the chat format's end of turn, so generation stops at a turn)
//	tokenizer.json, tokenizer_config.json, special_tokens_map.json, tokenizer.model
//	                         copied from the tokenizer's directory when present
//	marin.json               optional: what marin knows that transformers does not
//	                         (the chat format, the training step), for marin generate/chat
//
// # LoRA adapters (adapter/step-N/)
//
// A LoRA run exports its adapter in PEFT's layout (backends/model/lora:
// adapter_config.json naming base_model_name_or_path, and
// adapter_model.safetensors) with the tokenizer files and marin.json, whose
// base_model is the base's directory relative to the adapter (so a moved
// prefix still finds it). Load, LoadDir and FindModelDir accept such a
// directory, made here or by PEFT elsewhere, as a model: Load reads its
// base and merges the adapter, so everything that loads models
// (generation, chat, evaluation) takes adapters too; LoadAdapter keeps the
// two apart (to continue training the adapter).
//
// A directory is written under a temporary sibling name and renamed into
// place, so an export directory either is complete or does not exist. The
// cpu and gomlx backends write and read the same files.
package weights

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/plugins/storage"
)

// ConfigName is the model config file of the HF layout.
const ConfigName = "config.json"

// ReadConfig reads dir/config.json with transformers' defaults for absent
// fields.
func ReadConfig(dir string) (llama.Config, error) {
	p := filepath.Join(dir, ConfigName)
	raw, err := storage.ReadAllLimit(context.Background(), p, maxConfig)
	if err != nil {
		return llama.Config{}, fmt.Errorf("read model config: %w", err)
	}
	cfg, err := llama.ParseConfig(raw)
	if err != nil {
		return llama.Config{}, fmt.Errorf("%s: %w", p, err)
	}
	return cfg, nil
}

// Info says what LoadDir read.
type Info struct {
	Dir    string
	DTypes map[safetensors.DType]int // tensors of each on-disk dtype
	// Ignored lists tensors in the files that the model does not use
	// (rotary inv_freq buffers, an lm_head of a tied model).
	Ignored []string
	// Base is, for a LoRA adapter directory (Dir), its base model's
	// directory, and BaseName the name it was resolved from; DTypes and
	// Ignored are the base's.
	Base, BaseName string
}

// LoadDir reads a model in Hugging Face layout from the local directory
// dir. Every parameter the config needs must be present with its shape;
// safetensors files that are truncated or corrupt are refused (see
// backends/model/safetensors). Tensors the model does not need are refused too,
// except rotary-embedding buffers and the lm_head of a tied model, so a
// config that does not match its weights is caught here.
//
// Nothing is allocated from what config.json claims until it has been
// checked: the config against the size limits (llama.Config.ParamCount) and
// this machine's memory, then every tensor it implies against the
// safetensors headers (name, shape, float dtype, byte count). A config that
// claims more than its files hold is an error naming the first tensor that
// does not match, not a crash.
//
// A LoRA adapter directory (adapter_config.json, no config.json) loads as
// Load does: its base with the adapter merged.
func LoadDir(dir string) (*llama.Params, Info, error) {
	if lora.IsAdapterDir(dir) && !hasConfig(dir) {
		return Load(context.Background(), dir, nil)
	}
	info := Info{Dir: dir}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, info, fmt.Errorf("load model %s: %w", dir, err)
	}
	if err := CheckFits(cfg); err != nil {
		return nil, info, fmt.Errorf("load model %s: %w", dir, err)
	}
	shapes, err := llama.Shapes(cfg)
	if err != nil {
		return nil, info, fmt.Errorf("load model %s: %w", dir, err)
	}
	sm, err := safetensors.OpenModel(dir)
	if err != nil {
		return nil, info, fmt.Errorf("load model %s: %w", dir, err)
	}
	info.DTypes = sm.DTypes
	need := map[string]bool{}
	for _, t := range shapes {
		need[t.Name] = true
		ti, ok := sm.Info(t.Name)
		if !ok {
			return nil, info, fmt.Errorf("load model %s: config.json needs tensor %s %v, which the safetensors files do not hold (wrong config?)", dir, t.Name, t.Shape)
		}
		if !sameShape(ti.Shape, t.Shape) {
			return nil, info, fmt.Errorf("load model %s: tensor %s has shape %v, config.json needs %v", dir, t.Name, ti.Shape, t.Shape)
		}
		if !ti.DType.IsFloat() {
			return nil, info, fmt.Errorf("load model %s: tensor %s has dtype %s, not a float type", dir, t.Name, ti.DType)
		}
	}
	for _, name := range sm.Names() {
		if need[name] {
			continue
		}
		if strings.HasSuffix(name, "rotary_emb.inv_freq") || (name == "lm_head.weight" && cfg.TieWordEmbeddings) {
			info.Ignored = append(info.Ignored, name)
			continue
		}
		return nil, info, fmt.Errorf("load model %s: the weights hold %s, which a %s model with this config.json does not have (wrong config or architecture?)", dir, name, cfg.Normalized().ModelType)
	}
	// Everything matches what is on disk: now allocate and read.
	p, err := llama.NewParams(cfg)
	if err != nil {
		return nil, info, fmt.Errorf("load model %s: %w", dir, err)
	}
	for _, t := range p.Tensors() {
		if err := sm.Float32Into(t.Name, t.Data); err != nil {
			return nil, info, fmt.Errorf("load model %s: %w", dir, err)
		}
	}
	return p, info, nil
}

// maxConfig bounds config.json (real ones are a few KiB).
const maxConfig = 16 << 20

// CheckFits refuses a config beyond the size limits (llama.Config.ParamCount)
// or whose float32 parameters alone need more memory than this machine has,
// before anything is allocated for it.
func CheckFits(cfg llama.Config) error {
	n, err := cfg.ParamCount()
	if err != nil {
		return err
	}
	if total := memTotal(); total > 0 && uint64(n)*4 > total {
		return fmt.Errorf("model config: %d parameters need %.1f GiB as float32, more than this machine's %.1f GiB of memory", n, float64(n)*4/(1<<30), float64(total)/(1<<30))
	}
	return nil
}

// memTotal is the machine's memory in bytes (Linux's MemTotal), 0 if unknown.
func memTotal() uint64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb uint64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func sameShape(a []int64, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != int64(b[i]) {
			return false
		}
	}
	return true
}

// Init returns parameters for a from-scratch run: transformers' Llama
// initialisation, deterministic in seed (see llama.InitParams).
func Init(cfg llama.Config, seed uint64) (*llama.Params, error) {
	if err := CheckFits(cfg); err != nil {
		return nil, fmt.Errorf("initialise model: %w", err)
	}
	p, err := llama.InitParams(cfg, seed)
	if err != nil {
		return nil, fmt.Errorf("initialise model: %w", err)
	}
	return p, nil
}

// ParseModelConfig reads a model_config given in a step config: an object
// with Hugging Face LlamaConfig field names. Absent fields take
// transformers' defaults.
func ParseModelConfig(raw json.RawMessage) (llama.Config, error) {
	cfg, err := llama.ParseConfig(raw)
	if err != nil {
		return llama.Config{}, fmt.Errorf("model_config: %w", err)
	}
	return cfg, nil
}

// StepDirs lists the "step-N" subdirectories of dir, sorted by N
// ascending. Other names are skipped; a missing dir is an empty list.
func StepDirs(dir string) ([]StepDir, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []StepDir
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		n, ok := ParseStepName(e.Name())
		if !ok {
			continue
		}
		out = append(out, StepDir{Step: n, Dir: filepath.Join(dir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	return out, nil
}

// StepDir is one step-N directory.
type StepDir struct {
	Step int64
	Dir  string
}

// StepName is the directory name of step n: "step-N".
func StepName(n int64) string { return fmt.Sprintf("step-%d", n) }

// ParseStepName reads N from "step-N".
func ParseStepName(name string) (int64, bool) {
	s, ok := strings.CutPrefix(name, "step-")
	if !ok || s == "" {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > 1<<50 {
			return 0, false
		}
	}
	return n, true
}

// FindAdapterDir finds a LoRA adapter in a local path, as FindModelDir
// finds models but looking only at adapters: path itself, its latest
// adapter/step-N export, or its latest complete checkpoint when that is an
// adapter's. It reports false when there is none (or path is not local).
func FindAdapterDir(path string) (string, bool) {
	if lora.IsAdapterDir(path) && !hasConfig(path) {
		return path, true
	}
	steps, _ := StepDirs(filepath.Join(path, "adapter"))
	for i := len(steps) - 1; i >= 0; i-- {
		if lora.IsAdapterDir(steps[i].Dir) {
			return steps[i].Dir, true
		}
	}
	steps, _ = StepDirs(filepath.Join(path, "checkpoints"))
	for i := len(steps) - 1; i >= 0; i-- {
		d := steps[i].Dir
		if _, err := os.Stat(filepath.Join(d, "metadata.json")); err == nil {
			if lora.IsAdapterDir(d) {
				return d, true
			}
			break
		}
	}
	return "", false
}

// FindModelDir finds the model in a local path:
//
//   - a directory holding config.json is the model, one holding
//     adapter_config.json a LoRA adapter (Load merges it into its base);
//   - a training step's output (with hf/step-N/) gives its latest export,
//     else its latest adapter export (adapter/step-N/);
//   - a directory of exports (hf/ or adapter/, holding step-N/) gives the latest;
//   - a training step's output without exports gives its latest complete
//     checkpoint (checkpoints/step-N/ with metadata.json), whose files are
//     the same layouts.
func FindModelDir(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("model %s: not a directory (want a directory with config.json and safetensors)", path)
	}
	isModel := func(dir string) bool { return hasConfig(dir) || lora.IsAdapterDir(dir) }
	if isModel(path) {
		return path, nil
	}
	for _, sub := range []string{"hf", "adapter", "."} {
		steps, err := StepDirs(filepath.Join(path, sub))
		if err != nil {
			return "", err
		}
		for i := len(steps) - 1; i >= 0; i-- {
			if isModel(steps[i].Dir) {
				return steps[i].Dir, nil
			}
		}
	}
	steps, err := StepDirs(filepath.Join(path, "checkpoints"))
	if err != nil {
		return "", err
	}
	for i := len(steps) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(steps[i].Dir, "metadata.json")); err == nil {
			return steps[i].Dir, nil
		}
	}
	return "", fmt.Errorf("model %s: no config.json or adapter_config.json there, and no hf/step-N, adapter/step-N or checkpoints/step-N inside", path)
}
