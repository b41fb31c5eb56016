package gomlx

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/conformance/cpubackend"
)

const benchBatch, benchSeq = 4, 256

// BenchmarkTrainSmall measures both backends' training throughput (one
// AdamW step per op) on BenchSmall, the same weights and batch:
//
//	go test ./backends/gomlx -run '^$' -bench TrainSmall -benchtime 5x
func BenchmarkTrainSmall(b *testing.B) {
	ctx := context.Background()
	cfgJSON, err := json.Marshal(BenchSmall)
	if err != nil {
		b.Fatal(err)
	}
	weights := InitWeights(BenchSmall, 0)
	gb := BenchBatch(BenchSmall, benchBatch, benchSeq, 1)
	batch := conformance.Batch{BatchSize: gb.BatchSize, SeqLen: gb.SeqLen, Tokens: gb.Tokens, LossMask: gb.LossMask,
		SegmentIDs: gb.SegmentIDs, Positions: gb.Positions}
	opt := conformance.Optim{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, MaxGradNorm: 1}
	for _, be := range []conformance.Backend{Conformance(Options{Engine: EngineGo}), cpubackend.Backend()} {
		b.Run(be.Name(), func(b *testing.B) {
			m, err := be.Open(ctx, cfgJSON, weights)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			if _, err := m.TrainStep(ctx, batch, opt, 1e-4); err != nil { // compiles, allocates
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := m.TrainStep(ctx, batch, opt, 1e-4); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchBatch*benchSeq*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
