package conformance

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/marin-go/marin/backends/model/safetensors"
)

// Tolerances for float32 backends.
const (
	LossRelTol   = 1e-5
	GradTol      = 1e-4 // element-wise, times max(1, |g|)
	WeightTol    = 1e-4 // after 10 optimizer steps
	ResumeTol    = 1e-6 // checkpoint round trip, same or other backend
	trainSteps   = 10
	greedyTokens = 8
)

// TrainOptim is the optimizer of the training tests: weight decay and
// z-loss on, and a clip norm low enough that clipping happens on some steps.
var TrainOptim = Optim{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.5, ZLossWeight: 1e-3}

// TrainLR is the learning rate of step i (0-based) of the training tests:
// warmup then decay.
func TrainLR(i int) float64 {
	return 1e-3 * []float64{0.25, 0.5, 0.75, 1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2}[i%12]
}

// TrainBatch is the batch of step i of the training tests.
func TrainBatch(vocab, i int) Batch { return TestBatch(vocab, uint64(100+i%3)) }

// RunAll runs the whole suite against one backend.
func RunAll(t *testing.T, b Backend) {
	t.Run("Loss", func(t *testing.T) { testLoss(t, b) })
	t.Run("Gradients", func(t *testing.T) { testGradients(t, b) })
	t.Run("TenSteps", func(t *testing.T) { testTenSteps(t, b) })
	t.Run("Greedy", func(t *testing.T) { testGreedy(t, b) })
	t.Run("CheckpointResume", func(t *testing.T) { testHandover(t, b, b) })
	t.Run("HFExport", func(t *testing.T) { testHFExport(t, b) })
	t.Run("RejectsBadBatch", func(t *testing.T) { testBadBatch(t, b) })
}

// RunPair checks two backends against each other: the same numbers on the
// same weights and batches, and a run that moves between them mid-way.
func RunPair(t *testing.T, a, b Backend) {
	ctx := context.Background()
	t.Run("LossAndGradients", func(t *testing.T) {
		for _, f := range Fixtures() {
			ma, mb := open(t, a, f), open(t, b, f)
			vocab := vocabOf(t, f.Config)
			for seed := uint64(1); seed <= 2; seed++ {
				bt := TestBatch(vocab, seed)
				la, ga, err := ma.LossAndGrads(ctx, bt, 0)
				must(t, err)
				lb, gb, err := mb.LossAndGrads(ctx, bt, 0)
				must(t, err)
				if relErr(la, lb) > LossRelTol {
					t.Errorf("%s: loss %s %.9g vs %s %.9g", f.Name, a.Name(), la, b.Name(), lb)
				}
				compareGrads(t, f.Name, ga, widenAll(gb))
			}
		}
	})
	t.Run("TenSteps", func(t *testing.T) {
		f := TrainFixture()
		wa := train(t, open(t, a, f), vocabOf(t, f.Config), 0, trainSteps)
		wb := train(t, open(t, b, f), vocabOf(t, f.Config), 0, trainSteps)
		compareWeights(t, "after 10 steps", wa, wb, WeightTol)
	})
	t.Run("Greedy", func(t *testing.T) {
		for _, f := range Fixtures() {
			prompt := []int32{3, 17, 5}
			ta, err := open(t, a, f).Greedy(ctx, prompt, greedyTokens)
			must(t, err)
			tb, err := open(t, b, f).Greedy(ctx, prompt, greedyTokens)
			must(t, err)
			if !reflect.DeepEqual(ta, tb) {
				t.Errorf("%s: greedy %s %v vs %s %v", f.Name, a.Name(), ta, b.Name(), tb)
			}
		}
	})
	t.Run("CheckpointAToB", func(t *testing.T) { testHandover(t, a, b) })
	t.Run("CheckpointBToA", func(t *testing.T) { testHandover(t, b, a) })
	t.Run("HFExportFormat", func(t *testing.T) {
		f := Fixtures()[1]
		da, db := t.TempDir(), t.TempDir()
		must(t, open(t, a, f).ExportHF(ctx, da))
		must(t, open(t, b, f).ExportHF(ctx, db))
		la, lb := listing(t, da), listing(t, db)
		if !reflect.DeepEqual(la, lb) {
			t.Fatalf("hf export files differ: %s %v, %s %v", a.Name(), la, b.Name(), lb)
		}
		if ca, cb := readJSON(t, filepath.Join(da, "config.json")), readJSON(t, filepath.Join(db, "config.json")); !reflect.DeepEqual(ca, cb) {
			t.Errorf("config.json differs:\n%s: %v\n%s: %v", a.Name(), ca, b.Name(), cb)
		}
		ha, hb := headers(t, da), headers(t, db)
		if !reflect.DeepEqual(ha, hb) {
			t.Errorf("safetensors headers differ:\n%s: %v\n%s: %v", a.Name(), ha, b.Name(), hb)
		}
		// And each loads the other's export to the same weights.
		for _, c := range []struct {
			dir string
			be  Backend
		}{{da, b}, {db, a}} {
			m, err := c.be.LoadHF(ctx, c.dir)
			must(t, err)
			w, err := m.Weights(ctx)
			must(t, err)
			m.Close()
			compareWeights(t, c.be.Name()+" loading the other's export", widenAll(w), widenAll(f.Weights), 1e-2)
		}
	})
}

