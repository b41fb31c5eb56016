package gomlx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	gobackends "github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
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

	// dev holds one copy of the training state per device used; training
	// runs data-parallel over them (SPMD, gradients summed by AllReduce),
	// and dev[0] serves reads, evaluation and decoding.
	dev   []*replica
	mesh  *distributed.DeviceMesh // nil on one device
	steps int                     // optimizer steps applied

	optim Optim
	// Run on every device: the fused step, and gradient accumulation's
	// three graphs.
	stepExec, gradAccExec, accExec, applyExec *Exec
	// Run on device 0.
	gradExec, logitsX, evalX *Exec
	closed                   bool
}

// replica is one device's training state, in specs order.
type replica struct {
	params []*tensors.Tensor // float32 master weights
	m, v   []*tensors.Tensor // Adam moments; nil before the first step
}

func (r *replica) all() []*tensors.Tensor {
	return append(append(append([]*tensors.Tensor(nil), r.params...), r.m...), r.v...)
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
	ndev := b.NumDevices()
	if opts.Devices > 0 {
		if opts.Devices > ndev {
			return nil, fmt.Errorf("gomlx: %d devices requested, the engine has %d", opts.Devices, ndev)
		}
		ndev = opts.Devices
	}
	if ndev > 1 {
		if m.mesh, err = distributed.NewDeviceMesh([]int{ndev}, []string{"data"}); err != nil {
			return nil, fmt.Errorf("gomlx: device mesh: %w", err)
		}
	}
	for _, s := range m.specs {
		w, ok := weights[s.Name]
		if !ok {
			return nil, fmt.Errorf("gomlx: weights lack %s", s.Name)
		}
		if len(w) != size(s.Shape) {
			return nil, fmt.Errorf("gomlx: %s has %d values, want %v", s.Name, len(w), s.Shape)
		}
	}
	for range ndev {
		r := &replica{}
		for _, s := range m.specs {
			r.params = append(r.params, tensors.FromFlatDataAndDimensions(append([]float32(nil), weights[s.Name]...), s.Shape...))
		}
		m.dev = append(m.dev, r)
	}
	return m, nil
}

// Devices returns how many devices the model trains on.
func (m *Model) Devices() int { return len(m.dev) }

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
		m.stepExec, m.gradAccExec, m.applyExec, m.gradExec, m.evalX = nil, nil, nil, nil, nil
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
		for _, e := range []*Exec{m.stepExec, m.gradAccExec, m.accExec, m.applyExec, m.gradExec, m.logitsX, m.evalX} {
			if e != nil {
				e.Finalize()
			}
		}
		for _, r := range m.dev {
			for _, t := range r.all() {
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

// exec builds an Exec running fn on device 0, or with spmd on every
// device of the mesh (each with its own inputs, device-major).
func (m *Model) exec(name string, spmd bool, fn func(g *Graph, in []*Node) []*Node) (*Exec, error) {
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
			if spmd && m.mesh != nil {
				e = e.SPMD(m.mesh)
			}
		}
		return err
	})
	return e, err
}

// allReduce sums nodes over the devices of a data-parallel graph.
func allReduce(g *Graph, nodes []*Node) []*Node {
	if g.NumDevices() <= 1 {
		return nodes
	}
	return g.Distributed().AllReduce(nodes, gobackends.ReduceOpSum)
}

// reducedApply sums the local gradient and loss sums over devices and
// applies AdamW; every device computes the same update.
func (m *Model) reducedApply(g *Graph, params, mom, vel, grads []*Node, obj, count, ce, lr, bc1, bc2 *Node) []*Node {
	P := len(params)
	red := allReduce(g, append(append([]*Node(nil), grads...), obj, count, ce))
	np, nm, nv, norm := m.applyGraph(params, mom, vel, red[:P], red[P+1], lr, bc1, bc2)
	return append(append(append(np, nm...), nv...), red[P], red[P+1], norm, red[P+2])
}

