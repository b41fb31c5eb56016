package gomlx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	gobackends "github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Optim holds AdamW's hyper-parameters, as optax/Levanter apply them:
// clip the gradient to a global norm, Adam with bias correction, add
// weight_decay·w on the weights Levanter decays, scale by −lr.
type Optim struct {
	Beta1, Beta2, Eps float64
	WeightDecay       float64
	MaxGradNorm       float64 // 0: no clipping
	// ZLossWeight adds ZLossWeight·logsumexp² per trained token to the
	// objective (Levanter's z_loss_weight); 0: none.
	ZLossWeight float64
}

// DefaultOptim is Marin's SFT optimizer: β1 0.9, β2 0.95, ε 1e-8, no decay, clip at 1.
func DefaultOptim() Optim {
	return Optim{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, MaxGradNorm: 1}
}

// Batch is a batch of packed sequences, each slice flat [BatchSize·SeqLen].
type Batch struct {
	BatchSize, SeqLen int
	Tokens            []int32
	// LossMask weighs the prediction of Tokens[t+1] at position t (already
	// shifted); the last position of each row must be 0.
	LossMask   []float32
	SegmentIDs []int32 // attention never crosses segments (padding: −1)
	// Positions are RoPE positions; nil means each token's index inside its
	// segment (restarting at every document; 0 for padding).
	Positions []int32
}

// positions returns b's RoPE positions, deriving them when absent.
func (b Batch) positions() []int32 {
	if b.Positions != nil {
		return b.Positions
	}
	p := make([]int32, len(b.SegmentIDs))
	for i, seg := range b.SegmentIDs {
		if seg >= 0 && i%b.SeqLen > 0 && b.SegmentIDs[i-1] == seg {
			p[i] = p[i-1] + 1
		}
	}
	return p
}

func (b Batch) check(vocab int) error {
	n := b.BatchSize * b.SeqLen
	if b.BatchSize <= 0 || b.SeqLen <= 0 {
		return fmt.Errorf("batch: empty (%d×%d)", b.BatchSize, b.SeqLen)
	}
	if len(b.Tokens) != n || len(b.LossMask) != n || len(b.SegmentIDs) != n || (b.Positions != nil && len(b.Positions) != n) {
		return fmt.Errorf("batch: tokens, loss mask, segment ids and positions must all hold %d×%d values", b.BatchSize, b.SeqLen)
	}
	for i, t := range b.Tokens {
		if t < 0 || int(t) >= vocab {
			return fmt.Errorf("batch: token %d at %d outside the vocabulary (%d)", t, i, vocab)
		}
	}
	for i, w := range b.LossMask {
		if w == 0 {
			continue
		}
		r, t := i/b.SeqLen, i%b.SeqLen
		if !(w > 0) || math.IsInf(float64(w), 0) {
			return fmt.Errorf("batch: loss weight %v at row %d position %d", w, r, t)
		}
		if t == b.SeqLen-1 {
			return fmt.Errorf("batch: row %d: the loss mask of the last position must be 0 (it has no next token)", r)
		}
		if s := b.SegmentIDs[i]; s < 0 || s != b.SegmentIDs[i+1] {
			return fmt.Errorf("batch: loss mask set at row %d position %d whose next token is in another segment; targets must not cross documents", r, t)
		}
	}
	return nil
}

// Model is a Llama model on a GoMLX engine with its AdamW state. Its
// methods are safe for one goroutine at a time (a mutex serialises them).
type Model struct {
	mu      sync.Mutex
	cfg     Config
	opts    Options
	backend gobackends.Backend
	specs   []ParamSpec
	invFreq []float64
	cd      dtypes.DType
	// rawConfig is config.json as given (or as Config.JSON renders it),
	// written back verbatim by exports so every backend's agree.
	rawConfig []byte

	params []*tensors.Tensor // float32 master weights, in specs order
	m, v   []*tensors.Tensor // Adam moments; nil before the first step
	steps  int               // optimizer steps applied

	optim                                                  Optim
	stepExec, gradExec, accExec, applyExec, logitsX, evalX *Exec
	closed                                                 bool
}

