package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/marin-go/marin/plugins/storage"
)

// MetricsName is the metrics file in the step's output.
const MetricsName = "metrics.jsonl"

// MetricsRow is one line of metrics.jsonl: one training step.
type MetricsRow struct {
	Step int64 `json:"step"` // updates applied, counting this one (1-based)
	// Loss is the mean training objective over the batch's loss targets
	// (cross-entropy, plus z-loss when z_loss_weight is set).
	Loss  float64  `json:"loss"`
	ZLoss *float64 `json:"z_loss,omitempty"`
	// LR is the learning rate this update used.
	LR float64 `json:"lr"`
	// GradNorm is the global gradient norm before clipping.
	GradNorm        float64 `json:"grad_norm"`
	Tokens          int64   `json:"tokens"`         // positions in the batch (padding included)
	TrainedTokens   int64   `json:"trained_tokens"` // loss targets in the batch
	TokensPerSecond float64 `json:"tokens_per_second"`
	// MFU is model FLOPs (3 × Levanter's forward FLOPs per token) over the
	// peak recorded in the run's log.
	MFU         float64 `json:"mfu"`
	StepSeconds float64 `json:"step_seconds"`
	// EvalLoss is the cross-entropy over every validation-only component
	// (token weighted), Eval each component's, on steps that evaluate.
	EvalLoss *float64           `json:"eval_loss,omitempty"`
	Eval     map[string]float64 `json:"eval,omitempty"`
}

type metricsWriter struct {
	f *os.File
}

// openMetrics opens metrics.jsonl for appending, first dropping rows of
// steps after keep (a killed run wrote them; the resumed run writes them
// again) and a torn last line.
func openMetrics(path string, keep int64) (*metricsWriter, error) {
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("metrics %s: %w", path, err)
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line := sc.Bytes()
		var r struct {
			Step *int64 `json:"step"`
		}
		if json.Unmarshal(line, &r) != nil || r.Step == nil || *r.Step > keep {
			continue
		}
		kept.Write(line)
		kept.WriteByte('\n')
	}
	if !bytes.Equal(kept.Bytes(), raw) {
		if err := storage.WriteAtomic(context.Background(), path, kept.Bytes()); err != nil {
			return nil, fmt.Errorf("metrics %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", path, err)
	}
	return &metricsWriter{f: f}, nil
}

func (w *metricsWriter) Write(r MetricsRow) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("metrics: step %d: %w", r.Step, err)
	}
	if _, err := w.f.Write(append(raw, '\n')); err != nil {
		return fmt.Errorf("metrics %s: %w", w.f.Name(), err)
	}
	return nil
}

func (w *metricsWriter) Close() error { return w.f.Close() }

// ReadMetrics reads metrics.jsonl.
func ReadMetrics(path string) ([]MetricsRow, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	var out []MetricsRow
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for n := 1; sc.Scan(); n++ {
		var r MetricsRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("metrics %s: line %d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}
