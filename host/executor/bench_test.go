package executor

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
)

// planGraph generates n steps: chains of five (each step reading the
// previous one) and fan-in steps that read four earlier steps each, with
// config trees about the size of a tokenize or train step's.
func planGraph(n int) []*graph.Step {
	rng := rand.New(rand.NewSource(1))
	var steps []*graph.Step
	for len(steps) < n {
		i := len(steps)
		cfg := map[string]any{
			"i":         int64(i),
			"optimizer": map[string]any{"learning_rate": rng.Float64(), "weight_decay": 0.1, "betas": []any{0.9, 0.95}},
			"format":    map[string]any{"name": "llama3", "mask_user_turns": true},
			"resources": graph.Unversioned{Value: map[string]any{"gpus": int64(8)}},
			"out":       graph.ThisOutput{Sub: "hf"},
		}
		switch {
		case i%10 == 9:
			var ins []any
			for j := 0; j < 4; j++ {
				ins = append(ins, &graph.InputRef{Step: steps[rng.Intn(i)]})
			}
			cfg["inputs"] = ins
		case i%5 != 0:
			cfg["input"] = &graph.InputRef{Step: steps[i-1]}
		}
		steps = append(steps, &graph.Step{Name: fmt.Sprintf("stage%d/step%04d", i%7, i), Op: "op", Config: cfg})
	}
	return steps
}

// BenchmarkPlan1000 plans a 1,000-step graph (graph.Build) and computes its
// dry-run decisions against an empty mem:// prefix.
func BenchmarkPlan1000(b *testing.B) {
	steps := planGraph(1000)
	ctx := context.Background()
	for b.Loop() {
		root := storage.NewMemURL("bench")
		plan, err := graph.Build(root+"/out", steps)
		if err != nil {
			b.Fatal(err)
		}
		if len(plan.Steps) != 1000 {
			b.Fatalf("%d steps planned", len(plan.Steps))
		}
		ds, err := Plan(ctx, plan, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) != 1000 || ds[999].Decision != DecisionRun {
			b.Fatalf("decisions: %d", len(ds))
		}
		storage.DropMem(root)
	}
}