// New places a model with the given weights (HF names, row-major float32)
// on the engine chosen by opts.
func New(cfg Config, weights map[string][]float32, opts Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, err := engine(opts)
	if err != nil {
		return nil, err
	}
	raw, err := cfg.JSON()
	if err != nil {
		return nil, err
	}
	m := &Model{cfg: cfg, opts: opts, backend: b, specs: cfg.Params(), invFreq: cfg.InvFreq(), cd: dtypes.Float32, optim: DefaultOptim(), rawConfig: raw}
	if opts.bf16() {
		m.cd = dtypes.BFloat16
	}
	for _, s := range m.specs {
		w, ok := weights[s.Name]
		if !ok {
			return nil, fmt.Errorf("gomlx: weights lack %s", s.Name)
		}
		if len(w) != size(s.Shape) {
			return nil, fmt.Errorf("gomlx: %s has %d values, want %v", s.Name, len(w), s.Shape)
		}
		m.params = append(m.params, tensors.FromFlatDataAndDimensions(append([]float32(nil), w...), s.Shape...))
	}
	return m, nil
}

// NewFromJSON is New for a config.json's content, which exports keep as given.
func NewFromJSON(configJSON []byte, weights map[string][]float32, opts Options) (*Model, error) {
	cfg, err := ParseConfig(configJSON)
	if err != nil {
		return nil, err
	}
	m, err := New(cfg, weights, opts)
	if err != nil {
		return nil, err
	}
	m.rawConfig = append([]byte(nil), configJSON...)
	return m, nil
}

// InitWeights returns from-scratch weights: N(0, 0.02) matrices (HF's
// initializer_range), unit norms, zero biases, from a seeded PCG stream.
func InitWeights(cfg Config, seed uint64) map[string][]float32 {
	rng := rand.New(rand.NewPCG(seed, 0x6d6172696e))
	out := map[string][]float32{}
	for _, s := range cfg.Params() {
		w := make([]float32, size(s.Shape))
		switch {
		case len(s.Shape) == 2:
			for i := range w {
				w[i] = float32(rng.NormFloat64() * 0.02)
			}
		case isNorm(s.Name):
			for i := range w {
				w[i] = 1
			}
		}
		out[s.Name] = w
	}
	return out
}

func isNorm(name string) bool {
	return len(name) > len("norm.weight") && name[len(name)-len("norm.weight"):] == "norm.weight"
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Config returns the model's config.
func (m *Model) Config() Config { return m.cfg }

// Steps returns how many optimizer steps were applied.
func (m *Model) Steps() int { m.mu.Lock(); defer m.mu.Unlock(); return m.steps }

// SetOptim sets AdamW's hyper-parameters for the following steps.
func (m *Model) SetOptim(o Optim) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o != m.optim {
		m.optim = o
		// The graphs bake the hyper-parameters in.
		m.stepExec, m.applyExec, m.gradExec, m.evalX = nil, nil, nil, nil
	}
}

func (m *Model) optimNow() Optim { m.mu.Lock(); defer m.mu.Unlock(); return m.optim }

// Close releases the model's device memory.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return try(func() error {
		for _, e := range []*Exec{m.stepExec, m.gradExec, m.accExec, m.applyExec, m.logitsX, m.evalX} {
			if e != nil {
				e.Finalize()
			}
		}
		for _, ts := range [][]*tensors.Tensor{m.params, m.m, m.v} {
			for _, t := range ts {
				t.FinalizeAll()
			}
		}
		return nil
	})
}

