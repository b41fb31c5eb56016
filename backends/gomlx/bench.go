package gomlx

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
)

// Named configurations for benchmarks.
var (
	// Llama1B is Llama 3.2 1B's architecture (1.24B parameters).
	Llama1B = llama.Config{ModelType: "llama", VocabSize: 128256, HiddenSize: 2048, IntermediateSize: 8192,
		NumHiddenLayers: 16, NumAttentionHeads: 32, NumKeyValueHeads: 8, HeadDim: 64, HiddenAct: "silu",
		MaxPositionEmbeddings: 131072, RMSNormEps: 1e-5, RopeTheta: 500000, TieWordEmbeddings: true,
		RopeScaling: &llama.RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}}
	// BenchSmall is a small CPU model (about 4.5M parameters) both engines train in seconds.
	BenchSmall = llama.Config{ModelType: "llama", VocabSize: 2048, HiddenSize: 256, IntermediateSize: 688,
		NumHiddenLayers: 4, NumAttentionHeads: 8, NumKeyValueHeads: 4, HeadDim: 32, HiddenAct: "silu",
		MaxPositionEmbeddings: 2048, RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: false}
)

// BenchBatch returns a packed batch of random tokens: each row holds two
// documents, loss on every position but each document's last.
func BenchBatch(cfg llama.Config, batch, seq int, seed uint64) *llama.Batch {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := llama.NewBatch(batch, seq)
	split := seq / 2
	for r := range batch {
		for t := range seq {
			i := r*seq + t
			b.Tokens[i] = int32(rng.IntN(cfg.VocabSize))
			if t >= split {
				b.Segments[i], b.Positions[i] = 1, int32(t-split)
			} else {
				b.Positions[i] = int32(t)
			}
			b.LossMask[i] = t != split-1 && t != seq-1
		}
	}
	return b
}

// BenchResult is a training throughput measurement.
type BenchResult struct {
	Params       int
	TokensPerSec float64
	FLOPsPerSec  float64 // model FLOPs (3× llama.Config.FlopsPerToken, Levanter's count) per second
	StepTime     time.Duration
	CompileTime  time.Duration // the first step, which compiles
	Loss         float64
	Precision    string // the precision policy trained in
}

// MatmulPeak measures the engine's matmul rate (FLOP/s) in the compute
// dtype of opts' precision policy: a 4096³ product on accelerators, 256³ on
// the CPU engine. It is what PeakFLOPS, and so MFU, is reported against.
func MatmulPeak(opts Options) (float64, error) {
	b, err := engine(opts)
	if err != nil {
		return 0, err
	}
	dt := dtypes.Float32
	if opts.bf16() {
		dt = dtypes.BFloat16
	}
	return matmulPeak(b, dt, opts.Engine == EngineXLA), nil
}

// Bench trains cfg from scratch for warmup+steps steps of batch×seq tokens
// and measures the timed steps.
func Bench(ctx context.Context, cfg llama.Config, opts Options, batch, seq, warmup, steps int) (BenchResult, error) {
	return BenchLoRA(ctx, cfg, opts, nil, batch, seq, warmup, steps)
}

// BenchLoRA is Bench training a LoRA adapter laid out by spec (PEFT's
// initialisation) over the random base instead, when spec is not nil.
func BenchLoRA(ctx context.Context, cfg llama.Config, opts Options, spec *lora.Spec, batch, seq, warmup, steps int) (BenchResult, error) {
	if steps <= 0 {
		return BenchResult{}, fmt.Errorf("bench: no timed steps")
	}
	if _, err := engine(opts); err != nil { // before drawing a billion weights
		return BenchResult{}, err
	}
	p, err := llama.InitParams(cfg, 0)
	if err != nil {
		return BenchResult{}, err
	}
	var m *Model
	if spec == nil {
		m, err = New(p, opts)
	} else {
		var a *lora.Adapter
		if a, err = lora.New(*spec, cfg); err == nil {
			if err = a.Init(p, 1); err == nil {
				m, err = NewLoRA(p, a, opts, 1)
			}
		}
	}
	if err != nil {
		return BenchResult{}, err
	}
	defer m.Close()
	batches := []*llama.Batch{BenchBatch(cfg, batch, seq, 1), BenchBatch(cfg, batch, seq, 2)}
	res := BenchResult{Params: cfg.NumParams(), Precision: m.pol.String()}
	start := time.Now()
	for i := range warmup {
		if _, _, err := m.TrainStep(ctx, 1e-4, batches[i%2]); err != nil {
			return res, err
		}
		if i == 0 {
			res.CompileTime = time.Since(start)
		}
	}
	start = time.Now()
	for i := range steps {
		r, _, err := m.TrainStep(ctx, 1e-4, batches[i%2])
		if err != nil {
			return res, err
		}
		res.Loss = r.Mean()
	}
	el := time.Since(start)
	res.StepTime = el / time.Duration(steps)
	res.TokensPerSec = float64(batch*seq*steps) / el.Seconds()
	res.FLOPsPerSec = res.TokensPerSec * 3 * cfg.FlopsPerToken(seq)
	return res, nil
}
