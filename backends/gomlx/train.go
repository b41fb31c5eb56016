package gomlx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	gobackends "github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
)

// Model is a Llama model on a GoMLX engine with its AdamW state; it is
// backends/train's Engine on GoMLX. Its methods are safe for one goroutine
// at a time (a mutex serialises them).
type Model struct {
	mu      sync.Mutex
	cfg     llama.Config // normalized; exports write it back (its Extra keys too)
	opts    Options
	backend gobackends.Backend
	// specs are the parameters in llama.Params' order and naming.
	specs []paramSpec
	// rope holds the cpu engine's float32 cos/sin tables (llama.RopeTable),
	// grown to the positions used, so both engines rotate identically.
	rope *llama.RopeTable
	cd   dtypes.DType

	// dev holds one copy of the training state per device used; training
	// runs data-parallel over them (SPMD, gradients summed by AllReduce),
	// and dev[0] serves reads, evaluation and decoding.
	dev   []*replica
	mesh  *distributed.DeviceMesh // nil on one device
	steps int                     // optimizer steps applied

	adamw optim.AdamWConfig
	// zLoss adds zLoss·logsumexp² per trained token to the objective
	// (Levanter's z_loss_weight); 0: none.
	zLoss float64
	// Run on every device: the fused step, and gradient accumulation's
	// three graphs.
	stepExec, gradAccExec, accExec, applyExec *Exec
	// Run on device 0.
	gradExec, logitsX, evalX *Exec
	closed                   bool

	// LoRA (lora.go): specs are the adapter's tensors, trained; frozen the
	// base's (all of them but those the adapter trains in full), which
	// every graph takes after its other inputs. adapter holds the layout
	// (its values are on the devices), base the caller's host weights (for
	// merged exports), seed the run's dropout key. All nil/zero for full
	// fine-tuning.
	adapter *lora.Adapter
	base    *llama.Params
	frozen  []paramSpec
	seed    int64
}

// paramSpec is one tensor of llama.Params: its HF name and row-major shape,
// and whether AdamW decays it (optim.LevanterWeightDecay).
type paramSpec struct {
	name  string
	shape []int
	decay bool
}

// replica is one device's training state, in specs order.
type replica struct {
	params []*tensors.Tensor // float32 master weights
	m, v   []*tensors.Tensor // Adam moments; nil before the first step
	frozen []*tensors.Tensor // LoRA: the base's tensors (compute dtype), in frozen order
}

func (r *replica) all() []*tensors.Tensor {
	return append(append(append([]*tensors.Tensor(nil), r.params...), r.m...), r.v...)
}

// New places a model with params' weights on the engine chosen by opts.
// The optimizer starts at optim.DefaultAdamW without z-loss (SetAdamW).
func New(params *llama.Params, opts Options) (*Model, error) {
	m, ndev, err := newModel(params.Config, opts)
	if err != nil {
		return nil, err
	}
	for _, t := range params.Tensors() {
		if len(t.Data) != t.Size() {
			return nil, fmt.Errorf("gomlx: %s has %d values, want %v", t.Name, len(t.Data), t.Shape)
		}
		m.specs = append(m.specs, paramSpec{name: t.Name, shape: t.Shape, decay: optim.LevanterWeightDecay(t.Name)})
	}
	for range ndev {
		r := &replica{}
		for _, t := range params.Tensors() {
			r.params = append(r.params, tensors.FromFlatDataAndDimensions(append([]float32(nil), t.Data...), t.Shape...))
		}
		m.dev = append(m.dev, r)
	}
	return m, nil
}

// newModel starts a model for cfg on the engine opts chooses, with no
// tensors yet; it returns how many devices it trains on.
func newModel(cfg llama.Config, opts Options) (*Model, int, error) {
	cfg = cfg.Normalized()
	if err := cfg.Validate(); err != nil {
		return nil, 0, err
	}
	b, err := engine(opts)
	if err != nil {
		return nil, 0, err
	}
	m := &Model{cfg: cfg, opts: opts, backend: b, rope: llama.NewRopeTable(cfg, 0), cd: dtypes.Float32, adamw: optim.DefaultAdamW()}
	if opts.bf16() {
		m.cd = dtypes.BFloat16
	}
	ndev := b.NumDevices()
	if opts.Devices > 0 {
		if opts.Devices > ndev {
			return nil, 0, fmt.Errorf("gomlx: %d devices requested, the engine has %d", opts.Devices, ndev)
		}
		ndev = opts.Devices
	}
	if ndev > 1 {
		if m.mesh, err = distributed.NewDeviceMesh([]int{ndev}, []string{"data"}); err != nil {
			return nil, 0, fmt.Errorf("gomlx: device mesh: %w", err)
		}
	}
	return m, ndev, nil
}

