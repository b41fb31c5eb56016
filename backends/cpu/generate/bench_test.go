package generate

import (
	"context"
	"fmt"
	"testing"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/sample"
)

// BenchmarkDecode measures greedy generation (a 32-token prompt per row,
// then 32 new tokens) on a 4.5M-parameter model, one row and eight rows
// decoded together:
//
//	go test ./backends/cpu/generate -run '^$' -bench Decode -benchtime 5x
func BenchmarkDecode(b *testing.B) {
	cfg := llama.Config{VocabSize: 2048, HiddenSize: 256, IntermediateSize: 688, NumHiddenLayers: 4,
		NumAttentionHeads: 8, NumKeyValueHeads: 4, MaxPositionEmbeddings: 2048, RMSNormEps: 1e-5, RopeTheta: 10000}
	p, err := llama.InitParams(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	const prompt, newTokens = 32, 32
	for _, rows := range []int{1, 8} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			d, err := NewDecoder(p, rows, 0)
			if err != nil {
				b.Fatal(err)
			}
			prompts := make([][]uint32, rows)
			for r := range prompts {
				for i := range prompt {
					prompts[r] = append(prompts[r], uint32((r*131+i*17)%cfg.VocabSize))
				}
			}
			b.ResetTimer()
			for range b.N {
				d.Reset()
				if _, err := sample.Generate(context.Background(), d, prompts, sample.Options{MaxNewTokens: newTokens}, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows*newTokens*b.N)/b.Elapsed().Seconds(), "new-tokens/s")
		})
	}
}
