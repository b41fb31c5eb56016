package gomlx

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/backends/train/traintest"
)

func trainJob(t *testing.T, root, out string, steps int64, factory train.EngineFactory, backend string) []train.MetricsRow {
	t.Helper()
	cfg, err := train.ParseConfig(traintest.Config(t, root, steps))
	if err != nil {
		t.Fatal(err)
	}
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

// The train op on GoMLX follows the cpu reference's loss curve, and a run
// can switch backends between steps through a checkpoint.
func TestTrainOpMatchesCPUAndSwitchesBackends(t *testing.T) {
	root := t.TempDir()
	const steps = 6
	cpuRows := trainJob(t, root, filepath.Join(root, "cpu"), steps, cpu.NewEngine, "cpu")
	gx := trainJob(t, root, filepath.Join(root, "gomlx"), steps, EngineFactory(Options{}), PluginName)
	if len(cpuRows) != steps || len(gx) != steps {
		t.Fatalf("%d and %d metrics rows, want %d", len(cpuRows), len(gx), steps)
	}
	for i := range cpuRows {
		if d := math.Abs(cpuRows[i].Loss-gx[i].Loss) / math.Abs(cpuRows[i].Loss); d > 1e-4 {
			t.Errorf("step %d: cpu loss %.7f, gomlx %.7f (rel %.2g)", i+1, cpuRows[i].Loss, gx[i].Loss, d)
		}
	}
	// Switch backends: take the cpu run as if it had been killed after its
	// step-4 checkpoint, and finish it on GoMLX.
	half := filepath.Join(root, "half")
	if err := os.CopyFS(half, os.DirFS(filepath.Join(root, "cpu"))); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(half, "checkpoints", weights.StepName(steps))); err != nil {
		t.Fatal(err)
	}
	rest := trainJob(t, root, half, steps, EngineFactory(Options{}), PluginName)
	if len(rest) != steps {
		t.Fatalf("resumed run has %d rows, want %d", len(rest), steps)
	}
	for i := 4; i < steps; i++ {
		if d := math.Abs(cpuRows[i].Loss-rest[i].Loss) / math.Abs(cpuRows[i].Loss); d > 1e-4 {
			t.Errorf("switched run step %d: loss %.7f, cpu %.7f", i+1, rest[i].Loss, cpuRows[i].Loss)
		}
	}
}