// split divides b's rows among the devices.
func (m *Model) split(b Batch) ([]Batch, error) {
	n := len(m.dev)
	if n == 1 {
		return []Batch{b}, nil
	}
	if b.BatchSize%n != 0 {
		return nil, fmt.Errorf("gomlx: batch of %d rows does not split over %d devices (use a multiple, or resources.num_devices)", b.BatchSize, n)
	}
	rows := b.BatchSize / n
	var out []Batch
	for d := range n {
		lo, hi := d*rows*b.SeqLen, (d+1)*rows*b.SeqLen
		p := Batch{BatchSize: rows, SeqLen: b.SeqLen, Tokens: b.Tokens[lo:hi], LossMask: b.LossMask[lo:hi], SegmentIDs: b.SegmentIDs[lo:hi]}
		if b.Positions != nil {
			p.Positions = b.Positions[lo:hi]
		}
		out = append(out, p)
	}
	return out, nil
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
	var parts [][]Batch // [micro-batch][device]
	for _, b := range micro {
		p, err := m.split(b)
		if err != nil {
			return StepResult{}, err
		}
		parts = append(parts, p)
	}
	for _, r := range m.dev {
		if r.m == nil {
			for _, s := range m.specs {
				r.m = append(r.m, tensors.FromShape(shapes.Make(dtypes.Float32, s.Shape...)))
				r.v = append(r.v, tensors.FromShape(shapes.Make(dtypes.Float32, s.Shape...)))
			}
		}
	}
	t := float64(m.steps + 1)
	scalars := func() []any { // a fresh set per device
		return []any{
			tensors.FromValue(float32(lr)),
			tensors.FromValue(float32(1 - math.Pow(m.optim.Beta1, t))),
			tensors.FromValue(float32(1 - math.Pow(m.optim.Beta2, t))),
		}
	}
	var outs []*tensors.Tensor // device-major: per device 3P+4
	err := try(func() error {
		var err error
		if len(micro) == 1 {
			outs, err = m.fusedStep(parts[0], scalars)
		} else {
			outs, err = m.accumulatedStep(ctx, parts, scalars)
		}
		return err
	})
	if err != nil {
		return StepResult{}, fmt.Errorf("gomlx: train step %d: %w", m.steps+1, err)
	}
	per := 3*P + 4
	for d, r := range m.dev {
		o := outs[d*per : (d+1)*per]
		r.params, r.m, r.v = o[:P], o[P:2*P], o[2*P:3*P]
		if d > 0 {
			for _, t := range o[3*P:] {
				t.FinalizeAll()
			}
		}
	}
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

// donatedState returns device d's params, m and v donated to the next execution.
func (m *Model) donatedState(d int) ([]any, error) {
	var out []any
	for _, t := range m.dev[d].all() {
		dt, err := DonateTensorBuffer(t, m.backend, gobackends.DeviceNum(d))
		if err != nil {
			return nil, err
		}
		out = append(out, dt)
	}
	return out, nil
}

// fusedStep runs gradients and the update as one graph; parts holds each
// device's rows.
func (m *Model) fusedStep(parts []Batch, scalars func() []any) ([]*tensors.Tensor, error) {
	P := len(m.specs)
	if m.stepExec == nil {
		e, err := m.exec("train_step", true, func(g *Graph, in []*Node) []*Node {
			params, mom, vel := in[:P], in[P:2*P], in[2*P:3*P]
			bn := asBatch(in[3*P : 3*P+numBatchInputs])
			sc := in[3*P+numBatchInputs:]
			obj, ce, count, grads := m.gradsGraph(params, bn)
			return m.reducedApply(g, params, mom, vel, grads, obj, count, ce, sc[0], sc[1], sc[2])
		})
		if err != nil {
			return nil, err
		}
		m.stepExec = e
	}
	var args []any
	for d := range m.dev {
		st, err := m.donatedState(d)
		if err != nil {
			return nil, err
		}
		args = append(append(append(args, st...), m.batchInputs(parts[d])...), scalars()...)
	}
	return m.stepExec.Exec(args...)
}

// accumulatedStep sums gradients over micro-batches on each device, then
// sums over devices and applies the update. parts is [micro-batch][device].
func (m *Model) accumulatedStep(ctx context.Context, parts [][]Batch, scalars func() []any) ([]*tensors.Tensor, error) {
	P := len(m.specs)
	if m.gradAccExec == nil {
		e, err := m.exec("grads", true, func(g *Graph, in []*Node) []*Node {
			obj, ce, count, grads := m.gradsGraph(in[:P], asBatch(in[P:]))
			return append(grads, obj, count, ce)
		})
		if err != nil {
			return nil, err
		}
		m.gradAccExec = e
	}
	if m.accExec == nil {
		e, err := m.exec("accumulate", true, func(g *Graph, in []*Node) []*Node {
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
		e, err := m.exec("apply", true, func(g *Graph, in []*Node) []*Node {
			params, mom, vel, grads := in[:P], in[P:2*P], in[2*P:3*P], in[3*P:4*P]
			sc := in[4*P:] // objective, count, cross-entropy, lr, bc1, bc2
			return m.reducedApply(g, params, mom, vel, grads, sc[0], sc[1], sc[2], sc[3], sc[4], sc[5])
		})
		if err != nil {
			return nil, err
		}
		m.applyExec = e
	}
	n := len(m.dev)
	per := P + 3
	var acc []*tensors.Tensor // device-major: grads..., objective, count, cross-entropy
	for _, devParts := range parts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var args []any
		for d, r := range m.dev {
			for _, p := range r.params {
				args = append(args, p)
			}
			args = append(args, m.batchInputs(devParts[d])...)
		}
		out, err := m.gradAccExec.Exec(args...)
		if err != nil {
			return nil, err
		}
		if acc == nil {
			acc = out
			continue
		}
		var in []any
		for d := range n {
			for _, t := range acc[d*per : (d+1)*per] {
				in = append(in, t)
			}
			for _, t := range out[d*per : (d+1)*per] {
				in = append(in, t)
			}
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
	var args []any
	for d := range n {
		st, err := m.donatedState(d)
		if err != nil {
			return nil, err
		}
		args = append(args, st...)
		for _, t := range acc[d*per : (d+1)*per] {
			args = append(args, t)
		}
		args = append(args, scalars()...)
	}
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
			e, err := m.exec("grads", false, func(g *Graph, in []*Node) []*Node {
				obj, ce, count, grads := m.gradsGraph(in[:P], asBatch(in[P:]))
				return append(grads, obj, count, ce)
			})
			if err != nil {
				return err
			}
			m.gradExec = e
		}
		args := make([]any, 0, P+numBatchInputs)
		for _, p := range m.dev[0].params {
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
	return m.copyOut(m.dev[0].params)
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
	r := m.dev[0]
	if r.m == nil {
		return nil, nil, m.steps, nil
	}
	if mom, err = m.copyOut(r.m); err != nil {
		return nil, nil, 0, err
	}
	vel, err = m.copyOut(r.v)
	return mom, vel, m.steps, err
}

// SetOptimizerState restores Adam's moments and step count (a checkpoint).
func (m *Model) SetOptimizerState(mom, vel map[string][]float32, steps int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.specs {
		if mom != nil && (len(mom[s.Name]) != size(s.Shape) || len(vel[s.Name]) != size(s.Shape)) {
			return fmt.Errorf("gomlx: optimizer state for %s: want %v values", s.Name, s.Shape)
		}
	}
	for _, r := range m.dev {
		for _, t := range append(r.m, r.v...) {
			t.FinalizeAll()
		}
		r.m, r.v = nil, nil
		if mom == nil {
			continue
		}
		for _, s := range m.specs {
			r.m = append(r.m, tensors.FromFlatDataAndDimensions(append([]float32(nil), mom[s.Name]...), s.Shape...))
			r.v = append(r.v, tensors.FromFlatDataAndDimensions(append([]float32(nil), vel[s.Name]...), s.Shape...))
		}
	}
	m.steps = steps
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
			e, err := m.exec("eval", false, func(g *Graph, in []*Node) []*Node {
				obj, ce, count := m.graphOf(in[:P]).lossSum(asBatch(in[P:]))
				return []*Node{obj, ce, count}
			})
			if err != nil {
				return err
			}
			m.evalX = e
		}
		args := make([]any, 0, P+numBatchInputs)
		for _, p := range m.dev[0].params {
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
