package gomlx

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/train"
)

// TestLoRABF16Base: with bf16 compute (what accelerators use) the frozen
// base is held in bfloat16 while the adapter and its moments stay float32,
// and training tracks the float32 run.
func TestLoRABF16Base(t *testing.T) {
	ctx := context.Background()
	lf := conformance.LoRATrainFixture()
	bf16, f32 := true, false
	newModel := func(bf *bool) *Model {
		m, err := NewLoRA(lf.Params(t), lf.NewAdapter(t), Options{Engine: EngineGo, BF16: bf}, conformance.TrainSeed)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		m.SetAdamW(conformance.TrainAdamW, conformance.TrainZLoss)
		return m
	}
	mb, mf := newModel(&bf16), newModel(&f32)
	for i, ft := range mb.dev[0].frozen {
		if ft.DType() != dtypes.BFloat16 {
			t.Fatalf("frozen %s held as %s", mb.frozen[i].name, ft.DType())
		}
	}
	for _, p := range mb.dev[0].params {
		if p.DType() != dtypes.Float32 {
			t.Fatalf("an adapter tensor is held as %s", p.DType())
		}
	}
	if len(mb.specs) != len(lf.NewAdapter(t).Tensors()) {
		t.Fatalf("%d trained tensors, the adapter has %d", len(mb.specs), len(lf.NewAdapter(t).Tensors()))
	}
	vocab := 24
	for i := range 3 {
		b := conformance.TrainBatch(vocab, i)
		rb, _, err := mb.Step(ctx, b, b.B, conformance.TrainLR(i))
		if err != nil {
			t.Fatal(err)
		}
		rf, _, err := mf.Step(ctx, b, b.B, conformance.TrainLR(i))
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(rb.Mean()-rf.Mean()) / rf.Mean(); d > 2e-2 {
			t.Errorf("step %d: bf16 loss %.5g, float32 %.5g", i, rb.Mean(), rf.Mean())
		}
	}
	ab, err := mb.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	af, _ := mf.Adapter()
	worst := 0.0
	for i, x := range ab.Flat() {
		worst = math.Max(worst, math.Abs(float64(x-af.Flat()[i])))
	}
	if worst > 2e-3 {
		t.Errorf("after 3 steps the bf16 adapter differs from the float32 one by %.3g", worst)
	}
	t.Logf("bf16 base vs float32 after 3 LoRA steps: adapter within %.3g", worst)
	if _, err := mb.NewDecoder(1, 0); !errors.Is(err, errLoRADecoder) {
		t.Errorf("a decoder over a LoRA training model: %v", err)
	}
}

// TestLoRAAdapterIsACopy: Adapter returns the trained values without
// aliasing the device state, and the caller's adapter is not trained in
// place.
func TestLoRAAdapterIsACopy(t *testing.T) {
	lf := conformance.LoRATrainFixture()
	start := lf.NewAdapter(t)
	m, err := NewLoRA(lf.Params(t), start, Options{Engine: EngineGo}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := conformance.TrainBatch(24, 0)
	if _, _, err := m.Step(context.Background(), b, 1, 1e-2); err != nil {
		t.Fatal(err)
	}
	got, err := m.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	if err := got.SameLayout(start); err != nil {
		t.Fatal(err)
	}
	changed := false
	for i, x := range got.Flat() {
		changed = changed || x != start.Flat()[i]
	}
	if !changed || !sameValues(start, lf.NewAdapter(t)) {
		t.Errorf("the step changed the adapter: %v; the caller's copy untouched: %v", changed, sameValues(start, lf.NewAdapter(t)))
	}
}

func sameValues(a, b *lora.Adapter) bool {
	for i, x := range a.Flat() {
		if x != b.Flat()[i] {
			return false
		}
	}
	return true
}

// TestLoRACheckpointRoundTrip: Model.SaveCheckpoint writes a LoRA model's
// adapter checkpoint, and LoadCheckpoint resumes it over the base its
// adapter_config.json names.
func TestLoRACheckpointRoundTrip(t *testing.T) {
	ctx := context.Background()
	lf := conformance.LoRATrainFixture()
	baseDir := filepath.Join(t.TempDir(), "base")
	if err := weights.ExportHF(baseDir, lf.Params(t), weights.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	a := lf.NewAdapter(t)
	a.Spec.BaseModel = baseDir
	m, err := NewLoRA(lf.Params(t), a, Options{Engine: EngineGo}, 9)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetAdamW(conformance.TrainAdamW, 0)
	for i := range 2 {
		b := conformance.TrainBatch(24, i)
		if _, _, err := m.Step(ctx, b, 1, conformance.TrainLR(i)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "step-2")
	if err := m.SaveCheckpoint(ctx, dir, train.TrainerState{Seed: 9}, false, ""); err != nil {
		t.Fatal(err)
	}
	r, ts, err := LoadCheckpoint(dir, Options{Engine: EngineGo})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetAdamW(conformance.TrainAdamW, 0)
	if r.Steps() != 2 || ts.Backend != Backend || r.adapter == nil {
		t.Fatalf("resumed at step %d, trainer state %+v, LoRA %v", r.Steps(), ts, r.adapter != nil)
	}
	b := conformance.TrainBatch(24, 2)
	for _, x := range []*Model{m, r} {
		if _, _, err := x.Step(ctx, b, 1, conformance.TrainLR(2)); err != nil {
			t.Fatal(err)
		}
	}
	am, _ := m.Adapter()
	ar, _ := r.Adapter()
	if !sameValues(am, ar) {
		t.Error("the resumed LoRA model's next step differs from the original's")
	}
}