// batchInputs converts a batch to the graph's six inputs.
func (m *Model) batchInputs(b Batch) []any {
	B, S := b.BatchSize, b.SeqLen
	targets := make([]int32, B*S)
	for r := range B {
		for t := range S - 1 {
			targets[r*S+t] = b.Tokens[r*S+t+1]
		}
	}
	Dh := m.cfg.HeadDim
	half := Dh / 2
	cos := make([]float32, B*S*Dh)
	sin := make([]float32, B*S*Dh)
	positions := b.positions()
	for i := range B * S {
		pos := float64(positions[i])
		for j, f := range m.invFreq {
			// HF computes pos·inv_freq in float32; so do we, then cos/sin in float64.
			a := float64(float32(pos) * float32(f))
			c, s := float32(math.Cos(a)), float32(math.Sin(a))
			cos[i*Dh+j], cos[i*Dh+half+j] = c, c
			sin[i*Dh+j], sin[i*Dh+half+j] = -s, s
		}
	}
	return []any{
		tensors.FromFlatDataAndDimensions(append([]int32(nil), b.Tokens...), B, S),
		tensors.FromFlatDataAndDimensions(targets, B, S),
		tensors.FromFlatDataAndDimensions(append([]float32(nil), b.LossMask...), B, S),
		tensors.FromFlatDataAndDimensions(append([]int32(nil), b.SegmentIDs...), B, S),
		tensors.FromFlatDataAndDimensions(cos, B, S, Dh),
		tensors.FromFlatDataAndDimensions(sin, B, S, Dh),
	}
}

const numBatchInputs = 6

func asBatch(in []*Node) batchNodes {
	return batchNodes{tokens: in[0], targets: in[1], mask: in[2], segs: in[3], cos: in[4], sin: in[5]}
}

func (m *Model) graphOf(params []*Node) *modelGraph {
	named := make(map[string]*Node, len(params))
	for i, s := range m.specs {
		named[s.Name] = params[i]
	}
	return &modelGraph{cfg: m.cfg, params: named, cd: m.cd, zLoss: m.optim.ZLossWeight}
}

// gradsGraph returns the objective's sum, the cross-entropy's sum, Σ mask
// and the objective's gradient.
func (m *Model) gradsGraph(params []*Node, b batchNodes) (obj, ce, count *Node, grads []*Node) {
	obj, ce, count = m.graphOf(params).lossSum(b)
	return obj, ce, count, Gradient(obj, params...)
}

