package gomlx

import (
	"context"
	"testing"

	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/train"
)

const benchBatch, benchSeq = 4, 256

// BenchmarkTrainSmall measures both engines' training throughput (one
// AdamW step per op, through train.Engine) on BenchSmall, the same weights
// and batch:
//
//	go test ./backends/gomlx -run '^$' -bench TrainSmall -benchtime 5x
func BenchmarkTrainSmall(b *testing.B) {
	ctx := context.Background()
	params, err := llama.InitParams(BenchSmall, 0)
	if err != nil {
		b.Fatal(err)
	}
	batch := BenchBatch(BenchSmall, benchBatch, benchSeq, 1)
	for _, e := range []struct {
		name    string
		factory train.EngineFactory
	}{{"gomlx-go", EngineFactory(Options{Engine: EngineGo})}, {"cpu", cpu.NewEngine}} {
		b.Run(e.name, func(b *testing.B) {
			eng, err := e.factory(params.Clone(), optim.DefaultAdamW(), 0)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			if _, _, err := eng.Step(ctx, batch, benchBatch, 1e-4); err != nil { // compiles, allocates
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, _, err := eng.Step(ctx, batch, benchBatch, 1e-4); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchBatch*benchSeq*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
