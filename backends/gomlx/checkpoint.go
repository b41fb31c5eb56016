package gomlx

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/backends/checkpoint"
	"github.com/marin-go/marin/backends/optim"
)

// Checkpoints and hf/ exports use backends/checkpoint, the format the cpu
// backend shares: config.json, float32 model.safetensors (HF names),
// optimizer.bin (backends/optim's AdamW state) and metadata.json.

// ExportHF writes config.json and the weights in Hugging Face layout.
func (m *Model) ExportHF(ctx context.Context, dir string) error {
	w, err := m.Weights()
	if err != nil {
		return err
	}
	return checkpoint.WriteHF(dir, m.rawConfig, tensorsOf(m.specs, w))
}

func tensorsOf(specs []ParamSpec, w map[string][]float32) []checkpoint.Tensor {
	var ts []checkpoint.Tensor
	for _, s := range specs {
		shape := make([]int64, len(s.Shape))
		for i, d := range s.Shape {
			shape[i] = int64(d)
		}
		ts = append(ts, checkpoint.Tensor{Name: s.Name, Shape: shape, Data: w[s.Name]})
	}
	return ts
}

// SaveCheckpoint writes weights, optimizer state and meta (its Step is set
// to the optimizer steps taken) to dir atomically.
func (m *Model) SaveCheckpoint(ctx context.Context, dir string, meta checkpoint.Metadata) error {
	w, err := m.Weights()
	if err != nil {
		return err
	}
	mom, vel, steps, err := m.OptimizerState()
	if err != nil {
		return err
	}
	var st *optim.State
	if mom != nil {
		st = &optim.State{Step: int64(steps)}
		for _, s := range m.specs {
			st.Names = append(st.Names, s.Name)
			st.M = append(st.M, mom[s.Name])
			st.V = append(st.V, vel[s.Name])
		}
	}
	meta.Step = int64(steps)
	return checkpoint.Save(dir, m.rawConfig, tensorsOf(m.specs, w), st, meta)
}

// LoadHF opens an HF model directory (config.json + safetensors).
func LoadHF(dir string, opts Options) (*Model, error) {
	hf, err := checkpoint.ReadHF(dir)
	if err != nil {
		return nil, err
	}
	return fromFiles(dir, hf, opts)
}

func fromFiles(dir string, hf *checkpoint.Model, opts Options) (*Model, error) {
	cfg, err := ParseConfig(hf.ConfigJSON)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	for _, s := range cfg.Params() {
		if shape, ok := hf.Shapes[s.Name]; ok && fmt.Sprint(shape) != fmt.Sprint(s.Shape) {
			return nil, fmt.Errorf("load model %s: %s has shape %v, config wants %v", dir, s.Name, shape, s.Shape)
		}
	}
	m, err := New(cfg, hf.Weights, opts)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	m.rawConfig = hf.ConfigJSON
	return m, nil
}

// LoadCheckpoint resumes a model and its optimizer state from a checkpoint
// directory; it also returns the checkpoint's metadata.
func LoadCheckpoint(dir string, opts Options) (*Model, checkpoint.Metadata, error) {
	hf, st, meta, err := checkpoint.Load(dir)
	if err != nil {
		return nil, meta, err
	}
	m, err := fromFiles(dir, hf, opts)
	if err != nil {
		return nil, meta, err
	}
	if st == nil {
		return m, meta, m.SetOptimizerState(nil, nil, 0)
	}
	mom, vel := map[string][]float32{}, map[string][]float32{}
	for i, name := range st.Names {
		mom[name], vel[name] = st.M[i], st.V[i]
	}
	if err := m.SetOptimizerState(mom, vel, int(st.Step)); err != nil {
		m.Close()
		return nil, meta, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	return m, meta, nil
}
