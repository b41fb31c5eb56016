package gomlx

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/backends/model/llama"
)

// TestEvalEngineMatchesCPU scores the same continuations through this
// engine's decoder (pure-Go engine) and the cpu engine's, and generates
// greedily on both: same numbers to float32 rounding, same tokens.
func TestEvalEngineMatchesCPU(t *testing.T) {
	cfg := llama.Config{ModelType: "llama", VocabSize: 64, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HiddenAct: "silu", RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 128}
	p := initParams(t, cfg, 5)
	for _, tn := range p.Tensors() {
		if len(tn.Shape) > 1 {
			for i := range tn.Data {
				tn.Data[i] *= 6
			}
		}
	}
	g, err := EvalEngine(p, eval.EngineOptions{Rows: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer g.(interface{ Close() error }).Close()
	c, err := cpu.EvalEngine(p, eval.EngineOptions{Rows: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	tok := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(r.IntN(64))
		}
		return out
	}
	reqs := []eval.ScoreRequest{
		{Context: tok(11), Continuations: [][]int32{tok(1), tok(3), tok(2), tok(4)}},
		{Context: tok(1), Continuations: [][]int32{tok(5)}},
		{Context: tok(30), Continuations: [][]int32{tok(1), tok(1)}},
	}
	ctx := context.Background()
	gs, err := g.Score(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Score(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		for j := range reqs[i].Continuations {
			for k := range reqs[i].Continuations[j] {
				a, b := gs[i].LogProbs[j][k], cs[i].LogProbs[j][k]
				if math.Abs(a-b) > 1e-4 {
					t.Errorf("request %d cont %d token %d: gomlx %.6f cpu %.6f", i, j, k, a, b)
				}
				if gs[i].Greedy[j][k] != cs[i].Greedy[j][k] {
					t.Errorf("request %d cont %d token %d: greedy gomlx %v cpu %v", i, j, k, gs[i].Greedy[j][k], cs[i].Greedy[j][k])
				}
			}
		}
	}
	gen := []eval.GenerateRequest{{Prompt: tok(7), MaxNew: 5}, {Prompt: tok(3), MaxNew: 4, Stop: func(g []int32) bool { return len(g) == 2 }}, {Prompt: tok(2), MaxNew: 3}}
	gg, err := g.Generate(ctx, gen)
	if err != nil {
		t.Fatal(err)
	}
	cg, err := c.Generate(ctx, gen)
	if err != nil {
		t.Fatal(err)
	}
	for i := range gen {
		if len(gg[i]) != len(cg[i]) {
			t.Fatalf("request %d: gomlx %v cpu %v", i, gg[i], cg[i])
		}
		for k := range gg[i] {
			if gg[i][k] != cg[i][k] {
				t.Errorf("request %d: gomlx %v cpu %v", i, gg[i], cg[i])
				break
			}
		}
	}
}
