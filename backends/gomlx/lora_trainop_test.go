package gomlx

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/backends/train/traintest"
)

// loraJob runs the train op fine-tuning base with a LoRA adapter (r 4,
// alpha 8, dropout 0.1, every linear projection) for steps steps.
func loraJob(t *testing.T, root, base, out string, steps int64, factory train.EngineFactory, backend string) []train.MetricsRow {
	t.Helper()
	cfg, err := train.ParseConfig(traintest.Config(t, root, steps))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ModelConfig = nil
	cfg.ModelNameOrPath = &base
	cfg.Lora = &train.LoraConfig{R: 4, Alpha: 8, Dropout: 0.1, TargetModules: "all-linear", Bias: "none"}
	j := &train.Job{Config: cfg, Out: out, NewEngine: factory, BackendName: backend, PeakFLOPS: 1e9}
	if err := j.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, err := train.ReadMetrics(filepath.Join(out, train.MetricsName))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestTrainOpLoRAMatchesCPUAndSwitchesBackends: the train op fine-tunes a
// LoRA adapter on GoMLX along the cpu reference's loss curve (dropout
// masks, schedule, clipping and micro-batches are the op's), exports it in
// PEFT's layout, and a cpu LoRA run killed after its step-4 checkpoint
// finishes on GoMLX.
func TestTrainOpLoRAMatchesCPUAndSwitchesBackends(t *testing.T) {
	root := t.TempDir()
	const steps = 6
	trainJob(t, root, filepath.Join(root, "pre"), steps, cpu.NewEngine, "cpu")
	base := filepath.Join(root, "pre", "hf", weights.StepName(steps))

	cpuRows := loraJob(t, root, base, filepath.Join(root, "cpu"), steps, cpu.NewEngine, "cpu")
	gx := loraJob(t, root, base, filepath.Join(root, "gomlx"), steps, EngineFactory(Options{}), PluginName)
	if len(cpuRows) != steps || len(gx) != steps {
		t.Fatalf("%d and %d metrics rows, want %d", len(cpuRows), len(gx), steps)
	}
	for i := range cpuRows {
		if d := math.Abs(cpuRows[i].Loss-gx[i].Loss) / math.Abs(cpuRows[i].Loss); d > 1e-4 {
			t.Errorf("LoRA step %d: cpu loss %.7f, gomlx %.7f (rel %.2g)", i+1, cpuRows[i].Loss, gx[i].Loss, d)
		}
	}
	if cpuRows[steps-1].Loss >= cpuRows[0].Loss {
		t.Errorf("LoRA loss went from %.4f to %.4f", cpuRows[0].Loss, cpuRows[steps-1].Loss)
	}
	// Both exports hold the same adapter, in PEFT's layout.
	bp, _, err := weights.LoadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	adapters := map[string]*lora.Adapter{}
	for _, e := range []string{"cpu", "gomlx"} {
		dir := filepath.Join(root, e, "adapter", weights.StepName(steps))
		a, err := lora.Read(dir, bp.Config)
		if err != nil {
			t.Fatalf("%s export: %v", e, err)
		}
		adapters[e] = a
	}
	ca, ga := adapters["cpu"].Tensors(), adapters["gomlx"].Tensors()
	if len(ca) != len(ga) || len(ca) == 0 {
		t.Fatalf("adapter exports hold %d and %d tensors", len(ca), len(ga))
	}
	for i := range ca {
		if ca[i].Name != ga[i].Name {
			t.Fatalf("tensor %d: cpu %s, gomlx %s", i, ca[i].Name, ga[i].Name)
		}
		for j := range ca[i].Data {
			if d := math.Abs(float64(ca[i].Data[j] - ga[i].Data[j])); d > 1e-4 {
				t.Fatalf("%s[%d]: cpu %g, gomlx %g", ca[i].Name, j, ca[i].Data[j], ga[i].Data[j])
			}
		}
	}

	// Switch backends: the cpu LoRA run as if killed after its step-4
	// checkpoint (an adapter checkpoint), finished on GoMLX.
	half := filepath.Join(root, "half")
	if err := os.CopyFS(half, os.DirFS(filepath.Join(root, "cpu"))); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(half, "checkpoints", weights.StepName(steps))); err != nil {
		t.Fatal(err)
	}
	rest := loraJob(t, root, base, half, steps, EngineFactory(Options{}), PluginName)
	if len(rest) != steps {
		t.Fatalf("resumed LoRA run has %d rows, want %d", len(rest), steps)
	}
	for i := 4; i < steps; i++ {
		if d := math.Abs(cpuRows[i].Loss-rest[i].Loss) / math.Abs(cpuRows[i].Loss); d > 1e-4 {
			t.Errorf("switched LoRA run step %d: loss %.7f, cpu %.7f", i+1, rest[i].Loss, cpuRows[i].Loss)
		}
	}
}