func testLoss(t *testing.T, b Backend) {
	ctx := context.Background()
	for _, f := range Fixtures() {
		m := open(t, b, f)
		o := oracleOf(t, f)
		vocab := vocabOf(t, f.Config)
		for seed := uint64(1); seed <= 3; seed++ {
			bt := TestBatch(vocab, seed)
			if seed == 3 {
				bt.Positions = nil // derived: restarting at every document
			}
			got, _, err := m.LossAndGrads(ctx, bt, 0)
			must(t, err)
			want := o.loss(bt)
			if relErr(got, want) > LossRelTol {
				t.Errorf("%s batch %d: loss %.9g, oracle %.9g (rel %.2g)", f.Name, seed, got, want, relErr(got, want))
			}
		}
	}
}

func testGradients(t *testing.T, b Backend) {
	ctx := context.Background()
	for _, f := range Fixtures() {
		m := open(t, b, f)
		bt := TestBatch(vocabOf(t, f.Config), 1)
		_, got, err := m.LossAndGrads(ctx, bt, 0)
		must(t, err)
		compareGrads(t, f.Name, got, oracleOf(t, f).grads(bt, 0))
	}
	// With z-loss, on the small model.
	f := TrainFixture()
	bt := TestBatch(vocabOf(t, f.Config), 4)
	loss, got, err := open(t, b, f).LossAndGrads(ctx, bt, 1e-2)
	must(t, err)
	o := oracleOf(t, f)
	if want := o.objective(bt, 1e-2); relErr(loss, want) > LossRelTol {
		t.Errorf("z-loss objective %.9g, oracle %.9g", loss, want)
	}
	compareGrads(t, "z-loss", got, o.grads(bt, 1e-2))
}

func compareGrads(t *testing.T, what string, got map[string][]float32, want map[string][]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d gradients, want %d", what, len(got), len(want))
	}
	worst, worstName := 0.0, ""
	for name, w := range want {
		g, ok := got[name]
		if !ok || len(g) != len(w) {
			t.Errorf("%s: gradient %s missing or of the wrong size", what, name)
			continue
		}
		for i := range w {
			e := math.Abs(float64(g[i])-w[i]) / math.Max(1, math.Abs(w[i]))
			if e > worst {
				worst, worstName = e, name
			}
		}
	}
	if worst > GradTol {
		t.Errorf("%s: gradient error %.3g in %s (tolerance %g)", what, worst, worstName, GradTol)
	} else {
		t.Logf("%s: worst gradient error %.3g (%s)", what, worst, worstName)
	}
}

