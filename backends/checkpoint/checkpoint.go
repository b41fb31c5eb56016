// Package checkpoint reads and writes the on-disk model formats every
// training backend shares, so a run can move between backends at any
// checkpoint and every backend's export loads in transformers and vLLM:
//
//	hf/step-N/ (an HF export)
//	  config.json          the model's HF config (architectures filled in)
//	  model.safetensors    float32 weights with HF names, row-major; above 10 GB
//	                       sharded as model-0000i-of-0000n.safetensors + index
//
//	checkpoints/step-N/ (a training checkpoint): the same two, plus
//	  optimizer.bin        AdamW's state in backends/optim's binary layout
//	                       (step, per-tensor first and second moments, CRC)
//	  metadata.json        {"step": N, ...}: the driver's resumption data
//
// Directories are written atomically: into a temporary sibling, then renamed.
package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/backends/optim"
	"github.com/marin-go/marin/backends/safetensors"
)

// File names inside a checkpoint or export directory.
const (
	ConfigFile    = "config.json"
	OptimizerFile = "optimizer.bin"
	MetadataFile  = "metadata.json"
	// MaxShardBytes is where exports start sharding, as transformers' save_pretrained.
	MaxShardBytes = 10 << 30
)

// Tensor is a named float32 tensor.
type Tensor = safetensors.Tensor

// Metadata is metadata.json. Extra holds whatever the training driver adds
// (data-loader position, RNG state), kept as given.
type Metadata struct {
	Step  int64           `json:"step"`
	Extra json.RawMessage `json:"extra,omitempty"`
}

// NormalizeConfig returns config.json's content as exports write it:
// indented, keys sorted, with "architectures" filled in from model_type
// when absent (transformers' AutoModel needs it) and torch_dtype float32
// (as llama.Config.ForExport).
func NormalizeConfig(configJSON []byte) ([]byte, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(configJSON))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("model config: %w", err)
	}
	if _, ok := m["architectures"]; !ok {
		arch := "LlamaForCausalLM"
		switch m["model_type"] {
		case "qwen2":
			arch = "Qwen2ForCausalLM"
		case "mistral":
			arch = "MistralForCausalLM"
		}
		m["architectures"] = []string{arch}
	}
	if _, ok := m["model_type"]; !ok {
		m["model_type"] = "llama"
	}
	if _, ok := m["torch_dtype"]; !ok {
		m["torch_dtype"] = "float32" // the weights written beside it
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// WriteHF writes an HF export (config.json and float32 safetensors) into dir.
func WriteHF(dir string, configJSON []byte, tensors []Tensor) error {
	return atomicDir(dir, func(tmp string) error { return writeModel(tmp, configJSON, tensors) })
}

func writeModel(dir string, configJSON []byte, tensors []Tensor) error {
	cj, err := NormalizeConfig(configJSON)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), cj, 0o644); err != nil {
		return err
	}
	return safetensors.WriteModel(dir, tensors, safetensors.F32, MaxShardBytes, map[string]string{"format": "pt"})
}

// Save writes a training checkpoint into dir. opt may be nil before the
// first optimizer step.
func Save(dir string, configJSON []byte, tensors []Tensor, opt *optim.State, meta Metadata) error {
	return atomicDir(dir, func(tmp string) error {
		if err := writeModel(tmp, configJSON, tensors); err != nil {
			return err
		}
		if opt != nil {
			f, err := os.Create(filepath.Join(tmp, OptimizerFile))
			if err != nil {
				return err
			}
			if _, err := opt.WriteTo(f); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
		mj, err := json.MarshalIndent(meta, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, MetadataFile), append(mj, '\n'), 0o644)
	})
}

// Model is a loaded model directory.
type Model struct {
	ConfigJSON []byte
	Weights    map[string][]float32
	Shapes     map[string][]int
}

// ReadHF reads an HF model directory (or a checkpoint's model part).
func ReadHF(dir string) (*Model, error) {
	cj, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	sm, err := safetensors.OpenModel(dir)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	m := &Model{ConfigJSON: cj, Weights: map[string][]float32{}, Shapes: map[string][]int{}}
	for _, name := range sm.Names() {
		data, shape, err := sm.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("load model %s: %w", dir, err)
		}
		s := make([]int, len(shape))
		for i, d := range shape {
			s[i] = int(d)
		}
		m.Weights[name], m.Shapes[name] = data, s
	}
	return m, nil
}

// Load reads a training checkpoint. The optimizer state is nil when the
// checkpoint was taken before the first step.
func Load(dir string) (*Model, *optim.State, Metadata, error) {
	var meta Metadata
	m, err := ReadHF(dir)
	if err != nil {
		return nil, nil, meta, err
	}
	mj, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if err != nil {
		return nil, nil, meta, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(mj, &meta); err != nil {
		return nil, nil, meta, fmt.Errorf("load checkpoint %s: %s: %w", dir, MetadataFile, err)
	}
	f, err := os.Open(filepath.Join(dir, OptimizerFile))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil, meta, nil
	}
	if err != nil {
		return nil, nil, meta, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	defer f.Close()
	st, err := optim.ReadState(f)
	if err != nil {
		return nil, nil, meta, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	return m, st, meta, nil
}

// atomicDir fills a temporary sibling of dir with fill, then renames it
// over dir.
func atomicDir(dir string, fill func(tmp string) error) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return nil
}