// applyGraph is the AdamW update of grads (sums over count tokens).
func (m *Model) applyGraph(params, mom, vel, grads []*Node, count, lr, bc1, bc2 *Node) (newP, newM, newV []*Node, norm *Node) {
	o := m.optim
	g0 := count.Graph()
	inv := Inverse(Max(count, ScalarOne(g0, dtypes.Float32)))
	gs := make([]*Node, len(grads))
	var sq *Node
	for i, g := range grads {
		gs[i] = Mul(g, inv)
		s := ReduceAllSum(Square(gs[i]))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	norm = Sqrt(sq)
	if o.MaxGradNorm > 0 {
		// optax.clip_by_global_norm: keep when norm < max, else g/norm·max.
		keep := LessThan(norm, Scalar(g0, dtypes.Float32, o.MaxGradNorm))
		for i, g := range gs {
			clipped := MulScalar(Div(g, norm), o.MaxGradNorm)
			gs[i] = Where(keep, g, clipped)
		}
	}
	for i, g := range gs {
		mi := Add(MulScalar(mom[i], o.Beta1), MulScalar(g, 1-o.Beta1))
		vi := Add(MulScalar(vel[i], o.Beta2), MulScalar(Square(g), 1-o.Beta2))
		mhat := Div(mi, bc1)
		vhat := Div(vi, bc2)
		u := Div(mhat, AddScalar(Sqrt(vhat), o.Eps))
		if m.specs[i].Decay && o.WeightDecay != 0 {
			u = Add(u, MulScalar(params[i], o.WeightDecay))
		}
		newP = append(newP, Sub(params[i], Mul(u, lr)))
		newM = append(newM, mi)
		newV = append(newV, vi)
	}
	return newP, newM, newV, norm
}

func (m *Model) exec(name string, fn func(g *Graph, in []*Node) []*Node) (*Exec, error) {
	var e *Exec
	err := try(func() error {
		var err error
		e, err = NewExec(m.backend, func(in []*Node) []*Node {
			g := in[0].Graph()
			defer forgetDots(g)
			return fn(g, in)
		})
		if err == nil {
			e = e.WithName(name)
		}
		return err
	})
	return e, err
}

// StepResult reports one optimizer step.
type StepResult struct {
	Loss      float64 // masked mean next-token cross-entropy before the update
	Objective float64 // the mean of what was minimised: cross-entropy plus z-loss
	GradNorm  float64 // global gradient norm before clipping
	Tokens    float64 // loss-mask weight in the batch
	// LossSum and ZLossSum are the sums behind Loss and Objective
	// (Objective = (LossSum+ZLossSum)/Tokens), for exact accumulation.
	LossSum, ZLossSum float64
}

// TrainStep applies one AdamW step on the mean loss over all micro-batches
// (gradient accumulation when there are several) at learning rate lr.
func (m *Model) TrainStep(ctx context.Context, lr float64, micro ...Batch) (StepResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return StepResult{}, errClosed
	}
	if len(micro) == 0 {
		return StepResult{}, errors.New("gomlx: train step without a batch")
	}
	for _, b := range micro {
		if err := b.check(m.cfg.VocabSize); err != nil {
			return StepResult{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return StepResult{}, err
	}
	P := len(m.specs)
	if m.m == nil {
		for _, s := range m.specs {
			m.m = append(m.m, tensors.FromShape(shapes.Make(dtypes.Float32, s.Shape...)))
			m.v = append(m.v, tensors.FromShape(shapes.Make(dtypes.Float32, s.Shape...)))
		}
	}
	t := float64(m.steps + 1)
	scalars := []any{
		tensors.FromValue(float32(lr)),
		tensors.FromValue(float32(1 - math.Pow(m.optim.Beta1, t))),
		tensors.FromValue(float32(1 - math.Pow(m.optim.Beta2, t))),
	}
	var outs []*tensors.Tensor
	err := try(func() error {
		var err error
		if len(micro) == 1 {
			outs, err = m.fusedStep(micro[0], scalars)
		} else {
			outs, err = m.accumulatedStep(ctx, micro, scalars)
		}
		return err
	})
	if err != nil {
		return StepResult{}, fmt.Errorf("gomlx: train step %d: %w", m.steps+1, err)
	}
	m.params, m.m, m.v = outs[:P], outs[P:2*P], outs[2*P:3*P]
	m.steps++
	var res StepResult
	err = try(func() error {
		obj := float64(tensors.ToScalar[float32](outs[3*P]))
		cnt := float64(tensors.ToScalar[float32](outs[3*P+1]))
		ce := float64(tensors.ToScalar[float32](outs[3*P+3]))
		res = StepResult{Loss: ce / math.Max(cnt, 1), Objective: obj / math.Max(cnt, 1), Tokens: cnt,
			GradNorm: float64(tensors.ToScalar[float32](outs[3*P+2])), LossSum: ce, ZLossSum: obj - ce}
		return nil
	})
	return res, err
}

// state returns params, m and v donated to the next execution.
func (m *Model) donatedState() ([]any, error) {
	var out []any
	for _, ts := range [][]*tensors.Tensor{m.params, m.m, m.v} {
		for _, t := range ts {
			d, err := DonateTensorBuffer(t, m.backend, 0)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func (m *Model) fusedStep(b Batch, scalars []any) ([]*tensors.Tensor, error) {
	P := len(m.specs)
	if m.stepExec == nil {
		e, err := m.exec("train_step", func(g *Graph, in []*Node) []*Node {
			params, mom, vel := in[:P], in[P:2*P], in[2*P:3*P]
			bn := asBatch(in[3*P : 3*P+numBatchInputs])
			sc := in[3*P+numBatchInputs:]
			obj, ce, count, grads := m.gradsGraph(params, bn)
			np, nm, nv, norm := m.applyGraph(params, mom, vel, grads, count, sc[0], sc[1], sc[2])
			return append(append(append(np, nm...), nv...), obj, count, norm, ce)
		})
		if err != nil {
			return nil, err
		}
		m.stepExec = e
	}
	args, err := m.donatedState()
	if err != nil {
		return nil, err
	}
	args = append(append(args, m.batchInputs(b)...), scalars...)
	return m.stepExec.Exec(args...)
}

func (m *Model) accumulatedStep(ctx context.Context, micro []Batch, scalars []any) ([]*tensors.Tensor, error) {
	P := len(m.specs)
	if m.gradExec == nil {
		e, err := m.exec("grads", func(g *Graph, in []*Node) []*Node {
			obj, ce, count, grads := m.gradsGraph(in[:P], asBatch(in[P:]))
			return append(grads, obj, count, ce)
		})
		if err != nil {
			return nil, err
		}
		m.gradExec = e
	}
	if m.accExec == nil {
		e, err := m.exec("accumulate", func(g *Graph, in []*Node) []*Node {
			n := len(in) / 2
			out := make([]*Node, n)
			for i := range out {
				out[i] = Add(in[i], in[n+i])
			}
			return out
		})
		if err != nil {
			return nil, err
		}
		m.accExec = e
	}
	if m.applyExec == nil {
		e, err := m.exec("apply", func(g *Graph, in []*Node) []*Node {
			params, mom, vel, grads := in[:P], in[P:2*P], in[2*P:3*P], in[3*P:4*P]
			sc := in[4*P:]
			// sc: objective, count, cross-entropy, lr, bc1, bc2.
			np, nm, nv, norm := m.applyGraph(params, mom, vel, grads, sc[1], sc[3], sc[4], sc[5])
			return append(append(append(np, nm...), nv...), sc[0], sc[1], norm, sc[2])
		})
		if err != nil {
			return nil, err
		}
		m.applyExec = e
	}
	var acc []*tensors.Tensor // grads..., objective, count, cross-entropy
	for _, b := range micro {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		args := make([]any, 0, P+numBatchInputs)
		for _, p := range m.params {
			args = append(args, p)
		}
		out, err := m.gradExec.Exec(append(args, m.batchInputs(b)...)...)
		if err != nil {
			return nil, err
		}
		if acc == nil {
			acc = out
			continue
		}
		in := make([]any, 0, 2*len(out))
		for _, t := range acc {
			in = append(in, t)
		}
		for _, t := range out {
			in = append(in, t)
		}
		next, err := m.accExec.Exec(in...)
		if err != nil {
			return nil, err
		}
		for _, t := range append(acc, out...) {
			t.FinalizeAll()
		}
		acc = next
	}
	args, err := m.donatedState()
	if err != nil {
		return nil, err
	}
	for _, t := range acc[:P] {
		args = append(args, t)
	}
	args = append(append(args, acc[P], acc[P+1], acc[P+2]), scalars...)
	return m.applyExec.Exec(args...)
}

// LossAndGrads returns the batch's masked mean loss and its gradient with
// respect to every parameter (HF names), without changing the model.
func (m *Model) LossAndGrads(ctx context.Context, b Batch) (float64, map[string][]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, nil, errClosed
	}
	if err := b.check(m.cfg.VocabSize); err != nil {
		return 0, nil, err
	}
	P := len(m.specs)
	var loss float64
	grads := map[string][]float32{}
	err := try(func() error {
		if m.gradExec == nil {
			e, err := m.exec("grads", func(g *Graph, in []*Node) []*Node {
				obj, ce, count, grads := m.gradsGraph(in[:P], asBatch(in[P:]))
				return append(grads, obj, count, ce)
			})
			if err != nil {
				return err
			}
			m.gradExec = e
		}
		args := make([]any, 0, P+numBatchInputs)
		for _, p := range m.params {
			args = append(args, p)
		}
		out, err := m.gradExec.Exec(append(args, m.batchInputs(b)...)...)
		if err != nil {
			return err
		}
		sum, cnt := float64(tensors.ToScalar[float32](out[P])), float64(tensors.ToScalar[float32](out[P+1]))
		cnt = math.Max(cnt, 1)
		loss = sum / cnt
		for i, s := range m.specs {
			g, err := tensors.CopyFlatData[float32](out[i])
			if err != nil {
				return err
			}
			for j := range g {
				g[j] = float32(float64(g[j]) / cnt)
			}
			grads[s.Name] = g
		}
		for _, t := range out {
			t.FinalizeAll()
		}
		return nil
	})
	return loss, grads, err
}

// Weights copies the float32 master weights to the host.
func (m *Model) Weights() (map[string][]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.copyOut(m.params)
}

func (m *Model) copyOut(ts []*tensors.Tensor) (map[string][]float32, error) {
	if m.closed {
		return nil, errClosed
	}
	out := map[string][]float32{}
	err := try(func() error {
		for i, s := range m.specs {
			d, err := tensors.CopyFlatData[float32](ts[i])
			if err != nil {
				return err
			}
			out[s.Name] = d
		}
		return nil
	})
	return out, err
}

// OptimizerState returns Adam's moments (nil before the first step) and the step count.
func (m *Model) OptimizerState() (mom, vel map[string][]float32, steps int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		return nil, nil, m.steps, nil
	}
	if mom, err = m.copyOut(m.m); err != nil {
		return nil, nil, 0, err
	}
	vel, err = m.copyOut(m.v)
	return mom, vel, m.steps, err
}

// SetOptimizerState restores Adam's moments and step count (a checkpoint).
func (m *Model) SetOptimizerState(mom, vel map[string][]float32, steps int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mom == nil {
		m.m, m.v, m.steps = nil, nil, steps
		return nil
	}
	var ms, vs []*tensors.Tensor
	for _, s := range m.specs {
		a, b := mom[s.Name], vel[s.Name]
		if len(a) != size(s.Shape) || len(b) != size(s.Shape) {
			return fmt.Errorf("gomlx: optimizer state for %s: want %v values", s.Name, s.Shape)
		}
		ms = append(ms, tensors.FromFlatDataAndDimensions(append([]float32(nil), a...), s.Shape...))
		vs = append(vs, tensors.FromFlatDataAndDimensions(append([]float32(nil), b...), s.Shape...))
	}
	m.m, m.v, m.steps = ms, vs, steps
	return nil
}

// EvalResult is a loss over a batch as sums (see StepResult).
type EvalResult struct {
	LossSum, ZLossSum, Tokens float64
}

// Eval returns the batch's loss sums without gradients (evaluation).
func (m *Model) Eval(ctx context.Context, b Batch) (EvalResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return EvalResult{}, errClosed
	}
	if err := b.check(m.cfg.VocabSize); err != nil {
		return EvalResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return EvalResult{}, err
	}
	P := len(m.specs)
	var res EvalResult
	err := try(func() error {
		if m.evalX == nil {
			e, err := m.exec("eval", func(g *Graph, in []*Node) []*Node {
				obj, ce, count := m.graphOf(in[:P]).lossSum(asBatch(in[P:]))
				return []*Node{obj, ce, count}
			})
			if err != nil {
				return err
			}
			m.evalX = e
		}
		args := make([]any, 0, P+numBatchInputs)
		for _, p := range m.params {
			args = append(args, p)
		}
		out, err := m.evalX.Exec(append(args, m.batchInputs(b)...)...)
		if err != nil {
			return err
		}
		obj, ce := float64(tensors.ToScalar[float32](out[0])), float64(tensors.ToScalar[float32](out[1]))
		res = EvalResult{LossSum: ce, ZLossSum: obj - ce, Tokens: float64(tensors.ToScalar[float32](out[2]))}
		for _, t := range out {
			t.FinalizeAll()
		}
		return nil
	})
	return res, err
}
