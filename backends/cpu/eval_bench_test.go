package cpu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// The benchmarks run the harness's LM layer (tokenization included) on the
// quickstart's model shape (4 layers of width 128, 0.9M parameters) and on
// a larger small model (8 layers of width 512, 25M parameters), with the
// quickstart's byte-level tokenizer:
//
//	go test ./backends/cpu -run '^$' -bench 'Loglikelihood|Generate' -benchtime 3x
//
// Loglikelihood items are multiple-choice requests as lm-eval makes them:
// a 5-shot-sized context (~400 tokens) and four 1–3 token continuations
// sharing it; items/s counts (context, continuation) pairs. Generation
// reports new tokens/s for 64-token greedy continuations of 100-token
// prompts. The /cpu-s rates divide by the CPU time the process got (all
// threads), which other load on the machine skews less than wall time.

var benchModels = []struct {
	name string
	cfg  llama.Config
}{
	{"quickstart-0.9M", llama.Config{HiddenSize: 128, IntermediateSize: 384, NumHiddenLayers: 4, NumAttentionHeads: 4, NumKeyValueHeads: 4,
		VocabSize: 272, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: true}},
	{"small-25M", llama.Config{HiddenSize: 512, IntermediateSize: 1536, NumHiddenLayers: 8, NumAttentionHeads: 8, NumKeyValueHeads: 4,
		VocabSize: 272, MaxPositionEmbeddings: 1024, RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: true}},
}

func benchLM(b *testing.B, cfg llama.Config) *eval.LM {
	b.Helper()
	p, err := weights.Init(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	e, err := EvalEngine(p, eval.EngineOptions{Rows: 16})
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join("..", "..", "experiments", "quickstart", "tokenizer")
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		b.Fatal(err)
	}
	cj, _ := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	tok, err := tokenizer.FromBytes(tj)
	if err != nil {
		b.Fatal(err)
	}
	v, err := chat.NewVocab(tok, tj, cj)
	if err != nil {
		b.Fatal(err)
	}
	return &eval.LM{Engine: e, Tok: tok, Vocab: v, BatchSize: 16}
}

func BenchmarkLoglikelihood(b *testing.B) {
	for _, m := range benchModels {
		b.Run(m.name, func(b *testing.B) {
			lm := benchLM(b, m.cfg)
			var reqs []eval.LLRequest
			for d := 0; d < 16; d++ {
				ctx := ""
				for s := 0; s < 5; s++ {
					ctx += fmt.Sprintf("Question %d about item %d: which of these is the river?\nA. stone\nB. river\nC. cloud\nD. lamp\nAnswer: B\n\n", s, d)
				}
				ctx += fmt.Sprintf("Question about item %d: which is the cloud?\nA. lamp\nB. cloud\nC. river\nD. seven\nAnswer:", d)
				for _, c := range []string{" A", " B", " C.", " D!?"} {
					reqs = append(reqs, eval.LLRequest{Context: eval.Prompt{Text: ctx}, Continuation: c})
				}
			}
			b.ResetTimer()
			start, cpu0 := time.Now(), processCPU()
			for i := 0; i < b.N; i++ {
				if _, err := lm.Loglikelihood(context.Background(), reqs); err != nil {
					b.Fatal(err)
				}
			}
			n := float64(b.N * len(reqs))
			b.ReportMetric(n/time.Since(start).Seconds(), "items/s")
			b.ReportMetric(n/(processCPU()-cpu0), "items/cpu-s")
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, m := range benchModels {
		b.Run(m.name, func(b *testing.B) {
			lm := benchLM(b, m.cfg)
			var reqs []eval.GenRequest
			for d := 0; d < 4; d++ {
				prompt := ""
				for len(prompt) < 100 {
					prompt += fmt.Sprintf("item %d goes to the river. ", d)
				}
				// No stop sequence a random model could hit: every request
				// generates its 64 tokens.
				reqs = append(reqs, eval.GenRequest{Context: eval.Prompt{Text: prompt[:100]}, Until: []string{"\x01\x02never"}, MaxGenToks: 64})
			}
			lm.Vocab.EOS = ""
			b.ResetTimer()
			start, cpu0 := time.Now(), processCPU()
			for i := 0; i < b.N; i++ {
				if _, err := lm.GenerateUntil(context.Background(), reqs); err != nil {
					b.Fatal(err)
				}
			}
			n := float64(b.N * len(reqs) * 64)
			b.ReportMetric(n/time.Since(start).Seconds(), "tokens/s")
			b.ReportMetric(n/(processCPU()-cpu0), "tokens/cpu-s")
		})
	}
}
