package gomlx

import (
	"context"
	"fmt"
	"testing"

	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/model/sample"
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
			eng, err := e.factory(params.Clone(), train.Setup{AdamW: optim.DefaultAdamW()})
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

// BenchmarkDecode measures greedy generation through each engine's
// decoder (a 32-token prompt per row, then 32 new tokens) on BenchSmall,
// one row and eight rows decoded together:
//
//	go test ./backends/gomlx -run '^$' -bench Decode -benchtime 5x
func BenchmarkDecode(b *testing.B) {
	params, err := llama.InitParams(BenchSmall, 1)
	if err != nil {
		b.Fatal(err)
	}
	const prompt, newTokens = 32, 32
	for _, e := range []struct {
		name    string
		factory sample.DecoderFactory
	}{{"gomlx-go", DecoderFactory(Options{Engine: EngineGo})}, {"cpu", cpu.NewDecoder}} {
		for _, rows := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/rows=%d", e.name, rows), func(b *testing.B) {
				d, err := e.factory(params, rows, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				prompts := make([][]uint32, rows)
				for r := range prompts {
					for i := range prompt {
						prompts[r] = append(prompts[r], uint32((r*131+i*17)%BenchSmall.VocabSize))
					}
				}
				run := func() {
					d.Reset()
					if _, err := sample.Generate(context.Background(), d, prompts, sample.Options{MaxNewTokens: newTokens}, nil); err != nil {
						b.Fatal(err)
					}
				}
				run() // compiles
				b.ResetTimer()
				for range b.N {
					run()
				}
				b.ReportMetric(float64(rows*newTokens*b.N)/b.Elapsed().Seconds(), "new-tokens/s")
			})
		}
	}
}
