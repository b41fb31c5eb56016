package gomlx

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/train"
)

// Checkpoints and hf/ exports are written and read by the same code as the
// cpu engine's (backends/train, backends/model/weights): config.json,
// float32 model.safetensors with HF names, optimizer.bin (backends/model/
// optim's AdamW state) and a verified metadata.json. So a run can move
// between engines at any checkpoint, and every export loads in
// transformers and vLLM.

// Backend is what this backend writes into a checkpoint's trainer state.
const Backend = "gomlx"

// ExportHF writes the model in Hugging Face layout (config.json,
// generation_config.json, safetensors; tokenizer files are the caller's).
func (m *Model) ExportHF(ctx context.Context, dir string) error {
	p, err := m.Params()
	if err != nil {
		return err
	}
	return weights.ExportHF(dir, p, weights.ExportOptions{})
}

// SaveCheckpoint writes weights, optimizer state and ts (its Backend set
// to "gomlx") to dir atomically, as backends/train does; a model training a
// LoRA adapter writes the adapter (train.SaveAdapterCheckpoint).
func (m *Model) SaveCheckpoint(ctx context.Context, dir string, ts train.TrainerState, temporary bool, tokenizerDir string) error {
	st, err := m.OptimizerState()
	if err != nil {
		return err
	}
	ts.Backend = Backend
	if m.adapter != nil {
		a, err := m.Adapter()
		if err != nil {
			return err
		}
		a.Spec = m.adapter.Spec
		return train.SaveAdapterCheckpoint(dir, int64(m.Steps()), a, st, ts, temporary, tokenizerDir)
	}
	p, err := m.Params()
	if err != nil {
		return err
	}
	return train.SaveCheckpoint(dir, int64(m.Steps()), p, st, ts, temporary, tokenizerDir)
}

// LoadHF opens an HF model directory (config.json + safetensors, sharded
// or not, F32/BF16/F16), or a LoRA adapter directory as its base with the
// adapter merged.
func LoadHF(dir string, opts Options) (*Model, error) {
	p, _, err := weights.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	m, err := New(p, opts)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	return m, nil
}

// LoadCheckpoint verifies and resumes a checkpoint written by either
// engine; it also returns the checkpoint's trainer state. A LoRA run's
// checkpoint resumes training its adapter over the base its
// adapter_config.json names.
func LoadCheckpoint(dir string, opts Options) (*Model, train.TrainerState, error) {
	ck, err := train.LoadCheckpoint(dir)
	if err != nil {
		return nil, train.TrainerState{}, err
	}
	var m *Model
	if ck.IsAdapter {
		base, a, _, err := weights.LoadAdapter(context.Background(), dir, nil)
		if err != nil {
			return nil, train.TrainerState{}, fmt.Errorf("load checkpoint %s: %w", dir, err)
		}
		m, err = NewLoRA(base, a, opts, ck.Trainer().Seed)
		if err != nil {
			return nil, train.TrainerState{}, fmt.Errorf("load checkpoint %s: %w", dir, err)
		}
	} else if m, err = New(ck.Params, opts); err != nil {
		return nil, train.TrainerState{}, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	if err := m.LoadOptimizerState(ck.Optimizer); err != nil {
		m.Close()
		return nil, train.TrainerState{}, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	return m, ck.Trainer(), nil
}
