package transformer_test

import (
	"math/rand/v2"
	"testing"

	"github.com/marin-go/marin/backends/cpu/adamw"
	"github.com/marin-go/marin/backends/cpu/transformer"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
)

// TestTinyModelLearns trains a small model with AdamW on a deterministic
// task (each document counts upwards modulo the vocabulary from a random
// start) and expects the loss to fall from chance to near zero.
func TestTinyModelLearns(t *testing.T) {
	cfg := llama.Config{
		HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2,
		VocabSize: 16, MaxPositionEmbeddings: 64,
	}
	p, err := llama.InitParams(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := llama.NewParams(cfg)
	m, err := transformer.New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	params := make([]adamw.Param, 0, len(p.Tensors()))
	for i, tn := range p.Tensors() {
		params = append(params, adamw.Param{Name: tn.Name, Data: tn.Data, Grad: g.Tensors()[i].Data, Decay: optim.LevanterWeightDecay(tn.Name)})
	}
	acfg := optim.DefaultAdamW()
	acfg.WeightDecay = 0.01
	opt, err := adamw.NewAdamW(acfg, params)
	if err != nil {
		t.Fatal(err)
	}
	const steps = 60
	sched, err := optim.NewSchedule(optim.ScheduleConfig{LearningRate: 1e-2, Schedule: "cosine", Warmup: 5, MinLRRatio: 0.1}, steps)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 3))
	const B, T = 4, 24
	batch := llama.NewBatch(B, T)
	batch.Positions = nil
	var first, last float64
	for step := 0; step < steps; step++ {
		for row := 0; row < B; row++ {
			// Two packed documents a row, each counting from a random start.
			cut := 8 + r.IntN(8)
			start := [2]int{r.IntN(cfg.VocabSize), r.IntN(cfg.VocabSize)}
			for tt := 0; tt < T; tt++ {
				doc, off := 0, tt
				if tt >= cut {
					doc, off = 1, tt-cut
				}
				i := row*T + tt
				batch.Tokens[i] = int32((start[doc] + off) % cfg.VocabSize)
				batch.Segments[i] = int32(doc)
				batch.LossMask[i] = tt+1 < T && tt+1 != cut
			}
		}
		g.Zero()
		res, err := m.LossAndGrad(batch, llama.LossOptions{}, g, 1/float32(batch.TrainedCount()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := opt.Step(params, sched.LR(int(opt.State.Step))); err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = res.Mean()
		}
		last = res.Mean()
	}
	t.Logf("loss %.3f → %.3f", first, last)
	if !(first > 2 && last < 0.5) {
		t.Fatalf("loss went %.3f → %.3f; want it to fall from chance (ln 16 ≈ 2.77) below 0.5", first, last)
	}
}
