package cpu

import (
	"context"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/train"
)

// BenchmarkLoRAVsFull measures a training step of the engine on the CPU
// benchmark model (backends/cpu/transformer's: d_model 512, 8 layers, 8
// heads, intermediate 1376, vocabulary 32,000, untied head; 58M
// parameters) over one sequence of 512 tokens, fine-tuning every parameter
// and training LoRA adapters (r 8, alpha 16, on q_proj and v_proj, and on
// every linear projection). It reports tokens/s by wall time and by the
// process's CPU time over the threads (what the cores do when they run, so
// a busy machine skews it less), the peak of the Go heap during a step
// (weights, gradients, AdamW moments, activations and the step's garbage),
// and the trainable parameters.
//
//	go test ./backends/cpu -run '^$' -bench LoRAVsFull -benchtime 3x
func BenchmarkLoRAVsFull(b *testing.B) {
	cfg := llama.Config{
		HiddenSize: 512, IntermediateSize: 1376, NumHiddenLayers: 8,
		NumAttentionHeads: 8, NumKeyValueHeads: 4,
		VocabSize: 32000, MaxPositionEmbeddings: 2048,
		RMSNormEps: 1e-5, RopeTheta: 500000,
	}
	const T = 512
	batch := llama.NewBatch(1, T)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range batch.Tokens {
		batch.Tokens[i] = int32(r.IntN(cfg.VocabSize))
		batch.Positions[i] = int32(i)
		batch.LossMask[i] = i < T-1
	}
	for _, mode := range []struct {
		name string
		spec *lora.Spec
	}{
		{"full", nil},
		{"lora-qv-r8", &lora.Spec{R: 8, Alpha: 16}},
		{"lora-all-linear-r8", &lora.Spec{R: 8, Alpha: 16, Targets: lora.Targets{Pattern: lora.AllLinear}}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			runtime.GC()
			params, err := llama.InitParams(cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			s := train.Setup{AdamW: optim.DefaultAdamW()}
			trainable := params.NumParams()
			if mode.spec != nil {
				if s.LoRA, err = lora.New(*mode.spec, cfg); err != nil {
					b.Fatal(err)
				}
				if err := s.LoRA.Init(params, 1); err != nil {
					b.Fatal(err)
				}
				trainable = s.LoRA.NumParams()
			}
			eng, err := NewEngine(params, s)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			ctx := context.Background()
			if _, _, err := eng.Step(ctx, batch, 1, 1e-4); err != nil { // allocates the buffers
				b.Fatal(err)
			}
			runtime.GC()
			peak := peakHeapDuring(func() {
				if _, _, err := eng.Step(ctx, batch, 1, 1e-4); err != nil {
					b.Fatal(err)
				}
			})
			b.ResetTimer()
			t0, c0 := time.Now(), processCPU()
			for range b.N {
				if _, _, err := eng.Step(ctx, batch, 1, 1e-4); err != nil {
					b.Fatal(err)
				}
			}
			wall, cpu := time.Since(t0).Seconds(), processCPU()-c0
			b.StopTimer()
			tokens := float64(b.N * T)
			b.ReportMetric(tokens/wall, "tok/s")
			if cpu > 0 {
				b.ReportMetric(tokens/(cpu/float64(kernels.Threads())), "tok/s-cpu")
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(trainable), "trainable-params")
		})
	}
}

// peakHeapDuring samples the Go heap (live and not yet collected objects)
// every 200µs while fn runs and returns the largest sample.
func peakHeapDuring(fn func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	peak := read()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(200 * time.Microsecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				peak = max(peak, read())
			}
		}
	}()
	fn()
	close(done)
	wg.Wait()
	return max(peak, read())
}

func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
