package gomlx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/backends/safetensors"
)

// Files of a checkpoint directory (checkpoints/step-N/), shared with the
// cpu backend so a run can switch backends between steps:
//
//	config.json            the model's HF config
//	model.safetensors      float32 master weights, HF names
//	optimizer.safetensors  Adam's moments, "mu/NAME" and "nu/NAME" (absent before the first step)
//	optimizer.json         {"step": N}: optimizer steps applied
//
// An hf/ export is config.json plus model.safetensors (sharded with an
// index above 10 GB), float32, loadable by transformers and vLLM.
const (
	maxShardBytes = 10 << 30
	optimFile     = "optimizer.safetensors"
	optimMeta     = "optimizer.json"
)

type optimState struct {
	Step int `json:"step"`
}

// ExportHF writes config.json and the weights in Hugging Face layout.
func (m *Model) ExportHF(ctx context.Context, dir string) error {
	w, err := m.Weights()
	if err != nil {
		return err
	}
	return writeHF(dir, m.cfg, m.specs, w)
}

func writeHF(dir string, cfg Config, specs []ParamSpec, w map[string][]float32) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export %s: %w", dir, err)
	}
	cj, err := cfg.JSON()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "config.json"), cj); err != nil {
		return err
	}
	return safetensors.WriteModel(dir, tensorsOf(specs, w, ""), safetensors.F32, maxShardBytes, map[string]string{"format": "pt"})
}

func tensorsOf(specs []ParamSpec, w map[string][]float32, prefix string) []safetensors.Tensor {
	var ts []safetensors.Tensor
	for _, s := range specs {
		shape := make([]int64, len(s.Shape))
		for i, d := range s.Shape {
			shape[i] = int64(d)
		}
		ts = append(ts, safetensors.Tensor{Name: prefix + s.Name, Shape: shape, Data: w[s.Name]})
	}
	return ts
}

// SaveCheckpoint writes weights and optimizer state to dir atomically: it
// fills a temporary sibling directory and renames it into place.
func (m *Model) SaveCheckpoint(ctx context.Context, dir string) error {
	w, err := m.Weights()
	if err != nil {
		return err
	}
	mom, vel, steps, err := m.OptimizerState()
	if err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	if err := writeHF(tmp, m.cfg, m.specs, w); err != nil {
		return err
	}
	if mom != nil {
		ts := append(tensorsOf(m.specs, mom, "mu/"), tensorsOf(m.specs, vel, "nu/")...)
		if err := safetensors.Write(filepath.Join(tmp, optimFile), ts, safetensors.F32, nil); err != nil {
			return err
		}
	}
	meta, _ := json.Marshal(optimState{Step: steps})
	if err := writeFileAtomic(filepath.Join(tmp, optimMeta), meta); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return nil
}

// LoadHF opens an HF model directory (config.json + safetensors).
func LoadHF(dir string, opts Options) (*Model, error) {
	cfg, w, err := readHF(dir)
	if err != nil {
		return nil, err
	}
	return New(cfg, w, opts)
}

func readHF(dir string) (Config, map[string][]float32, error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return Config{}, nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	sm, err := safetensors.OpenModel(dir)
	if err != nil {
		return Config{}, nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	w := map[string][]float32{}
	for _, s := range cfg.Params() {
		d, shape, err := sm.Float32(s.Name)
		if err != nil {
			return Config{}, nil, fmt.Errorf("load model %s: %w", dir, err)
		}
		if !sameShape(shape, s.Shape) {
			return Config{}, nil, fmt.Errorf("load model %s: %s has shape %v, config wants %v", dir, s.Name, shape, s.Shape)
		}
		w[s.Name] = d
	}
	return cfg, w, nil
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

// LoadCheckpoint resumes a model and its optimizer state from a checkpoint directory.
func LoadCheckpoint(dir string, opts Options) (*Model, error) {
	m, err := LoadHF(dir, opts)
	if err != nil {
		return nil, err
	}
	var st optimState
	data, err := os.ReadFile(filepath.Join(dir, optimMeta))
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		m.Close()
		return nil, fmt.Errorf("load checkpoint %s: %s: %w", dir, optimMeta, err)
	}
	var mom, vel map[string][]float32
	if f, err := safetensors.Open(filepath.Join(dir, optimFile)); err == nil {
		mom, vel = map[string][]float32{}, map[string][]float32{}
		for _, s := range m.specs {
			a, _, err1 := f.Float32("mu/" + s.Name)
			b, _, err2 := f.Float32("nu/" + s.Name)
			if err1 != nil || err2 != nil {
				m.Close()
				return nil, fmt.Errorf("load checkpoint %s: optimizer state for %s: %v %v", dir, s.Name, err1, err2)
			}
			mom[s.Name], vel[s.Name] = a, b
		}
	} else if !errors.Is(err, os.ErrNotExist) || st.Step > 0 {
		m.Close()
		return nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	if err := m.SetOptimizerState(mom, vel, st.Step); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
