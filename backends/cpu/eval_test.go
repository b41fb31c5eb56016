package cpu

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/weights"
)

// tinyModel is a random Llama with grouped-query attention, biases on
// q/k/v (Qwen2-style) and an untied head, with weights scaled up so the
// next-token distributions are far from uniform.
func tinyModel(t testing.TB, maxPos int) *llama.Params {
	t.Helper()
	cfg := llama.Config{
		ModelType: "qwen2", HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		VocabSize: 300, MaxPositionEmbeddings: maxPos, RMSNormEps: 1e-5, RopeTheta: 10000, HiddenAct: "silu",
	}
	p, err := weights.Init(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, tn := range p.Tensors() {
		for i := range tn.Data {
			if len(tn.Shape) == 1 {
				tn.Data[i] = 1 + 0.1*float32(r.NormFloat64())
			} else {
				tn.Data[i] *= 8
			}
		}
	}
	return p
}

func randTokens(r *rand.Rand, n, vocab int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(r.IntN(vocab))
	}
	return out
}

func testRequests(vocab int) []eval.ScoreRequest {
	r := rand.New(rand.NewPCG(3, 4))
	var reqs []eval.ScoreRequest
	// Several continuations of one context (multiple choice), of 1 to 5
	// tokens; a single long continuation (a rolling window); a one-token
	// context.
	reqs = append(reqs, eval.ScoreRequest{Context: randTokens(r, 17, vocab), Continuations: [][]int32{randTokens(r, 1, vocab), randTokens(r, 3, vocab), randTokens(r, 5, vocab)}})
	reqs = append(reqs, eval.ScoreRequest{Context: randTokens(r, 9, vocab), Continuations: [][]int32{randTokens(r, 40, vocab)}})
	reqs = append(reqs, eval.ScoreRequest{Context: randTokens(r, 1, vocab), Continuations: [][]int32{randTokens(r, 2, vocab)}})
	reqs = append(reqs, eval.ScoreRequest{Context: randTokens(r, 30, vocab), Continuations: [][]int32{randTokens(r, 26, vocab)}})
	return reqs
}

