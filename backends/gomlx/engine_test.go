package gomlx

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestXLAWithoutPluginIsAClearError(t *testing.T) {
	t.Setenv(PJRTPluginEnv, "")
	cases := map[string]struct {
		opts Options
		want string
	}{
		"none":     {Options{Engine: EngineXLA}, "needs a PJRT plugin"},
		"relative": {Options{Engine: EngineXLA, PJRTPlugin: "pjrt_c_api_gpu_plugin.so"}, "not absolute"},
		"missing":  {Options{Engine: EngineXLA, PJRTPlugin: filepath.Join(t.TempDir(), "nope.so")}, "no such file"},
		"engine":   {Options{Engine: "tpu-magic"}, "unknown engine"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(BenchSmall, InitWeights(BenchSmall, 0), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestGradientAccumulationMatchesOneBatch(t *testing.T) {
	// Two micro-batches accumulate to the step on their concatenation:
	// the loss is a mean over all loss-mask tokens of both.
	cfg := Config{ModelType: "llama", VocabSize: 32, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 1,
		NumAttentionHeads: 2, NumKeyValueHeads: 2, HeadDim: 4, HiddenAct: "silu", RMSNormEps: 1e-5, RopeTheta: 10000}
	w := InitWeights(cfg, 7)
	whole := BenchBatch(cfg, 4, 8, 3)
	half := func(i int) Batch {
		n := 2 * 8
		return Batch{BatchSize: 2, SeqLen: 8, Tokens: whole.Tokens[i*n : (i+1)*n], LossMask: whole.LossMask[i*n : (i+1)*n],
			SegmentIDs: whole.SegmentIDs[i*n : (i+1)*n], Positions: whole.Positions[i*n : (i+1)*n]}
	}
	ctx := context.Background()
	a, err := New(cfg, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(cfg, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for range 2 {
		ra, err := a.TrainStep(ctx, 1e-2, whole)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.TrainStep(ctx, 1e-2, half(0), half(1))
		if err != nil {
			t.Fatal(err)
		}
		if d := ra.Loss - rb.Loss; d > 1e-6 || d < -1e-6 || ra.Tokens != rb.Tokens {
			t.Fatalf("loss %v (%v tokens) vs accumulated %v (%v tokens)", ra.Loss, ra.Tokens, rb.Loss, rb.Tokens)
		}
	}
	wa, _ := a.Weights()
	wb, _ := b.Weights()
	for name, x := range wa {
		for i := range x {
			if d := x[i] - wb[name][i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("%s[%d]: %v vs accumulated %v", name, i, x[i], wb[name][i])
			}
		}
	}
}

// The accelerator recipe (bf16 compute, f32 master weights) runs on the
// pure-Go engine too, which emulates bf16: its loss tracks float32's.
func TestBF16ComputeTracksFloat32(t *testing.T) {
	cfg := Config{ModelType: "llama", VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8, HiddenAct: "silu", RMSNormEps: 1e-5, RopeTheta: 10000}
	w := InitWeights(cfg, 3)
	batch := BenchBatch(cfg, 2, 16, 5)
	ctx := context.Background()
	on, off := true, false
	var losses [2][]float64
	for i, bf := range []*bool{&off, &on} {
		m, err := New(cfg, w, Options{BF16: bf})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			r, err := m.TrainStep(ctx, 1e-2, batch)
			if err != nil {
				t.Fatal(err)
			}
			losses[i] = append(losses[i], r.Loss)
		}
		ws, _ := m.Weights()
		if len(ws["model.norm.weight"]) != cfg.HiddenSize {
			t.Fatalf("master weights lost")
		}
		m.Close()
	}
	for s := range losses[0] {
		if d := (losses[1][s] - losses[0][s]) / losses[0][s]; d > 2e-2 || d < -2e-2 {
			t.Errorf("step %d: bf16 loss %v vs float32 %v", s, losses[1][s], losses[0][s])
		}
	}
	if !(losses[1][4] < losses[1][0]) {
		t.Errorf("bf16 training did not lower the loss: %v", losses[1])
	}
	t.Logf("float32 %v\nbf16    %v", losses[0], losses[1])
}

func TestMoreDevicesThanTheEngineHas(t *testing.T) {
	_, err := New(BenchSmall, InitWeights(BenchSmall, 0), Options{Devices: 2})
	if err == nil || !strings.Contains(err.Error(), "2 devices requested") {
		t.Fatalf("got %v", err)
	}
}