// train runs steps [from, to) of the training tests and returns the weights.
func train(t *testing.T, m Model, vocab, from, to int) map[string][]float64 {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; i++ {
		if _, err := m.TrainStep(ctx, TrainBatch(vocab, i), TrainOptim, TrainLR(i)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	w, err := m.Weights(ctx)
	must(t, err)
	return widenAll(w)
}

func testTenSteps(t *testing.T, b Backend) {
	ctx := context.Background()
	f := TrainFixture()
	m := open(t, b, f)
	o := oracleOf(t, f)
	vocab := vocabOf(t, f.Config)
	var st oracleAdam
	for i := range trainSteps {
		bt := TrainBatch(vocab, i)
		want := o.loss(bt)
		got, err := m.TrainStep(ctx, bt, TrainOptim, TrainLR(i))
		must(t, err)
		if relErr(got, want) > 10*LossRelTol {
			t.Errorf("step %d: loss %.9g, oracle %.9g", i, got, want)
		}
		o.adamStep(&st, o.grads(bt, TrainOptim.ZLossWeight), TrainOptim, TrainLR(i), Decays)
	}
	w, err := m.Weights(ctx)
	must(t, err)
	compareWeights(t, "after 10 steps", widenAll(w), o.w, WeightTol)
}

func testGreedy(t *testing.T, b Backend) {
	ctx := context.Background()
	for _, f := range Fixtures() {
		prompt := []int32{3, 17, 5}
		got, err := open(t, b, f).Greedy(ctx, prompt, greedyTokens)
		must(t, err)
		if want := oracleOf(t, f).greedy(prompt, greedyTokens); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: greedy %v, oracle %v", f.Name, got, want)
		}
	}
}

// testHandover trains 3 steps on a, checkpoints, resumes on b for 3 more,
// and compares with 6 uninterrupted steps on a.
func testHandover(t *testing.T, a, b Backend) {
	ctx := context.Background()
	f := TrainFixture()
	vocab := vocabOf(t, f.Config)
	straight := train(t, open(t, a, f), vocab, 0, 6)
	first := open(t, a, f)
	train(t, first, vocab, 0, 3)
	dir := filepath.Join(t.TempDir(), "step-3")
	must(t, first.SaveCheckpoint(ctx, dir))
	resumed, err := b.LoadCheckpoint(ctx, dir)
	if err != nil {
		t.Fatalf("%s loading %s's checkpoint: %v", b.Name(), a.Name(), err)
	}
	defer resumed.Close()
	compareWeights(t, a.Name()+"→"+b.Name()+" after 6 steps", train(t, resumed, vocab, 3, 6), straight, ResumeTol*10)
}

func testHFExport(t *testing.T, b Backend) {
	ctx := context.Background()
	for _, f := range Fixtures() {
		dir := t.TempDir()
		m := open(t, b, f)
		must(t, m.ExportHF(ctx, dir))
		for _, name := range []string{"config.json"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("%s: export lacks %s", f.Name, name)
			}
		}
		sm, err := safetensors.OpenModel(dir)
		must(t, err)
		want, _ := ParamShapes(f.Config)
		if got := sm.Names(); !reflect.DeepEqual(got, sortedKeys(want)) {
			t.Errorf("%s: exported tensors %v, want %v", f.Name, got, sortedKeys(want))
		}
		tol := 0.0
		for _, n := range sm.Names() {
			info, _ := sm.Info(n)
			if info.DType != safetensors.F32 {
				tol = 1.0 / 128 // bf16 keeps 8 bits of mantissa
			}
			shape := make([]int, len(info.Shape))
			for i, d := range info.Shape {
				shape[i] = int(d)
			}
			if !reflect.DeepEqual(shape, want[n]) {
				t.Errorf("%s: %s exported with shape %v, want %v", f.Name, n, shape, want[n])
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
		back, err := b.LoadHF(ctx, dir)
		must(t, err)
		w, err := back.Weights(ctx)
		must(t, err)
		back.Close()
		compareWeights(t, f.Name+" export round trip", widenAll(w), widenAll(f.Weights), tol)
	}
}

func testBadBatch(t *testing.T, b Backend) {
	ctx := context.Background()
	f := TrainFixture()
	m := open(t, b, f)
	bt := TestBatch(vocabOf(t, f.Config), 1)
	bt.Tokens[3] = 1000 // outside the vocabulary
	if _, _, err := m.LossAndGrads(ctx, bt, 0); err == nil {
		t.Errorf("a token outside the vocabulary was accepted")
	}
	bt = TestBatch(vocabOf(t, f.Config), 1)
	bt.LossMask[4] = 1 // position 4 ends row 0's first document: its target is another document's
	if _, _, err := m.LossAndGrads(ctx, bt, 0); err == nil {
		t.Errorf("a target crossing documents was accepted")
	}
	bt = TestBatch(vocabOf(t, f.Config), 1)
	bt.LossMask = bt.LossMask[:3]
	if _, err := m.TrainStep(ctx, bt, TrainOptim, 1e-3); err == nil {
		t.Errorf("a batch with a short loss mask was accepted")
	}
}

func compareWeights(t *testing.T, what string, got, want map[string][]float64, tol float64) {
	t.Helper()
	worst, worstName := 0.0, ""
	for name, w := range want {
		g, ok := got[name]
		if !ok || len(g) != len(w) {
			t.Errorf("%s: weight %s missing or of the wrong size", what, name)
			continue
		}
		for i := range w {
			e := math.Abs(g[i] - w[i])
			if tol > 1e-3 { // a relative tolerance for bf16 storage
				e /= math.Max(math.Abs(w[i]), 1e-3)
			}
			if e > worst || math.IsNaN(e) {
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

func open(t *testing.T, b Backend, f Fixture) Model {
	t.Helper()
	m, err := b.Open(context.Background(), []byte(f.Config), f.Weights)
	if err != nil {
		t.Fatalf("%s: open %s: %v", b.Name(), f.Name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
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

func must(t *testing.T, err error) {
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