// evalEngine is the eval engine over the CPU decoder with rows rows.
func evalEngine(t testing.TB, p *llama.Params, rows int) eval.Engine {
	t.Helper()
	e, err := EvalEngine(p, eval.EngineOptions{Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestScoreRowsAgree scores the same requests one row at a time and four
// rows at a time: a row's numbers do not depend on the others, and a
// continuation scored on top of its context's cache equals scoring context
// and continuation fed alone.
func TestScoreRowsAgree(t *testing.T) {
	p := tinyModel(t, 128)
	reqs := testRequests(300)
	one, err := evalEngine(t, p, 1).Score(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	four, err := evalEngine(t, p, 4).Score(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	e := evalEngine(t, p, 1)
	for i, rq := range reqs {
		for j, c := range rq.Continuations {
			alone, err := e.Score(context.Background(), []eval.ScoreRequest{{Context: rq.Context, Continuations: [][]int32{c}}})
			if err != nil {
				t.Fatal(err)
			}
			for k := range c {
				a, b, s := one[i].LogProbs[j][k], four[i].LogProbs[j][k], alone[0].LogProbs[0][k]
				if math.Abs(a-b) > 1e-5 || math.Abs(a-s) > 1e-5 {
					t.Errorf("request %d cont %d token %d: 1 row %.6f, 4 rows %.6f, alone %.6f", i, j, k, a, b, s)
				}
			}
		}
	}
}

// TestLoglikelihoodsMatchPyTorch compares every continuation token's
// log-probability and greedy flag with the PyTorch Llama in
// backends/eval/testdata/torch_llama.py (Debian's python3-torch, run with
// /usr/bin/python3), to 1e-4.
func TestLoglikelihoodsMatchPyTorch(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("skipped: PyTorch is not installed for %s (apt-get install python3-torch; .ci/run installs it): %v", py, err)
	}
	p := tinyModel(t, 128)
	e := evalEngine(t, p, 4)
	reqs := testRequests(300)
	got, err := e.Score(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type tensor struct {
		Shape []int     `json:"shape"`
		Data  []float32 `json:"data"`
	}
	in := map[string]any{"config": p.Config}
	ts := map[string]tensor{}
	for _, tn := range p.Tensors() {
		ts[tn.Name] = tensor{tn.Shape, tn.Data}
	}
	in["tensors"] = ts
	var rq []map[string]any
	for _, r := range reqs {
		rq = append(rq, map[string]any{"context": r.Context, "continuations": r.Continuations})
	}
	in["requests"] = rq
	b, _ := json.Marshal(in)
	inPath, outPath := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	if err := os.WriteFile(inPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("..", "eval", "testdata", "torch_llama.py"), inPath, outPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("torch reference: %v\n%s", err, out)
	}
	var ref struct {
		Results []struct {
			LogProbs [][]float64 `json:"logprobs"`
			Greedy   [][]bool    `json:"greedy"`
		} `json:"results"`
	}
	raw, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range reqs {
		for j := range reqs[i].Continuations {
			sumGot, sumRef := 0.0, 0.0
			for k := range reqs[i].Continuations[j] {
				g, w := got[i].LogProbs[j][k], ref.Results[i].LogProbs[j][k]
				sumGot += g
				sumRef += w
				worst = math.Max(worst, math.Abs(g-w))
				if math.Abs(g-w) > 1e-4 {
					t.Errorf("request %d cont %d token %d: marin %.7f torch %.7f", i, j, k, g, w)
				}
				if got[i].Greedy[j][k] != ref.Results[i].Greedy[j][k] {
					t.Errorf("request %d cont %d token %d: greedy %v, torch %v", i, j, k, got[i].Greedy[j][k], ref.Results[i].Greedy[j][k])
				}
			}
			if math.Abs(sumGot-sumRef) > 1e-4 {
				t.Errorf("request %d cont %d: loglikelihood %.7f, torch %.7f", i, j, sumGot, sumRef)
			}
		}
	}
	t.Logf("largest per-token difference from PyTorch: %.2e", worst)
}

func TestGenerateIsGreedyAndStops(t *testing.T) {
	p := tinyModel(t, 128)
	e := evalEngine(t, p, 2)
	prompt := []int32{5, 6, 7}
	all, err := e.Generate(context.Background(), []eval.GenerateRequest{{Prompt: prompt, MaxNew: 6}})
	if err != nil {
		t.Fatal(err)
	}
	if len(all[0]) != 6 {
		t.Fatalf("generated %d tokens, want 6", len(all[0]))
	}
	// Each generated token is the argmax of the scores after the prefix.
	seq := append([]int32(nil), prompt...)
	for _, tok := range all[0] {
		res, err := e.Score(context.Background(), []eval.ScoreRequest{{Context: seq, Continuations: [][]int32{{tok}}}})
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].Greedy[0][0] {
			t.Errorf("token %d after %v is not the argmax", tok, seq)
		}
		seq = append(seq, tok)
	}
	stopAfter := all[0][2]
	got, err := e.Generate(context.Background(), []eval.GenerateRequest{{Prompt: prompt, MaxNew: 6, Stop: func(g []int32) bool { return g[len(g)-1] == stopAfter }}})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for i, tok := range all[0] {
		if tok == stopAfter {
			want = i + 1
			break
		}
	}
	if len(got[0]) != want {
		t.Errorf("stopped after %d tokens, want %d", len(got[0]), want)
	}
	// Rows in lockstep: two requests generated together (one stopping
	// early) give what each gives alone.
	both, err := e.Generate(context.Background(), []eval.GenerateRequest{
		{Prompt: prompt, MaxNew: 6, Stop: func(g []int32) bool { return g[len(g)-1] == stopAfter }},
		{Prompt: []int32{9, 8}, MaxNew: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	alone, err := e.Generate(context.Background(), []eval.GenerateRequest{{Prompt: []int32{9, 8}, MaxNew: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(both[0]) != fmt.Sprint(got[0]) || fmt.Sprint(both[1]) != fmt.Sprint(alone[0]) {
		t.Errorf("batched %v, alone %v %v", both, got[0], alone[0])
	}
}