// Devices returns how many devices the model trains on.
func (m *Model) Devices() int { return len(m.dev) }

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Config returns the model's (normalized) config.
func (m *Model) Config() llama.Config { return m.cfg }

// Steps returns how many optimizer steps were applied.
func (m *Model) Steps() int { m.mu.Lock(); defer m.mu.Unlock(); return m.steps }

// SetAdamW sets AdamW's hyper-parameters and the z-loss weight for the
// following steps.
func (m *Model) SetAdamW(c optim.AdamWConfig, zLossWeight float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c != m.adamw || zLossWeight != m.zLoss {
		m.adamw, m.zLoss = c, zLossWeight
		// The graphs bake the hyper-parameters in.
		m.stepExec, m.gradAccExec, m.applyExec, m.gradExec, m.evalX = nil, nil, nil, nil, nil
	}
}

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
			for _, t := range append(r.all(), r.frozen...) {
				t.FinalizeAll()
			}
		}
		return nil
	})
}

// batchInputs checks b against the model and converts it to the graph's
// six inputs. RoPE's cos/sin come from the shared float32 tables.
func (m *Model) batchInputs(b *llama.Batch) ([]any, error) {
	if err := b.Validate(m.cfg); err != nil {
		return nil, err
	}
	B, S := b.B, b.T
	n := B * S
	targets := make([]int32, n)
	for r := range B {
		for t := range S - 1 {
			targets[r*S+t] = b.Tokens[r*S+t+1]
		}
	}
	mask := make([]float32, n)
	for i, v := range b.LossMask {
		if v {
			mask[i] = 1
		}
	}
	segs := b.Segments
	if segs == nil {
		segs = make([]int32, n)
	}
	positions := b.DerivedPositions()
	cos, sin, err := m.ropeInputs(positions)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	Dh := m.cfg.HeadDim
	return []any{
		tensors.FromFlatDataAndDimensions(append([]int32(nil), b.Tokens...), B, S),
		tensors.FromFlatDataAndDimensions(targets, B, S),
		tensors.FromFlatDataAndDimensions(mask, B, S),
		tensors.FromFlatDataAndDimensions(append([]int32(nil), segs...), B, S),
		tensors.FromFlatDataAndDimensions(cos, B, S, Dh),
		tensors.FromFlatDataAndDimensions(sin, B, S, Dh),
	}, nil
}

// ropeInputs lays the shared RoPE tables out for the graph: per position,
// cos with its halves repeated and sin with the first half negated
// (rotate_half's sign), head_dim values each.
func (m *Model) ropeInputs(positions []int32) (cos, sin []float32, err error) {
	if err := m.rope.Check(positions); err != nil {
		return nil, nil, err
	}
	half := m.rope.Half
	Dh := 2 * half
	cos = make([]float32, len(positions)*Dh)
	sin = make([]float32, len(positions)*Dh)
	for i, p := range positions {
		c := m.rope.Cos[int(p)*half : int(p)*half+half]
		s := m.rope.Sin[int(p)*half : int(p)*half+half]
		for j := range half {
			cos[i*Dh+j], cos[i*Dh+half+j] = c[j], c[j]
			sin[i*Dh+j], sin[i*Dh+half+j] = -s[j], s[j]
		}
	}
	return cos, sin, nil
}

const numBatchInputs = 6

// numTrainInputs is how many inputs a training graph takes per batch: the
// batch's, then the dropout's.
func (m *Model) numTrainInputs() int { return numBatchInputs + m.numDrop() }

func asBatch(in []*Node) batchNodes {
	return batchNodes{tokens: in[0], targets: in[1], mask: in[2], segs: in[3], cos: in[4], sin: in[5]}
}

// graphOf is the model over the trained tensors' nodes (specs order) and,
// with LoRA, the frozen ones and a training pass's dropout (nil: none).
func (m *Model) graphOf(params, frozen []*Node, drop *dropNodes) *modelGraph {
	named := make(map[string]*Node, len(params)+len(frozen))
	for i, s := range m.frozen {
		named[s.name] = frozen[i]
	}
	g := &modelGraph{cfg: m.cfg, params: named, cd: m.cd, zLoss: m.zLoss, drop: drop}
	if m.adapter != nil {
		m.loraGraph(g, params)
		return g
	}
	for i, s := range m.specs {
		named[s.name] = params[i]
	}
	return g
}

