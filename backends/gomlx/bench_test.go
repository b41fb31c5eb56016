package gomlx

import (
	"context"
	"testing"
)

// BenchmarkTrainSmall measures training throughput on BenchSmall on the
// pure-Go engine:
//
//	go test ./backends/gomlx -run '^$' -bench TrainSmall -benchtime 3x
func BenchmarkTrainSmall(b *testing.B) {
	ctx := context.Background()
	m, err := New(BenchSmall, InitWeights(BenchSmall, 0), Options{Engine: EngineGo})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	batch := BenchBatch(BenchSmall, benchBatch, benchSeq, 1)
	if _, err := m.TrainStep(ctx, 1e-4, batch); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := m.TrainStep(ctx, 1e-4, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchBatch*benchSeq*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

const benchBatch, benchSeq = 4, 256
