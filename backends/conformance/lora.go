package conformance

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/train"
)

// LoRA: the same checks for an engine training a LoRA adapter over frozen
// weights (train.Setup.LoRA). The oracle adds PEFT's s·B·A·dropout(x) to
// its adapted projections and takes finite differences with respect to the
// adapter's tensors only; dropout masks are lora's hashed ones (their
// definition is shared, the arithmetic is the oracle's).

// LoRAFixture is a model with an adapter over it.
type LoRAFixture struct {
	Fixture
	Spec lora.Spec
	// Adapter holds every adapter tensor's values by PEFT name: random
	// low-rank factors (B not zero, so every gradient is), and fully
	// trained tensors near the base's.
	Adapter map[string][]float32
}

// LoRAFixtures are Fixtures with adapters: on the tied Llama, every linear
// projection with embed_tokens trained in full (the tied head too); on the
// Qwen2 model, q, v and down projections with their biases trained
// (bias "lora_only") and rank-stabilised scaling.
func LoRAFixtures() []LoRAFixture {
	f := Fixtures()
	return []LoRAFixture{
		newLoRAFixture(f[0], lora.Spec{R: 3, Alpha: 6, Targets: lora.Targets{Pattern: lora.AllLinear}, ModulesToSave: []string{"embed_tokens"}}, 11),
		newLoRAFixture(f[1], lora.Spec{R: 2, Alpha: 5, Targets: lora.Targets{Names: []string{"q_proj", "v_proj", "down_proj"}}, Bias: lora.BiasLoRAOnly, UseRSLoRA: true}, 12),
	}
}

// LoRATrainFixture is TrainFixture with every projection adapted, the
// untied head trained in full and dropout on: what the training and
// resume tests train.
func LoRATrainFixture() LoRAFixture {
	return newLoRAFixture(TrainFixture(), lora.Spec{R: 2, Alpha: 4, Dropout: 0.25, Targets: lora.Targets{Pattern: lora.AllLinear}, ModulesToSave: []string{"lm_head"}}, 13)
}

// TrainSeed is the run seed of the LoRA training tests (their dropout
// masks' key).
const TrainSeed = 5

func newLoRAFixture(f Fixture, spec lora.Spec, seed uint64) LoRAFixture {
	cfg, err := llama.ParseConfig([]byte(f.Config))
	if err != nil {
		panic(err)
	}
	a, err := lora.New(spec, cfg)
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(seed, 78))
	vals := map[string][]float32{}
	for _, t := range a.Tensors() {
		w := make([]float32, len(t.Data))
		base, full := f.Weights[lora.BaseName(t.Name)]
		for i := range w {
			switch {
			case full && len(base) == len(w):
				w[i] = base[i] + float32(0.05*rng.NormFloat64())
			default:
				w[i] = float32(0.3 * rng.NormFloat64())
			}
		}
		vals[t.Name] = w
	}
	return LoRAFixture{Fixture: f, Spec: spec, Adapter: vals}
}

// NewAdapter returns the fixture's adapter with its values.
func (lf LoRAFixture) NewAdapter(t testing.TB) *lora.Adapter {
	t.Helper()
	cfg, err := llama.ParseConfig([]byte(lf.Config))
	must(t, err)
	a, err := lora.New(lf.Spec, cfg)
	must(t, err)
	for _, tn := range a.Tensors() {
		copy(tn.Data, lf.Adapter[tn.Name])
	}
	return a
}

func loraOracleOf(t *testing.T, lf LoRAFixture) *oracle {
	t.Helper()
	o := oracleOf(t, lf.Fixture)
	for k, v := range lf.Adapter {
		o.w[k] = widen(v)
	}
	o.loraScale = lf.Spec.Scale()
	return o
}

// trainedNames are the adapter's tensors (what the oracle differentiates).
func (lf LoRAFixture) trainedNames() []string { return sortedKeys(lf.Adapter) }

// LoRADecays is the oracle's statement of the LoRA weight-decay mask: the
// low-rank factors decay, fully trained base tensors as the base's rule
// says.
func LoRADecays(name string) bool {
	if strings.HasSuffix(name, ".lora_A.weight") || strings.HasSuffix(name, ".lora_B.weight") {
		return true
	}
	return Decays(strings.TrimPrefix(name, lora.Prefix))
}

