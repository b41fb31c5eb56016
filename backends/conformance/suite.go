package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/train"
)

// Tolerances for float32 engines.
const (
	LossRelTol   = 1e-5
	GradTol      = 1e-4 // element-wise, times max(1, |g|)
	WeightTol    = 1e-4 // after 10 optimizer steps
	LogitTol     = 1e-4 // element-wise, times max(1, |z|)
	ResumeTol    = 1e-6 // checkpoint round trip, same or other engine
	trainSteps   = 10
	greedyTokens = 8
)

// TrainAdamW is the optimizer of the training tests: weight decay on, and
// a clip norm between the gradient norms of the test batches (about 2.6 on
// every third step, 1.8–2.0 on the others), so some steps clip and some
// do not.
var TrainAdamW = optim.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Epsilon: 1e-8, WeightDecay: 0.1, MaxGradNorm: 2.2}

// TrainZLoss is the z-loss weight of the training tests.
const TrainZLoss = 1e-3

// TrainLR is the learning rate of step i (0-based) of the training tests:
// warmup then decay.
func TrainLR(i int) float64 {
	return 1e-3 * []float64{0.25, 0.5, 0.75, 1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2}[i%12]
}

// TrainBatch is the batch of step i of the training tests.
func TrainBatch(vocab, i int) *llama.Batch { return TestBatch(vocab, uint64(100+i%3)) }

// trainMicro is the micro-batch size of step i: whole batches and
// gradient accumulation over single rows alternate.
func trainMicro(b *llama.Batch, i int) int {
	if i%2 == 1 {
		return 1
	}
	return b.B
}

// Prompts are the decoding tests' prompts, one per decoder row.
var Prompts = [][]int32{{3, 17, 5}, {8}}

// RunAll runs the whole suite against one engine.
func RunAll(t *testing.T, e Engine) {
	t.Run("Loss", func(t *testing.T) { testLoss(t, e) })
	t.Run("Gradients", func(t *testing.T) { testGradients(t, e) })
	t.Run("TenSteps", func(t *testing.T) { testTenSteps(t, e) })
	t.Run("Decoder", func(t *testing.T) { testDecoder(t, e) })
	t.Run("Greedy", func(t *testing.T) { testGreedy(t, e) })
	t.Run("CheckpointResume", func(t *testing.T) { testHandover(t, e, e) })
	t.Run("HFExport", func(t *testing.T) { testHFExport(t, e) })
	t.Run("RejectsBadBatch", func(t *testing.T) { testBadBatch(t, e) })
	t.Run("LoRA", func(t *testing.T) { runLoRA(t, e) })
}

