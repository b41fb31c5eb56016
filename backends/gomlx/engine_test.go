package gomlx

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/model/llama"
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
			_, err := New(initParams(t, BenchSmall, 0), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestGradientAccumulationMatchesOneBatch(t *testing.T) {
	// Two micro-batches accumulate to the step on their concatenation:
	// the loss is a mean over all loss-mask tokens of both.
	cfg := llama.Config{ModelType: "llama", VocabSize: 32, HiddenSize: 8, IntermediateSize: 16, NumHiddenLayers: 1,
		NumAttentionHeads: 2, NumKeyValueHeads: 2, HeadDim: 4, HiddenAct: "silu", RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64}
	p := initParams(t, cfg, 7)
	whole := BenchBatch(cfg, 4, 8, 3)
	ctx := context.Background()
	a, err := New(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for range 2 {
		ra, ia, err := a.TrainStep(ctx, 1e-2, whole)
		if err != nil {
			t.Fatal(err)
		}
		rb, ib, err := b.TrainStep(ctx, 1e-2, whole.Rows(0, 2), whole.Rows(2, 2))
		if err != nil {
			t.Fatal(err)
		}
		if d := ra.Mean() - rb.Mean(); d > 1e-6 || d < -1e-6 || ra.Count != rb.Count || math.Abs(ia.GradNorm-ib.GradNorm) > 1e-6 {
			t.Fatalf("loss %v (%v tokens, norm %v) vs accumulated %v (%v tokens, norm %v)", ra.Mean(), ra.Count, ia.GradNorm, rb.Mean(), rb.Count, ib.GradNorm)
		}
	}
	wa, _ := a.Params()
	wb, _ := b.Params()
	for i, x := range wa.Flat() {
		if d := x - wb.Flat()[i]; d > 1e-6 || d < -1e-6 {
			t.Fatalf("weight %d: %v vs accumulated %v", i, x, wb.Flat()[i])
		}
	}
}

// The accelerator recipe (bf16 compute, f32 master weights) runs on the
// pure-Go engine too, which emulates bf16: its loss tracks float32's.
func TestBF16ComputeTracksFloat32(t *testing.T) {
	cfg := llama.Config{ModelType: "llama", VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8, HiddenAct: "silu", RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64}
	p := initParams(t, cfg, 3)
	batch := BenchBatch(cfg, 2, 16, 5)
	ctx := context.Background()
	on, off := true, false
	var losses [2][]float64
	for i, bf := range []*bool{&off, &on} {
		m, err := New(p, Options{BF16: bf})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			r, _, err := m.TrainStep(ctx, 1e-2, batch)
			if err != nil {
				t.Fatal(err)
			}
			losses[i] = append(losses[i], r.Mean())
		}
		ws, _ := m.Params()
		if len(ws.Tensor("model.norm.weight").Data) != cfg.HiddenSize {
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
	_, err := New(initParams(t, BenchSmall, 0), Options{Devices: 2})
	if err == nil || !strings.Contains(err.Error(), "2 devices requested") {
		t.Fatalf("got %v", err)
	}
}

func initParams(t testing.TB, cfg llama.Config, seed uint64) *llama.Params {
	t.Helper()
	p, err := llama.InitParams(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