// gradsGraph returns the objective's sum, the cross-entropy's sum, Σ mask
// and the objective's gradient with respect to the trained tensors.
func (m *Model) gradsGraph(params, frozen []*Node, b batchNodes, drop *dropNodes) (obj, ce, count *Node, grads []*Node) {
	obj, ce, count = m.graphOf(params, frozen, drop).lossSum(b)
	return obj, ce, count, Gradient(obj, params...)
}

// applyGraph is the AdamW update of grads (sums over count tokens).
func (m *Model) applyGraph(params, mom, vel, grads []*Node, count, lr, bc1, bc2 *Node) (newP, newM, newV []*Node, norm *Node) {
	o := m.adamw
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
		u := Div(mhat, AddScalar(Sqrt(vhat), o.Epsilon))
		if m.specs[i].decay && o.WeightDecay != 0 {
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
func (m *Model) split(b *llama.Batch) ([]*llama.Batch, error) {
	n := len(m.dev)
	if n == 1 {
		return []*llama.Batch{b}, nil
	}
	if b.B%n != 0 {
		return nil, fmt.Errorf("gomlx: batch of %d rows does not split over %d devices (use a multiple, or resources.num_devices)", b.B, n)
	}
	rows := b.B / n
	out := make([]*llama.Batch, n)
	for d := range out {
		out[d] = b.Rows(d*rows, rows)
	}
	return out, nil
}

// TrainStep applies one AdamW step at learning rate lr on the mean
// objective over the trained tokens of all micro-batches (gradient
// accumulation when there are several). The loss sums are the
// micro-batches' before the update.
func (m *Model) TrainStep(ctx context.Context, lr float64, micro ...*llama.Batch) (llama.LossResult, optim.StepInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := optim.StepInfo{LR: lr}
	if m.closed {
		return llama.LossResult{}, info, errClosed
	}
	if len(micro) == 0 {
		return llama.LossResult{}, info, errors.New("gomlx: train step without a batch")
	}
	var inputs [][][]any // [micro-batch][device] graph inputs (batch, dropout)
	for mi, b := range micro {
		parts, err := m.split(b)
		if err != nil {
			return llama.LossResult{}, info, err
		}
		var in [][]any
		for d, p := range parts {
			x, err := m.batchInputs(p)
			if err != nil {
				return llama.LossResult{}, info, err
			}
			in = append(in, append(x, m.dropInputs(m.steps+1, mi*b.B+d*p.B, b.T)...))
		}
		inputs = append(inputs, in)
	}
	if err := ctx.Err(); err != nil {
		return llama.LossResult{}, info, err
	}
	P := len(m.specs)
	for _, r := range m.dev {
		if r.m == nil {
			for _, s := range m.specs {
				r.m = append(r.m, tensors.FromShape(shapes.Make(dtypes.Float32, s.shape...)))
				r.v = append(r.v, tensors.FromShape(shapes.Make(dtypes.Float32, s.shape...)))
			}
		}
	}
	t := float64(m.steps + 1)
	scalars := func() []any { // a fresh set per device
		return []any{
			tensors.FromValue(float32(lr)),
			tensors.FromValue(float32(1 - math.Pow(m.adamw.Beta1, t))),
			tensors.FromValue(float32(1 - math.Pow(m.adamw.Beta2, t))),
		}
	}
	var outs []*tensors.Tensor // device-major: per device 3P+4
	err := try(func() error {
		var err error
		if len(micro) == 1 {
			outs, err = m.fusedStep(inputs[0], scalars)
		} else {
			outs, err = m.accumulatedStep(ctx, inputs, scalars)
		}
		return err
	})
	if err != nil {
		return llama.LossResult{}, info, fmt.Errorf("gomlx: train step %d: %w", m.steps+1, err)
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
	var res llama.LossResult
	err = try(func() error {
		obj := float64(tensors.ToScalar[float32](outs[3*P]))
		cnt := float64(tensors.ToScalar[float32](outs[3*P+1]))
		ce := float64(tensors.ToScalar[float32](outs[3*P+3]))
		res = llama.LossResult{Loss: ce, ZLoss: obj - ce, Count: int(cnt)}
		info.GradNorm = float64(tensors.ToScalar[float32](outs[3*P+2]))
		return nil
	})
	info.Clipped = m.adamw.MaxGradNorm > 0 && !(info.GradNorm < m.adamw.MaxGradNorm)
	return res, info, err
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

// fusedStep runs gradients and the update as one graph; inputs holds each
// device's batch inputs.
func (m *Model) fusedStep(inputs [][]any, scalars func() []any) ([]*tensors.Tensor, error) {
	P := len(m.specs)
	if m.stepExec == nil {
		nb := m.numTrainInputs()
		e, err := m.exec("train_step", true, func(g *Graph, in []*Node) []*Node {
			params, mom, vel := in[:P], in[P:2*P], in[2*P:3*P]
			bn := asBatch(in[3*P : 3*P+numBatchInputs])
			drop := m.dropNodesOf(in[3*P+numBatchInputs : 3*P+nb])
			sc, frozen := in[3*P+nb:3*P+nb+3], in[3*P+nb+3:]
			obj, ce, count, grads := m.gradsGraph(params, frozen, bn, drop)
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
		args = append(append(append(append(args, st...), inputs[d]...), scalars()...), m.frozenArgs(d)...)
	}
	return m.stepExec.Exec(args...)
}

// accumulatedStep sums gradients over micro-batches on each device, then
// sums over devices and applies the update. inputs is [micro-batch][device].
func (m *Model) accumulatedStep(ctx context.Context, inputs [][][]any, scalars func() []any) ([]*tensors.Tensor, error) {
	P := len(m.specs)
	if m.gradAccExec == nil {
		e, err := m.exec("grads", true, func(g *Graph, in []*Node) []*Node {
			return m.gradsOutputs(in, P)
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
	for _, devInputs := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var args []any
		for d, r := range m.dev {
			for _, p := range r.params {
				args = append(args, p)
			}
			args = append(append(args, devInputs[d]...), m.frozenArgs(d)...)
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

// gradsOutputs is the gradient graph's body over inputs [P trained][batch
// and dropout][frozen]: the gradients, then objective, count and
// cross-entropy sums.
func (m *Model) gradsOutputs(in []*Node, P int) []*Node {
	nb := m.numTrainInputs()
	bn, drop := asBatch(in[P:P+numBatchInputs]), m.dropNodesOf(in[P+numBatchInputs:P+nb])
	obj, ce, count, grads := m.gradsGraph(in[:P], in[P+nb:], bn, drop)
	return append(grads, obj, count, ce)
}

// Grads returns b's loss sums and the gradient of the objective's mean
// over b's trained tokens (cross-entropy plus z-loss; the gradient a step
// on b alone would clip and apply, LoRA dropout included) with respect to
// the trained tensors, changing nothing.
func (m *Model) Grads(ctx context.Context, b *llama.Batch) (llama.LossResult, []*llama.Tensor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return llama.LossResult{}, nil, errClosed
	}
	in, err := m.batchInputs(b)
	if err != nil {
		return llama.LossResult{}, nil, err
	}
	in = append(in, m.dropInputs(m.steps+1, 0, b.T)...)
	if err := ctx.Err(); err != nil {
		return llama.LossResult{}, nil, err
	}
	grads := make([]*llama.Tensor, len(m.specs))
	for i, s := range m.specs {
		grads[i] = &llama.Tensor{Name: s.name, Shape: s.shape, Data: make([]float32, size(s.shape))}
	}
	P := len(m.specs)
	var res llama.LossResult
	err = try(func() error {
		if m.gradExec == nil {
			e, err := m.exec("grads", false, func(g *Graph, in []*Node) []*Node {
				return m.gradsOutputs(in, P)
			})
			if err != nil {
				return err
			}
			m.gradExec = e
		}
		out, err := m.gradExec.Exec(append(append(m.paramArgs(), in...), m.frozenArgs(0)...)...)
		if err != nil {
			return err
		}
		defer finalize(out)
		obj, cnt, ce := scalar(out[P]), scalar(out[P+1]), scalar(out[P+2])
		res = llama.LossResult{Loss: ce, ZLoss: obj - ce, Count: int(cnt)}
		inv := 1 / math.Max(cnt, 1)
		for i, t := range grads {
			g, err := tensors.CopyFlatData[float32](out[i])
			if err != nil {
				return err
			}
			for j, v := range g {
				t.Data[j] = float32(float64(v) * inv)
			}
		}
		return nil
	})
	if err != nil {
		return llama.LossResult{}, nil, err
	}
	return res, grads, nil
}

// paramArgs returns device 0's weights as execution arguments.
func (m *Model) paramArgs() []any {
	args := make([]any, 0, len(m.specs)+numBatchInputs)
	for _, p := range m.dev[0].params {
		args = append(args, p)
	}
	return args
}

func scalar(t *tensors.Tensor) float64 { return float64(tensors.ToScalar[float32](t)) }

func finalize(ts []*tensors.Tensor) {
	for _, t := range ts {
		t.FinalizeAll()
	}
}

// Params copies the float32 master weights into llama.Params (for
// checkpoints and exports); with LoRA it merges the adapter into the base.
func (m *Model) Params() (*llama.Params, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	if m.adapter != nil {
		return m.mergedParams()
	}
	p, err := llama.NewParams(m.cfg)
	if err != nil {
		return nil, err
	}
	return p, m.copyOut(m.dev[0].params, p.Tensors())
}

// copyOut copies device tensors into host tensors of the same order.
func (m *Model) copyOut(ts []*tensors.Tensor, dst []*llama.Tensor) error {
	return try(func() error {
		for i, t := range dst {
			d, err := tensors.CopyFlatData[float32](ts[i])
			if err != nil {
				return err
			}
			copy(t.Data, d)
		}
		return nil
	})
}

// OptimizerState returns AdamW's state in backends/model/optim's form,
// tensors in llama.Params' order (nil before the first update).
func (m *Model) OptimizerState() (*optim.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	r := m.dev[0]
	if r.m == nil {
		return nil, nil
	}
	st := &optim.State{Step: int64(m.steps)}
	for i, s := range m.specs {
		st.Names = append(st.Names, s.name)
		var mi, vi []float32
		err := try(func() error {
			var err error
			if mi, err = tensors.CopyFlatData[float32](r.m[i]); err != nil {
				return err
			}
			vi, err = tensors.CopyFlatData[float32](r.v[i])
			return err
		})
		if err != nil {
			return nil, err
		}
		st.M, st.V = append(st.M, mi), append(st.V, vi)
	}
	return st, nil
}

// LoadOptimizerState restores AdamW's state (a resumed checkpoint of
// either engine); nil resets it.
func (m *Model) LoadOptimizerState(st *optim.State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	if st != nil {
		if len(st.Names) != len(m.specs) || len(st.M) != len(m.specs) || len(st.V) != len(m.specs) {
			return fmt.Errorf("gomlx: optimizer state holds %d tensors, the model has %d", len(st.Names), len(m.specs))
		}
		if st.Step < 0 {
			return fmt.Errorf("gomlx: optimizer state at negative step %d", st.Step)
		}
		for i, s := range m.specs {
			if st.Names[i] != s.name || len(st.M[i]) != size(s.shape) || len(st.V[i]) != size(s.shape) {
				return fmt.Errorf("gomlx: optimizer state tensor %d is %s with %d/%d values, the model's is %s %v", i, st.Names[i], len(st.M[i]), len(st.V[i]), s.name, s.shape)
			}
		}
	}
	for _, r := range m.dev {
		finalize(append(r.m, r.v...))
		r.m, r.v = nil, nil
		if st == nil {
			continue
		}
		for i, s := range m.specs {
			r.m = append(r.m, tensors.FromFlatDataAndDimensions(append([]float32(nil), st.M[i]...), s.shape...))
			r.v = append(r.v, tensors.FromFlatDataAndDimensions(append([]float32(nil), st.V[i]...), s.shape...))
		}
	}
	m.steps = 0
	if st != nil {
		m.steps = int(st.Step)
	}
	return nil
}

// Eval returns b's loss sums without gradients (evaluation).
func (m *Model) Eval(ctx context.Context, b *llama.Batch) (llama.LossResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return llama.LossResult{}, errClosed
	}
	in, err := m.batchInputs(b)
	if err != nil {
		return llama.LossResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return llama.LossResult{}, err
	}
	P := len(m.specs)
	var res llama.LossResult
	err = try(func() error {
		if m.evalX == nil {
			e, err := m.exec("eval", false, func(g *Graph, in []*Node) []*Node {
				obj, ce, count := m.graphOf(in[:P], in[P+numBatchInputs:], nil).lossSum(asBatch(in[P : P+numBatchInputs]))
				return []*Node{obj, ce, count}
			})
			if err != nil {
				return err
			}
			m.evalX = e
		}
		out, err := m.evalX.Exec(append(append(m.paramArgs(), in...), m.frozenArgs(0)...)...)
		if err != nil {
			return err
		}
		defer finalize(out)
		obj, ce := scalar(out[0]), scalar(out[1])
		res = llama.LossResult{Loss: ce, ZLoss: obj - ce, Count: int(scalar(out[2]))}
		return nil
	})
	return res, err
}