// RunPair checks two engines against each other: the same numbers on the
// same weights and batches, and a run that moves between them mid-way.
func RunPair(t *testing.T, a, b Engine) {
	ctx := context.Background()
	t.Run("LossAndGradients", func(t *testing.T) {
		for _, f := range Fixtures() {
			ea, eb := newEngine(t, a, f.Params(t), 0), newEngine(t, b, f.Params(t), 0)
			vocab := vocabOf(t, f.Config)
			for seed := uint64(1); seed <= 2; seed++ {
				bt := TestBatch(vocab, seed)
				ra, ga, err := ea.Grads(ctx, bt)
				must(t, err)
				rb, gb, err := eb.Grads(ctx, bt)
				must(t, err)
				if relErr(ra.Mean(), rb.Mean()) > LossRelTol || ra.Count != rb.Count {
					t.Errorf("%s: loss %s %.9g (%d tokens) vs %s %.9g (%d)", f.Name, a.Name, ra.Mean(), ra.Count, b.Name, rb.Mean(), rb.Count)
				}
				compareGrads(t, f.Name, ga, tensorsWide(gb))
			}
		}
	})
	t.Run("TenSteps", func(t *testing.T) {
		f := TrainFixture()
		wa := runSteps(t, trainEngine(t, a, f.Params(t)), vocabOf(t, f.Config), 0, trainSteps)
		wb := runSteps(t, trainEngine(t, b, f.Params(t)), vocabOf(t, f.Config), 0, trainSteps)
		compareWeights(t, "after 10 steps", wa, wb, WeightTol)
	})
	t.Run("Decoder", func(t *testing.T) {
		for _, f := range Fixtures() {
			la := everyLogits(t, newDecoder(t, a, f.Params(t)), Prompts)
			lb := everyLogits(t, newDecoder(t, b, f.Params(t)), Prompts)
			for r := range Prompts {
				compareLogits(t, fmt.Sprintf("%s row %d: %s vs %s", f.Name, r, a.Name, b.Name), la[r], widen2(lb[r], len(Prompts[r])))
			}
			ga := greedy(t, newDecoder(t, a, f.Params(t)), Prompts, greedyTokens)
			gb := greedy(t, newDecoder(t, b, f.Params(t)), Prompts, greedyTokens)
			if !reflect.DeepEqual(ga, gb) {
				t.Errorf("%s: greedy %s %v vs %s %v", f.Name, a.Name, ga, b.Name, gb)
			}
		}
	})
	t.Run("CheckpointAToB", func(t *testing.T) { testHandover(t, a, b) })
	t.Run("CheckpointBToA", func(t *testing.T) { testHandover(t, b, a) })
	t.Run("LoRA", func(t *testing.T) { runLoRAPair(t, a, b) })
	t.Run("HFExportFormat", func(t *testing.T) {
		f := Fixtures()[1]
		da, db := t.TempDir(), t.TempDir()
		exportHF(t, newEngine(t, a, f.Params(t), 0), da)
		exportHF(t, newEngine(t, b, f.Params(t), 0), db)
		la, lb := listing(t, da), listing(t, db)
		if !reflect.DeepEqual(la, lb) {
			t.Fatalf("hf export files differ: %s %v, %s %v", a.Name, la, b.Name, lb)
		}
		if ca, cb := readJSON(t, filepath.Join(da, "config.json")), readJSON(t, filepath.Join(db, "config.json")); !reflect.DeepEqual(ca, cb) {
			t.Errorf("config.json differs:\n%s: %v\n%s: %v", a.Name, ca, b.Name, cb)
		}
		ha, hb := headers(t, da), headers(t, db)
		if !reflect.DeepEqual(ha, hb) {
			t.Errorf("safetensors headers differ:\n%s: %v\n%s: %v", a.Name, ha, b.Name, hb)
		}
		// And each loads the other's export to the same weights.
		for _, c := range []struct {
			dir string
			e   Engine
		}{{da, b}, {db, a}} {
			p, _, err := weights.LoadDir(c.dir)
			must(t, err)
			compareWeights(t, c.e.Name+" loading the other's export", paramsOf(t, newEngine(t, c.e, p, 0)), widenAll(f.Weights), 0)
		}
	})
}

func testLoss(t *testing.T, e Engine) {
	ctx := context.Background()
	for _, f := range Fixtures() {
		eng := newEngine(t, e, f.Params(t), 0)
		o := oracleOf(t, f)
		vocab := vocabOf(t, f.Config)
		for seed := uint64(1); seed <= 3; seed++ {
			bt := TestBatch(vocab, seed)
			if seed == 3 {
				bt.Positions = nil // derived: restarting at every document
			}
			want := o.loss(bt)
			ev, err := eng.Eval(ctx, bt)
			must(t, err)
			gr, _, err := eng.Grads(ctx, bt)
			must(t, err)
			for what, r := range map[string]llama.LossResult{"Eval": ev, "Grads": gr} {
				if relErr(r.Mean(), want) > LossRelTol || r.Count != bt.TrainedCount() || r.ZLoss != 0 {
					t.Errorf("%s batch %d: %s loss %.9g over %d tokens (z-loss %g), oracle %.9g over %d (rel %.2g)",
						f.Name, seed, what, r.Mean(), r.Count, r.ZLoss, want, bt.TrainedCount(), relErr(r.Mean(), want))
				}
			}
		}
	}
}

func testGradients(t *testing.T, e Engine) {
	ctx := context.Background()
	for _, f := range Fixtures() {
		bt := TestBatch(vocabOf(t, f.Config), 1)
		_, got, err := newEngine(t, e, f.Params(t), 0).Grads(ctx, bt)
		must(t, err)
		compareGrads(t, f.Name, got, oracleOf(t, f).grads(bt, 0))
	}
	// With z-loss, on the small model.
	f := TrainFixture()
	bt := TestBatch(vocabOf(t, f.Config), 4)
	res, got, err := newEngine(t, e, f.Params(t), 1e-2).Grads(ctx, bt)
	must(t, err)
	o := oracleOf(t, f)
	if want := o.objective(bt, 1e-2); relErr(res.ObjectiveMean(), want) > LossRelTol {
		t.Errorf("z-loss objective %.9g, oracle %.9g", res.ObjectiveMean(), want)
	}
	compareGrads(t, "z-loss", got, o.grads(bt, 1e-2))
}