func loraEngine(t *testing.T, e Engine, lf LoRAFixture, adamw optim.AdamWConfig, zLoss float64) train.Engine {
	t.Helper()
	return loraEngineWith(t, e, lf.Params(t), lf.NewAdapter(t), adamw, zLoss)
}

func loraEngineWith(t *testing.T, e Engine, base *llama.Params, a *lora.Adapter, adamw optim.AdamWConfig, zLoss float64) train.Engine {
	t.Helper()
	eng, err := e.Train(base, train.Setup{AdamW: adamw, ZLossWeight: zLoss, LoRA: a, Seed: TrainSeed})
	if err != nil {
		t.Fatalf("%s: new LoRA engine: %v", e.Name, err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// runLoRA is RunAll's LoRA part.
func runLoRA(t *testing.T, e Engine) {
	t.Run("Loss", func(t *testing.T) { testLoRALoss(t, e) })
	t.Run("Gradients", func(t *testing.T) { testLoRAGradients(t, e) })
	t.Run("TenSteps", func(t *testing.T) { testLoRATenSteps(t, e) })
	t.Run("CheckpointResume", func(t *testing.T) { testLoRAHandover(t, e, e) })
}

func testLoRALoss(t *testing.T, e Engine) {
	ctx := context.Background()
	for _, lf := range LoRAFixtures() {
		eng := loraEngine(t, e, lf, optim.DefaultAdamW(), 0)
		o := loraOracleOf(t, lf)
		for seed := uint64(1); seed <= 2; seed++ {
			bt := TestBatch(vocabOf(t, lf.Config), seed)
			want := o.loss(bt)
			ev, err := eng.Eval(ctx, bt)
			must(t, err)
			if relErr(ev.Mean(), want) > LossRelTol || ev.Count != bt.TrainedCount() {
				t.Errorf("%s batch %d: LoRA eval loss %.9g over %d tokens, oracle %.9g over %d", lf.Name, seed, ev.Mean(), ev.Count, want, bt.TrainedCount())
			}
		}
		// Params is the base with the adapter merged: the oracle's loss
		// without an adapter on those weights is the same.
		p, err := eng.Params()
		must(t, err)
		merged := &oracle{cfg: o.cfg, inv: o.inv, w: paramsWide(p)}
		bt := TestBatch(vocabOf(t, lf.Config), 1)
		if got, want := merged.loss(bt), o.loss(bt); relErr(got, want) > LossRelTol {
			t.Errorf("%s: the merged model's loss %.9g, the adapted model's %.9g", lf.Name, got, want)
		}
	}
}

func testLoRAGradients(t *testing.T, e Engine) {
	ctx := context.Background()
	for _, lf := range LoRAFixtures() {
		bt := TestBatch(vocabOf(t, lf.Config), 1)
		res, got, err := loraEngine(t, e, lf, optim.DefaultAdamW(), 0).Grads(ctx, bt)
		must(t, err)
		o := loraOracleOf(t, lf)
		if want := o.loss(bt); relErr(res.Mean(), want) > LossRelTol {
			t.Errorf("%s: LoRA Grads loss %.9g, oracle %.9g", lf.Name, res.Mean(), want)
		}
		checkNames(t, lf.Name, got, lf.NewAdapter(t).Tensors())
		compareGrads(t, lf.Name+" LoRA", got, o.gradsOf(lf.trainedNames(), bt, 0))
	}
	// With dropout and z-loss: Grads draws the masks of the next update.
	lf := LoRATrainFixture()
	bt := TrainBatch(vocabOf(t, lf.Config), 0)
	res, got, err := loraEngine(t, e, lf, TrainAdamW, TrainZLoss).Grads(ctx, bt)
	must(t, err)
	o := loraOracleOf(t, lf)
	o.drop = &lora.Dropout{Rate: lf.Spec.Dropout, Step: lora.StepKey(TrainSeed, 1)}
	if want := o.objective(bt, TrainZLoss); relErr(res.ObjectiveMean(), want) > LossRelTol {
		t.Errorf("LoRA with dropout: objective %.9g, oracle %.9g", res.ObjectiveMean(), want)
	}
	compareGrads(t, "LoRA with dropout", got, o.gradsOf(lf.trainedNames(), bt, TrainZLoss))
}

func checkNames(t *testing.T, what string, got, want []*llama.Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d gradients, the adapter has %d tensors", what, len(got), len(want))
	}
	for i, g := range got {
		if g.Name != want[i].Name || len(g.Data) != len(want[i].Data) {
			t.Fatalf("%s: gradient %d is %s (%d values), the adapter's tensor %s (%d)", what, i, g.Name, len(g.Data), want[i].Name, len(want[i].Data))
		}
	}
}

// runLoRASteps runs steps [from, to) of the training tests and returns the
// adapter's values.
func runLoRASteps(t *testing.T, eng train.Engine, vocab, from, to int) map[string][]float64 {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; i++ {
		b := TrainBatch(vocab, i)
		if _, _, err := eng.Step(ctx, b, trainMicro(b, i), TrainLR(i)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	return adapterOf(t, eng)
}

func adapterOf(t *testing.T, eng train.Engine) map[string][]float64 {
	t.Helper()
	a, err := eng.Adapter()
	must(t, err)
	if a == nil {
		t.Fatal("a LoRA engine returned no adapter")
	}
	return tensorsWide(a.Tensors())
}

func testLoRATenSteps(t *testing.T, e Engine) {
	ctx := context.Background()
	lf := LoRATrainFixture()
	eng := loraEngine(t, e, lf, TrainAdamW, TrainZLoss)
	o := loraOracleOf(t, lf)
	vocab := vocabOf(t, lf.Config)
	var st oracleAdam
	clipped := 0
	for i := range trainSteps {
		bt := TrainBatch(vocab, i)
		o.drop = &lora.Dropout{Rate: lf.Spec.Dropout, Step: lora.StepKey(TrainSeed, int64(i+1))}
		want := o.loss(bt)
		res, info, err := eng.Step(ctx, bt, trainMicro(bt, i), TrainLR(i))
		must(t, err)
		if relErr(res.Mean(), want) > 10*LossRelTol || res.Count != bt.TrainedCount() {
			t.Errorf("step %d: loss %.9g over %d tokens, oracle %.9g over %d", i, res.Mean(), res.Count, want, bt.TrainedCount())
		}
		norm := o.adamStep(&st, o.gradsOf(lf.trainedNames(), bt, TrainZLoss), TrainAdamW, TrainLR(i), LoRADecays)
		if relErr(info.GradNorm, norm) > 1e-4 || info.Clipped != !(norm < TrainAdamW.MaxGradNorm) {
			t.Errorf("step %d: grad norm %.7g (clipped %v), oracle %.7g", i, info.GradNorm, info.Clipped, norm)
		}
		if info.Clipped {
			clipped++
		}
	}
	o.drop = nil
	if clipped == 0 || clipped == trainSteps {
		t.Logf("%d of %d LoRA steps clipped", clipped, trainSteps)
	}
	want := map[string][]float64{}
	for _, n := range lf.trainedNames() {
		want[n] = o.w[n]
	}
	compareWeights(t, "LoRA after 10 steps", adapterOf(t, eng), want, WeightTol)
	// The base stayed frozen: Params is it with the trained adapter merged.
	compareWeights(t, "merged weights after 10 LoRA steps", paramsOf(t, eng), o.merged(), WeightTol)
	stt, err := eng.OptimizerState()
	must(t, err)
	if stt == nil || stt.Step != trainSteps || !equalStrings(stt.Names, lf.NewAdapter(t).Tensors()) {
		t.Errorf("optimizer state after %d LoRA steps: step %v, tensors %v", trainSteps, stt.Step, stt.Names)
	}
}

func equalStrings(names []string, ts []*llama.Tensor) bool {
	if len(names) != len(ts) {
		return false
	}
	for i, t := range ts {
		if names[i] != t.Name {
			return false
		}
	}
	return true
}

// merged returns the oracle's model with its adapter folded in, in
// float64: W + s·B·A, and fully trained tensors in place of the base's.
func (o *oracle) merged() map[string][]float64 {
	out := map[string][]float64{}
	for k := range o.w {
		if !strings.HasPrefix(k, lora.Prefix) {
			out[k] = append([]float64(nil), o.param(k)...)
		}
	}
	for k, A := range o.w {
		mod, ok := strings.CutSuffix(k, ".lora_A.weight")
		if !ok {
			continue
		}
		B := o.w[mod+".lora_B.weight"]
		w := out[lora.BaseName(mod)+".weight"]
		// |A| = r·in, |B| = out·r, |W| = out·in.
		r := int(math.Round(math.Sqrt(float64(len(A)) * float64(len(B)) / float64(len(w)))))
		in, outDim := len(A)/r, len(B)/r
		for i := range outDim {
			for j := range in {
				d := 0.0
				for q := range r {
					d += B[i*r+q] * A[q*in+j]
				}
				w[i*in+j] += o.loraScale * d
			}
		}
	}
	return out
}

// testLoRAHandover trains 3 LoRA steps on a, checkpoints with the train
// op's code, resumes on b for 3 more, and compares with 6 uninterrupted
// steps on a (dropout masks included).
func testLoRAHandover(t *testing.T, a, b Engine) {
	lf := LoRATrainFixture()
	vocab := vocabOf(t, lf.Config)
	straight := runLoRASteps(t, loraEngine(t, a, lf, TrainAdamW, TrainZLoss), vocab, 0, 6)
	first := loraEngine(t, a, lf, TrainAdamW, TrainZLoss)
	runLoRASteps(t, first, vocab, 0, 3)
	dir := filepath.Join(t.TempDir(), "step-3")
	ad, err := first.Adapter()
	must(t, err)
	st, err := first.OptimizerState()
	must(t, err)
	ts := train.TrainerState{Backend: a.Name, Seed: TrainSeed, NumTrainSteps: 6, NextSequence: 6, LoRABase: &train.BaseModel{Name: "fixture"}}
	must(t, train.SaveAdapterCheckpoint(dir, 3, ad, st, ts, false, ""))
	ck, err := train.LoadCheckpoint(dir)
	if err != nil {
		t.Fatalf("%s's LoRA checkpoint: %v", a.Name, err)
	}
	base := lf.Params(t)
	resumedAdapter, err := ck.Adapter(base.Config)
	if err != nil || resumedAdapter == nil || ck.Params != nil {
		t.Fatalf("%s's LoRA checkpoint: adapter %v, params %v, %v", a.Name, resumedAdapter != nil, ck.Params != nil, err)
	}
	if tr := ck.Trainer(); tr.LoRABase == nil || tr.LoRABase.Name != "fixture" {
		t.Errorf("checkpoint's trainer state %+v", tr)
	}
	resumed := loraEngineWith(t, b, base, resumedAdapter, TrainAdamW, TrainZLoss)
	if err := resumed.LoadOptimizerState(ck.Optimizer); err != nil {
		t.Fatalf("%s loading %s's LoRA optimizer state: %v", b.Name, a.Name, err)
	}
	compareWeights(t, a.Name+"→"+b.Name+" LoRA after 6 steps", runLoRASteps(t, resumed, vocab, 3, 6), straight, ResumeTol*10)
}

// runLoRAPair is RunPair's LoRA part.
func runLoRAPair(t *testing.T, a, b Engine) {
	ctx := context.Background()
	t.Run("Gradients", func(t *testing.T) {
		for _, lf := range append(LoRAFixtures(), LoRATrainFixture()) {
			bt := TestBatch(vocabOf(t, lf.Config), 2)
			ra, ga, err := loraEngine(t, a, lf, TrainAdamW, TrainZLoss).Grads(ctx, bt)
			must(t, err)
			rb, gb, err := loraEngine(t, b, lf, TrainAdamW, TrainZLoss).Grads(ctx, bt)
			must(t, err)
			if relErr(ra.ObjectiveMean(), rb.ObjectiveMean()) > LossRelTol {
				t.Errorf("%s: LoRA objective %s %.9g vs %s %.9g", lf.Name, a.Name, ra.ObjectiveMean(), b.Name, rb.ObjectiveMean())
			}
			compareGrads(t, lf.Name+" LoRA "+a.Name+" vs "+b.Name, ga, tensorsWide(gb))
		}
	})
	t.Run("TenSteps", func(t *testing.T) {
		lf := LoRATrainFixture()
		vocab := vocabOf(t, lf.Config)
		wa := runLoRASteps(t, loraEngine(t, a, lf, TrainAdamW, TrainZLoss), vocab, 0, trainSteps)
		wb := runLoRASteps(t, loraEngine(t, b, lf, TrainAdamW, TrainZLoss), vocab, 0, trainSteps)
		compareWeights(t, "LoRA after 10 steps", wa, wb, WeightTol)
	})
	t.Run("CheckpointAToB", func(t *testing.T) { testLoRAHandover(t, a, b) })
	t.Run("CheckpointBToA", func(t *testing.T) { testLoRAHandover(t, b, a) })
}