func compareGrads(t *testing.T, what string, got []*llama.Tensor, want map[string][]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d gradients, want %d", what, len(got), len(want))
	}
	worst, worstName := 0.0, ""
	for _, tn := range got {
		w, ok := want[tn.Name]
		if !ok || len(w) != len(tn.Data) {
			t.Errorf("%s: gradient %s unknown to the oracle or of the wrong size", what, tn.Name)
			continue
		}
		for i := range w {
			e := math.Abs(float64(tn.Data[i])-w[i]) / math.Max(1, math.Abs(w[i]))
			if e > worst || math.IsNaN(e) {
				worst, worstName = e, tn.Name
			}
		}
	}
	if worst > GradTol || math.IsNaN(worst) {
		t.Errorf("%s: gradient error %.3g in %s (tolerance %g)", what, worst, worstName, GradTol)
	} else {
		t.Logf("%s: worst gradient error %.3g (%s)", what, worst, worstName)
	}
}

// runSteps runs steps [from, to) of the training tests and returns the
// weights.
func runSteps(t *testing.T, eng train.Engine, vocab, from, to int) map[string][]float64 {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; i++ {
		b := TrainBatch(vocab, i)
		if _, _, err := eng.Step(ctx, b, trainMicro(b, i), TrainLR(i)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	return paramsOf(t, eng)
}

func testTenSteps(t *testing.T, e Engine) {
	ctx := context.Background()
	f := TrainFixture()
	eng := trainEngine(t, e, f.Params(t))
	o := oracleOf(t, f)
	vocab := vocabOf(t, f.Config)
	var st oracleAdam
	clipped := 0
	for i := range trainSteps {
		bt := TrainBatch(vocab, i)
		want := o.loss(bt)
		res, info, err := eng.Step(ctx, bt, trainMicro(bt, i), TrainLR(i))
		must(t, err)
		if relErr(res.Mean(), want) > 10*LossRelTol || res.Count != bt.TrainedCount() {
			t.Errorf("step %d: loss %.9g over %d tokens, oracle %.9g over %d", i, res.Mean(), res.Count, want, bt.TrainedCount())
		}
		if wantZ := o.objective(bt, TrainZLoss) - want; relErr(res.ZLoss/float64(res.Count), wantZ) > 1e-4 {
			t.Errorf("step %d: z-loss %.9g, oracle %.9g", i, res.ZLoss/float64(res.Count), wantZ)
		}
		norm := o.adamStep(&st, o.grads(bt, TrainZLoss), TrainAdamW, TrainLR(i), Decays)
		if relErr(info.GradNorm, norm) > 1e-4 || info.Clipped != !(norm < TrainAdamW.MaxGradNorm) || info.LR != TrainLR(i) {
			t.Errorf("step %d: grad norm %.7g (clipped %v, lr %g), oracle %.7g", i, info.GradNorm, info.Clipped, info.LR, norm)
		}
		if info.Clipped {
			clipped++
		}
	}
	if clipped == 0 || clipped == trainSteps {
		t.Errorf("%d of %d steps clipped: the test should exercise both", clipped, trainSteps)
	}
	compareWeights(t, "after 10 steps", paramsOf(t, eng), o.w, WeightTol)
	stt, err := eng.OptimizerState()
	must(t, err)
	if stt == nil || stt.Step != trainSteps || len(stt.Names) != len(o.w) {
		t.Errorf("optimizer state after %d steps: %+v", trainSteps, stt)
	}
}

// everyLogits feeds each prompt to its own row in one call, asking for the
// logits after every token.
func everyLogits(t *testing.T, d sample.Decoder, prompts [][]int32) [][]float32 {
	t.Helper()
	out, err := d.Feed(context.Background(), prompts, sample.Every)
	must(t, err)
	res := make([][]float32, len(prompts))
	for r := range prompts {
		res[r] = append([]float32(nil), out[r]...)
	}
	return res
}

func widen2(l []float32, n int) [][]float64 {
	V := len(l) / n
	out := make([][]float64, n)
	for i := range out {
		out[i] = widen(l[i*V : (i+1)*V])
	}
	return out
}

func compareLogits(t *testing.T, what string, got []float32, want [][]float64) {
	t.Helper()
	V := len(want[0])
	if len(got) != len(want)*V {
		t.Fatalf("%s: %d logits, want %d positions × %d", what, len(got), len(want), V)
	}
	for p, w := range want {
		for j, x := range w {
			if e := math.Abs(float64(got[p*V+j])-x) / math.Max(1, math.Abs(x)); e > LogitTol || math.IsNaN(e) {
				t.Fatalf("%s: position %d logit %d is %.7g, want %.7g", what, p, j, got[p*V+j], x)
			}
		}
	}
}

// testDecoder checks the decoder's logits against the oracle's: two rows
// of different lengths fed at once, a row continued alone token by token
// (Last), and a row truncated and fed again.
func testDecoder(t *testing.T, e Engine) {
	ctx := context.Background()
	for _, f := range Fixtures() {
		o := oracleOf(t, f)
		d := newDecoder(t, e, f.Params(t))
		if d.Rows() != len(Prompts) || d.MaxLen() != 128 {
			t.Fatalf("%s: decoder of %d rows × %d positions, want %d × 128 (max_position_embeddings)", f.Name, d.Rows(), d.MaxLen(), len(Prompts))
		}
		got := everyLogits(t, d, Prompts)
		for r, p := range Prompts {
			compareLogits(t, fmt.Sprintf("%s row %d", f.Name, r), got[r], o.nextLogits(p))
			if d.Len(r) != len(p) {
				t.Errorf("%s row %d: Len %d after feeding %d", f.Name, r, d.Len(r), len(p))
			}
		}
		seq := append([]int32(nil), Prompts[1]...)
		for _, tok := range []int32{4, 30, 2} {
			seq = append(seq, tok)
			out, err := d.Feed(ctx, [][]int32{nil, {tok}}, sample.Last)
			must(t, err)
			if out[0] != nil {
				t.Errorf("%s: logits for row 0, which was fed nothing", f.Name)
			}
			all := o.nextLogits(seq)
			compareLogits(t, fmt.Sprintf("%s row 1 after %v", f.Name, seq), out[1], all[len(all)-1:])
		}
		d.Truncate(1, 2)
		seq = append(seq[:2], 11, 12)
		out, err := d.Feed(ctx, [][]int32{nil, {11, 12}}, sample.Every)
		must(t, err)
		compareLogits(t, f.Name+" row 1 after Truncate", out[1], o.nextLogits(seq)[2:])
		if d.Len(0) != len(Prompts[0]) || d.Len(1) != 4 {
			t.Errorf("%s: lengths %d, %d", f.Name, d.Len(0), d.Len(1))
		}
		d.Reset()
		if d.Len(0) != 0 || d.Len(1) != 0 {
			t.Errorf("%s: Reset left %d, %d positions", f.Name, d.Len(0), d.Len(1))
		}
		if _, err := d.Feed(ctx, [][]int32{{int32(vocabOf(t, f.Config))}}, sample.Last); err == nil {
			t.Errorf("%s: the decoder took a token outside the vocabulary", f.Name)
		}
		if _, err := d.Feed(ctx, [][]int32{make([]int32, 129)}, sample.Last); err == nil {
			t.Errorf("%s: the decoder took more positions than max_position_embeddings", f.Name)
		}
	}
}

// greedy generates n tokens greedily for every prompt at once through the
// shared generation loop.
func greedy(t *testing.T, d sample.Decoder, prompts [][]int32, n int) [][]int32 {
	t.Helper()
	in := make([][]uint32, len(prompts))
	for r, p := range prompts {
		for _, x := range p {
			in[r] = append(in[r], uint32(x))
		}
	}
	res, err := sample.Generate(context.Background(), d, in, sample.Options{MaxNewTokens: n}, nil)
	must(t, err)
	out := make([][]int32, len(res))
	for r, g := range res {
		for _, x := range g.Tokens {
			out[r] = append(out[r], int32(x))
		}
	}
	return out
}

func testGreedy(t *testing.T, e Engine) {
	for _, f := range Fixtures() {
		got := greedy(t, newDecoder(t, e, f.Params(t)), Prompts, greedyTokens)
		o := oracleOf(t, f)
		for r, p := range Prompts {
			if want := o.greedy(p, greedyTokens); !reflect.DeepEqual(got[r], want) {
				t.Errorf("%s row %d: greedy %v, oracle %v", f.Name, r, got[r], want)
			}
		}
	}
}

// testHandover trains 3 steps on a, checkpoints with the train op's code,
// resumes on b for 3 more, and compares with 6 uninterrupted steps on a.
func testHandover(t *testing.T, a, b Engine) {
	f := TrainFixture()
	vocab := vocabOf(t, f.Config)
	straight := runSteps(t, trainEngine(t, a, f.Params(t)), vocab, 0, 6)
	first := trainEngine(t, a, f.Params(t))
	runSteps(t, first, vocab, 0, 3)
	dir := filepath.Join(t.TempDir(), "step-3")
	p, err := first.Params()
	must(t, err)
	st, err := first.OptimizerState()
	must(t, err)
	must(t, train.SaveCheckpoint(dir, 3, p, st, train.TrainerState{Backend: a.Name, Seed: 1, NumTrainSteps: 6, NextSequence: 6}, false, ""))
	ck, err := train.LoadCheckpoint(dir)
	if err != nil {
		t.Fatalf("%s's checkpoint: %v", a.Name, err)
	}
	if ts := ck.Trainer(); ts.Backend != a.Name || ck.Meta.Step != 3 {
		t.Errorf("checkpoint records %+v at step %d", ts, ck.Meta.Step)
	}
	resumed := trainEngine(t, b, ck.Params)
	if err := resumed.LoadOptimizerState(ck.Optimizer); err != nil {
		t.Fatalf("%s loading %s's optimizer state: %v", b.Name, a.Name, err)
	}
	compareWeights(t, a.Name+"→"+b.Name+" after 6 steps", runSteps(t, resumed, vocab, 3, 6), straight, ResumeTol*10)
}

func exportHF(t *testing.T, eng train.Engine, dir string) {
	t.Helper()
	p, err := eng.Params()
	must(t, err)
	must(t, weights.ExportHF(dir, p, weights.ExportOptions{}))
}

func testHFExport(t *testing.T, e Engine) {
	for _, f := range Fixtures() {
		dir := t.TempDir()
		exportHF(t, newEngine(t, e, f.Params(t), 0), dir)
		sm, err := safetensors.OpenModel(dir)
		must(t, err)
		want, _ := ParamShapes(f.Config)
		if got := sm.Names(); !reflect.DeepEqual(got, sortedKeys(want)) {
			t.Errorf("%s: exported tensors %v, want %v", f.Name, got, sortedKeys(want))
		}
		for _, n := range sm.Names() {
			info, _ := sm.Info(n)
			shape := make([]int, len(info.Shape))
			for i, d := range info.Shape {
				shape[i] = int(d)
			}
			if !reflect.DeepEqual(shape, want[n]) || info.DType != safetensors.F32 {
				t.Errorf("%s: %s exported as %s %v, want F32 %v", f.Name, n, info.DType, shape, want[n])
			}
		}
		cfg := readJSON(t, filepath.Join(dir, "config.json"))
		var in map[string]any
		must(t, json.Unmarshal([]byte(f.Config), &in))
		for k, v := range in {
			if !reflect.DeepEqual(cfg[k], v) {
				t.Errorf("%s: exported config.json %s = %v, want %v", f.Name, k, cfg[k], v)
			}
		}
		p, _, err := weights.LoadDir(dir)
		must(t, err)
		compareWeights(t, f.Name+" export round trip", paramsOf(t, newEngine(t, e, p, 0)), widenAll(f.Weights), 0)
	}
}

func testBadBatch(t *testing.T, e Engine) {
	ctx := context.Background()
	f := TrainFixture()
	eng := trainEngine(t, e, f.Params(t))
	vocab := vocabOf(t, f.Config)
	bad := map[string]func(b *llama.Batch){
		"a token outside the vocabulary": func(b *llama.Batch) { b.Tokens[3] = int32(vocab) },
		// Position 4 ends row 0's first document: its target is another document's.
		"a target crossing documents":             func(b *llama.Batch) { b.LossMask[4] = true },
		"a short loss mask":                       func(b *llama.Batch) { b.LossMask = b.LossMask[:3] },
		"a target past the row":                   func(b *llama.Batch) { b.LossMask[b.T-1] = true },
		"a position past max_position_embeddings": func(b *llama.Batch) { b.Positions[2] = 128 },
	}
	for what, spoil := range bad {
		b := TestBatch(vocab, 1)
		spoil(b)
		if _, _, err := eng.Grads(ctx, b); err == nil {
			t.Errorf("Grads accepted %s", what)
		}
		if _, err := eng.Eval(ctx, b); err == nil {
			t.Errorf("Eval accepted %s", what)
		}
		if _, _, err := eng.Step(ctx, b, b.B, 1e-3); err == nil {
			t.Errorf("Step accepted %s", what)
		}
	}
	// Nothing was applied: the weights are the fixture's.
	compareWeights(t, "after refused steps", paramsOf(t, eng), widenAll(f.Weights), 0)
	if st, err := eng.OptimizerState(); err != nil || (st != nil && st.Step != 0) {
		t.Errorf("optimizer state after refused steps: %+v, %v", st, err)
	}
	if _, _, err := eng.Step(ctx, TestBatch(vocab, 1), 3, 1e-3); err == nil {
		t.Errorf("a micro-batch of 3 rows was accepted for a batch of 2")
	}
}

func compareWeights(t *testing.T, what string, got, want map[string][]float64, tol float64) {
	t.Helper()
	worst, worstName := 0.0, ""
	if len(got) != len(want) {
		t.Errorf("%s: %d tensors, want %d", what, len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok || len(g) != len(w) {
			t.Errorf("%s: weight %s missing or of the wrong size", what, name)
			continue
		}
		for i := range w {
			if e := math.Abs(g[i] - w[i]); e > worst || math.IsNaN(e) {
				worst, worstName = e, name
			}
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: weights differ by %.3g in %s (tolerance %g)", what, worst, worstName, tol)
	} else {
		t.Logf("%s: weights within %.3g", what, worst)
	}
}

// newEngine makes e's train engine over params with the default AdamW and
// the given z-loss weight; it is closed when the test ends.
func newEngine(t *testing.T, e Engine, params *llama.Params, zLoss float64) train.Engine {
	t.Helper()
	return engineWith(t, e, params, optim.DefaultAdamW(), zLoss)
}

// trainEngine is an engine with the training tests' optimizer.
func trainEngine(t *testing.T, e Engine, params *llama.Params) train.Engine {
	t.Helper()
	return engineWith(t, e, params, TrainAdamW, TrainZLoss)
}

func engineWith(t *testing.T, e Engine, params *llama.Params, adamw optim.AdamWConfig, zLoss float64) train.Engine {
	t.Helper()
	eng, err := e.Train(params, train.Setup{AdamW: adamw, ZLossWeight: zLoss})
	if err != nil {
		t.Fatalf("%s: new engine: %v", e.Name, err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// newDecoder makes e's decoder over params with a row per prompt.
func newDecoder(t *testing.T, e Engine, params *llama.Params) sample.Decoder {
	t.Helper()
	d, err := e.Decoder(params, len(Prompts), 0)
	if err != nil {
		t.Fatalf("%s: new decoder: %v", e.Name, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func paramsOf(t *testing.T, eng train.Engine) map[string][]float64 {
	t.Helper()
	p, err := eng.Params()
	must(t, err)
	return paramsWide(p)
}

func paramsWide(p *llama.Params) map[string][]float64 { return tensorsWide(p.Tensors()) }

func tensorsWide(ts []*llama.Tensor) map[string][]float64 {
	out := map[string][]float64{}
	for _, tn := range ts {
		out[tn.Name] = widen(tn.Data)
	}
	return out
}

func oracleOf(t *testing.T, f Fixture) *oracle {
	t.Helper()
	o, err := newOracle([]byte(f.Config), f.Weights)
	must(t, err)
	return o
}

func vocabOf(t *testing.T, cfg string) int {
	t.Helper()
	c, err := parseOracleConfig([]byte(cfg))
	must(t, err)
	return c.VocabSize
}

func widenAll(m map[string][]float32) map[string][]float64 {
	out := map[string][]float64{}
	for k, v := range m {
		out[k] = widen(v)
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	must(t, err)
	sort.Strings(out)
	return out
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(data, &m))
	return m
}

// headers returns each exported tensor's dtype and shape.
func headers(t *testing.T, dir string) map[string]string {
	t.Helper()
	sm, err := safetensors.OpenModel(dir)
	must(t, err)
	out := map[string]string{}
	for _, n := range sm.Names() {
		info, _ := sm.Info(n)
		out[n] = string(info.DType) + jsonString(info.Shape)
	}
	return out
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
