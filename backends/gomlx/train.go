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
	"github.com/marin-go/marin/backends/train"
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
	// The precision policy: compute (cd), weight (pd) and moment (od)
	// dtypes; bf16 weights carry a Kahan compensation buffer (kahan).
	pol        train.Precision
	cd, pd, od dtypes.DType
	kahan      bool
	// ckpt recomputes each decoder layer's activations in the backward
	// pass (remat.go).
	ckpt bool

	// dev holds each device's part of the training state: the whole of it
	// on one device; over several, the shards of each tensor (FSDP, shard
	// laid out by shard), training with GoMLX's AutoSharding.
	dev   []*replica
	shard *sharding // nil on one device
	// full caches the whole weights gathered on the host when sharded, for
	// the graphs that run on device 0 (evaluation, Grads, decoding);
	// dropped by every update.
	full  []*tensors.Tensor
	steps int // optimizer steps applied

	adamw optim.AdamWConfig
	// zLoss adds zLoss·logsumexp² per trained token to the objective
	// (Levanter's z_loss_weight); 0: none.
	zLoss float64
	// Run on every device: the fused step, and gradient accumulation's
	// three graphs (the first micro-batch's gradients, each later one's
	// added to them, the update).
	stepExec, gradFirstExec, gradAccExec, applyExec *Exec
	// Run on device 0.
	gradExec, logitsX, evalX *Exec
	closed                   bool

	// LoRA (lora.go): specs are the adapter's tensors, trained; frozen the
	// base's (all of them but those the adapter trains in full), which
	// every graph takes after its other inputs, replicated on every device.
	// adapter holds the layout (its values are on the devices), base the
	// caller's host weights (for merged exports), seed the run's dropout
	// key. All nil/zero for full fine-tuning.
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
	params []*tensors.Tensor // weights in the policy's dtype (float32 master weights by default)
	m, v   []*tensors.Tensor // Adam moments; nil before the first step
	comp   []*tensors.Tensor // Kahan compensation of bf16 weights (nil otherwise)
	frozen []*tensors.Tensor // LoRA: the base's tensors (compute dtype), in frozen order
}

// all is the state a step takes and returns: weights, moments and
// compensation.
func (r *replica) all() []*tensors.Tensor {
	return append(append(append(append([]*tensors.Tensor(nil), r.params...), r.m...), r.v...), r.comp...)
}

// nState is how many state tensors per parameter a step takes.
func (m *Model) nState() int {
	if m.kahan {
		return 4
	}
	return 3
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
	if err := m.placeTrained(params.Tensors(), ndev); err != nil {
		return nil, err
	}
	return m, nil
}

// newModel starts a model for cfg on the engine opts chooses, with its
// precision policy and no tensors yet; it returns how many devices it
// trains on.
func newModel(cfg llama.Config, opts Options) (*Model, int, error) {
	cfg = cfg.Normalized()
	if err := cfg.Validate(); err != nil {
		return nil, 0, err
	}
	b, err := engine(opts)
	if err != nil {
		return nil, 0, err
	}
	pol := opts.policy()
	m := &Model{cfg: cfg, opts: opts, backend: b, rope: llama.NewRopeTable(cfg, 0), adamw: optim.DefaultAdamW(),
		pol: pol, cd: gomlxDType(pol.Compute), pd: gomlxDType(pol.Params), od: gomlxDType(pol.Optimizer),
		kahan: pol.Compensated(), ckpt: opts.checkpointing()}
	ndev := b.NumDevices()
	if opts.Devices > 0 {
		if opts.Devices > ndev {
			return nil, 0, fmt.Errorf("gomlx: %d devices requested, the engine has %d", opts.Devices, ndev)
		}
		ndev = opts.Devices
	}
	return m, ndev, nil
}

// placeTrained lays the trained tensors (m.specs' values) out over ndev
// devices in the policy's dtype: whole on one device, sharded over
// several.
func (m *Model) placeTrained(ts []*llama.Tensor, ndev int) error {
	if ndev > 1 {
		var err error
		if m.shard, err = newSharding(ndev, m.specs); err != nil {
			return err
		}
	}
	m.dev = make([]*replica, ndev)
	for d := range m.dev {
		m.dev[d] = &replica{}
	}
	return try(func() error {
		for i, t := range ts {
			ws, err := m.place(i, hostTensor(t.Data, t.Shape, dtypes.Float32))
			if err != nil {
				return err
			}
			for d, r := range m.dev {
				r.params = append(r.params, ws[d])
			}
		}
		if m.kahan {
			return m.splitWeights()
		}
		return nil
	})
}

// splitWeights turns the float32 weights just placed into bf16 weights and
// their Kahan compensation w - bf16(w), on the engine (so with its own
// rounding: Params writes their sum, and this gives them back exactly).
func (m *Model) splitWeights() error {
	P := len(m.specs)
	var pspecs []*distributed.ShardingSpec
	if m.shard != nil {
		pspecs = m.shard.param
	}
	e, err := m.meshExec("split_weights", pspecs, concatSpecs(pspecs, pspecs), func(g *Graph, in []*Node) []*Node {
		out := make([]*Node, 2*P)
		for i, w := range in {
			p := ConvertDType(w, m.pd)
			out[i] = p
			out[P+i] = ConvertDType(Sub(w, ConvertDType(p, dtypes.Float32)), dtypes.BFloat16)
		}
		return out
	})
	if err != nil {
		return err
	}
	defer e.Finalize()
	var args []any
	for d, r := range m.dev {
		don, err := m.donated(d, r.params)
		if err != nil {
			return err
		}
		args = append(args, don...)
	}
	out, err := e.Exec(args...)
	if err != nil {
		return err
	}
	for d, r := range m.dev {
		o := out[d*2*P : (d+1)*2*P]
		r.params, r.comp = o[:P], o[P:]
	}
	return nil
}

// place lays host tensor t of parameter i out over the devices: t itself
// on one device, its shards over several.
func (m *Model) place(i int, t *tensors.Tensor) ([]*tensors.Tensor, error) {
	if m.shard == nil {
		return []*tensors.Tensor{t}, nil
	}
	return m.shard.split(i, t)
}

// gather returns the whole of parameter i's state tensors, one per device
// (device 0's tensor itself on one device, merged shards on the host
// otherwise).
func (m *Model) gather(i int, perDevice func(r *replica) *tensors.Tensor) (*tensors.Tensor, error) {
	if m.shard == nil {
		return perDevice(m.dev[0]), nil
	}
	shards := make([]*tensors.Tensor, len(m.dev))
	for d, r := range m.dev {
		shards[d] = perDevice(r)
	}
	return m.shard.merge(i, shards)
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
		m.stepExec, m.gradFirstExec, m.gradAccExec, m.applyExec, m.gradExec, m.evalX = nil, nil, nil, nil, nil, nil
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
		for _, e := range []*Exec{m.stepExec, m.gradFirstExec, m.gradAccExec, m.applyExec, m.gradExec, m.logitsX, m.evalX} {
			if e != nil {
				e.Finalize()
			}
		}
		for _, r := range m.dev {
			for _, t := range append(r.all(), r.frozen...) {
				t.FinalizeAll()
			}
		}
		finalize(m.full)
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
// and the objective's gradient with respect to the trained tensors (in
// their dtype), recomputing each layer's activations in the backward pass
// when the model checkpoints.
func (m *Model) gradsGraph(params, frozen []*Node, b batchNodes, drop *dropNodes) (obj, ce, count *Node, grads []*Node) {
	if m.ckpt {
		return m.checkpointedGrads(params, frozen, b, drop)
	}
	obj, ce, count = m.graphOf(params, frozen, drop).lossSum(b)
	return obj, ce, count, Gradient(obj, params...)
}

// gradsOutputs is the gradient graph's body over inputs [P trained][batch
// and dropout][frozen]: the gradients (float32), then objective, count and
// cross-entropy sums.
func (m *Model) gradsOutputs(in []*Node, P int) []*Node {
	nb := m.numTrainInputs()
	bn, drop := asBatch(in[P:P+numBatchInputs]), m.dropNodesOf(in[P+numBatchInputs:P+nb])
	obj, ce, count, grads := m.gradsGraph(in[:P], in[P+nb:], bn, drop)
	for i, g := range grads {
		grads[i] = ConvertDType(g, dtypes.Float32)
	}
	return append(grads, obj, count, ce)
}

// applyGraph is the AdamW update of grads (sums over count tokens, any
// float dtype), computed in float32 whatever the state's dtypes: the new
// weights, moments and (bf16 weights) Kahan compensation, and the
// gradient's global norm.
func (m *Model) applyGraph(params, mom, vel, comp, grads []*Node, count, lr, bc1, bc2 *Node) (newP, newM, newV, newC []*Node, norm *Node) {
	o := m.adamw
	g0 := count.Graph()
	f32 := func(x *Node) *Node {
		if x.DType() != dtypes.Float32 {
			return ConvertDType(x, dtypes.Float32)
		}
		return x
	}
	inv := Inverse(Max(count, ScalarOne(g0, dtypes.Float32)))
	// The global norm of the mean gradient, one tensor at a time.
	var sq *Node
	for _, g := range grads {
		s := ReduceAllSum(Square(f32(g)))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	norm = Mul(Sqrt(sq), inv)
	// Mean and clipping fold into one factor (optax.clip_by_global_norm:
	// keep when norm < max, else g/norm·max), so each tensor's update
	// below runs on its own and no second copy of the gradients exists.
	scale := inv
	if o.MaxGradNorm > 0 {
		keep := LessThan(norm, Scalar(g0, dtypes.Float32, o.MaxGradNorm))
		scale = Where(keep, inv, Div(MulScalar(inv, o.MaxGradNorm), norm))
	}
	for i, gr := range grads {
		g := Mul(f32(gr), scale)
		mi := Add(MulScalar(f32(mom[i]), o.Beta1), MulScalar(g, 1-o.Beta1))
		vi := Add(MulScalar(f32(vel[i]), o.Beta2), MulScalar(Square(g), 1-o.Beta2))
		mhat := Div(mi, bc1)
		vhat := Div(vi, bc2)
		u := Div(mhat, AddScalar(Sqrt(vhat), o.Epsilon))
		p32 := f32(params[i])
		if m.specs[i].decay && o.WeightDecay != 0 {
			u = Add(u, MulScalar(p32, o.WeightDecay))
		}
		step := Neg(Mul(u, lr))
		if m.kahan {
			// Kahan summation: add back what earlier updates lost to
			// rounding, round, and keep what this one loses.
			y := Add(step, f32(comp[i]))
			t := Add(p32, y)
			p := ConvertDType(t, m.pd)
			newP = append(newP, p)
			newC = append(newC, ConvertDType(Sub(t, f32(p)), dtypes.BFloat16))
		} else {
			newP = append(newP, ConvertDType(Add(p32, step), m.pd))
		}
		newM = append(newM, ConvertDType(mi, m.od))
		newV = append(newV, ConvertDType(vi, m.od))
	}
	return newP, newM, newV, newC, norm
}

// exec builds an Exec running fn on device 0 (onMesh false), or a training
// graph over every device (meshExec with no sharding).
func (m *Model) exec(name string, onMesh bool, fn func(g *Graph, in []*Node) []*Node) (*Exec, error) {
	if onMesh && m.shard != nil {
		return nil, fmt.Errorf("gomlx: graph %s over a sharded model needs its shardings (meshExec)", name)
	}
	return m.meshExec(name, nil, nil, fn)
}

// meshExec builds an Exec running fn on one device or, on a sharded model,
// over every device with GoMLX's AutoSharding: in and out give each
// input's and output's sharding (nil: replicated), and the inputs are
// passed shard by shard, device-major.
func (m *Model) meshExec(name string, in, out []*distributed.ShardingSpec, fn func(g *Graph, in []*Node) []*Node) (*Exec, error) {
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
			if m.shard != nil && (in != nil || out != nil) {
				e = e.AutoSharding(m.shard.mesh).WithInputShardingSpecs(in...).WithOutputShardingSpecs(out...)
			}
		}
		return err
	})
	return e, err
}

// split divides b's rows among the devices (AutoSharding's batch shards).
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

// Sharding specs of the graphs' inputs and outputs (nil on one device).
func (m *Model) stateSpecs() []*distributed.ShardingSpec {
	if m.shard == nil {
		return nil
	}
	var out []*distributed.ShardingSpec
	for range m.nState() {
		out = append(out, m.shard.param...)
	}
	return out
}

// batchSpecs are a training pass's batch inputs (split by rows) and its
// dropout inputs (replicated).
func (m *Model) batchSpecs() []*distributed.ShardingSpec {
	if m.shard == nil {
		return nil
	}
	out := make([]*distributed.ShardingSpec, numBatchInputs, m.numTrainInputs())
	for i := range out {
		out[i] = m.shard.batch
	}
	return replicated(out, m.numDrop())
}

// frozenSpecs are the frozen base's inputs (replicated).
func (m *Model) frozenSpecs() []*distributed.ShardingSpec {
	if m.shard == nil {
		return nil
	}
	return make([]*distributed.ShardingSpec, len(m.frozen))
}

// replicated returns n replicated specs (nil) after specs.
func replicated(specs []*distributed.ShardingSpec, n int) []*distributed.ShardingSpec {
	return append(specs, make([]*distributed.ShardingSpec, n)...)
}

func concatSpecs(parts ...[]*distributed.ShardingSpec) []*distributed.ShardingSpec {
	var out []*distributed.ShardingSpec
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
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
	if m.dev[0].m == nil {
		err := try(func() error {
			for i, s := range m.specs {
				zeros := tensors.FromShape(shapes.Make(m.od, s.shape...))
				ms, err := m.place(i, zeros)
				if err != nil {
					return err
				}
				vs, err := m.place(i, tensors.FromShape(shapes.Make(m.od, s.shape...)))
				if err != nil {
					return err
				}
				for d, r := range m.dev {
					r.m, r.v = append(r.m, ms[d]), append(r.v, vs[d])
				}
			}
			return nil
		})
		if err != nil {
			return llama.LossResult{}, info, err
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
	var outs []*tensors.Tensor // device-major: per device nState·P+4
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
	ns := m.nState()
	per := ns*P + 4
	finalize(m.full)
	m.full = nil
	for d, r := range m.dev {
		o := outs[d*per : (d+1)*per]
		r.params, r.m, r.v = o[:P], o[P:2*P], o[2*P:3*P]
		if m.kahan {
			r.comp = o[3*P : 4*P]
		}
		if d > 0 {
			for _, t := range o[ns*P:] {
				t.FinalizeAll()
			}
		}
	}
	m.steps++
	var res llama.LossResult
	err = try(func() error {
		o := outs[ns*P:]
		obj := float64(tensors.ToScalar[float32](o[0]))
		cnt := float64(tensors.ToScalar[float32](o[1]))
		ce := float64(tensors.ToScalar[float32](o[3]))
		res = llama.LossResult{Loss: ce, ZLoss: obj - ce, Count: int(cnt)}
		info.GradNorm = float64(tensors.ToScalar[float32](o[2]))
		return nil
	})
	info.Clipped = m.adamw.MaxGradNorm > 0 && !(info.GradNorm < m.adamw.MaxGradNorm)
	return res, info, err
}

// donated returns ts (device d's) donated to the next execution.
func (m *Model) donated(d int, ts []*tensors.Tensor) ([]any, error) {
	var out []any
	for _, t := range ts {
		dt, err := DonateTensorBuffer(t, m.backend, gobackends.DeviceNum(d))
		if err != nil {
			return nil, err
		}
		out = append(out, dt)
	}
	return out, nil
}

// splitState cuts a step graph's state inputs into weights, moments and
// compensation.
func (m *Model) splitState(in []*Node) (params, mom, vel, comp []*Node) {
	P := len(m.specs)
	params, mom, vel = in[:P], in[P:2*P], in[2*P:3*P]
	if m.kahan {
		comp = in[3*P : 4*P]
	}
	return
}

// stepOutputs are a step graph's outputs: the new state, then the
// objective, Σ mask, the gradient norm and the cross-entropy.
func stepOutputs(np, nm, nv, nc []*Node, obj, count, norm, ce *Node) []*Node {
	out := append(append(append(append([]*Node(nil), np...), nm...), nv...), nc...)
	return append(out, obj, count, norm, ce)
}

// fusedStep runs gradients and the update as one graph; inputs holds each
// device's batch inputs.
func (m *Model) fusedStep(inputs [][]any, scalars func() []any) ([]*tensors.Tensor, error) {
	ns := m.nState() * len(m.specs)
	if m.stepExec == nil {
		nb := m.numTrainInputs()
		in := concatSpecs(replicated(concatSpecs(m.stateSpecs(), m.batchSpecs()), 3), m.frozenSpecs())
		out := replicated(m.stateSpecs(), 4)
		e, err := m.meshExec("train_step", in, out, func(g *Graph, in []*Node) []*Node {
			params, mom, vel, comp := m.splitState(in[:ns])
			bn := asBatch(in[ns : ns+numBatchInputs])
			drop := m.dropNodesOf(in[ns+numBatchInputs : ns+nb])
			sc, frozen := in[ns+nb:ns+nb+3], in[ns+nb+3:]
			obj, ce, count, grads := m.gradsGraph(params, frozen, bn, drop)
			np, nm, nv, nc, norm := m.applyGraph(params, mom, vel, comp, grads, count, sc[0], sc[1], sc[2])
			return stepOutputs(np, nm, nv, nc, obj, count, norm, ce)
		})
		if err != nil {
			return nil, err
		}
		m.stepExec = e
	}
	var args []any
	for d, r := range m.dev {
		st, err := m.donated(d, r.all())
		if err != nil {
			return nil, err
		}
		args = append(append(append(append(args, st...), inputs[d]...), scalars()...), m.frozenArgs(d)...)
	}
	return m.stepExec.Exec(args...)
}

// accumulatedStep sums gradients over micro-batches into a float32 buffer
// (each later micro-batch's added in the graph that computes them, the sum
// donated, so one micro-batch's gradients never exist beside it whole),
// then applies the update. inputs is [micro-batch][device].
func (m *Model) accumulatedStep(ctx context.Context, inputs [][][]any, scalars func() []any) ([]*tensors.Tensor, error) {
	P := len(m.specs)
	ns := m.nState() * P
	var pspecs []*distributed.ShardingSpec
	if m.shard != nil {
		pspecs = m.shard.param
	}
	if m.gradFirstExec == nil {
		in := concatSpecs(pspecs, m.batchSpecs(), m.frozenSpecs())
		e, err := m.meshExec("grads", in, replicated(pspecs, 3), func(g *Graph, in []*Node) []*Node {
			return m.gradsOutputs(in, P)
		})
		if err != nil {
			return nil, err
		}
		m.gradFirstExec = e
	}
	if m.gradAccExec == nil {
		in := concatSpecs(pspecs, m.batchSpecs(), m.frozenSpecs(), replicated(pspecs, 3))
		e, err := m.meshExec("grads_accumulate", in, replicated(pspecs, 3), func(g *Graph, in []*Node) []*Node {
			k := len(in) - P - 3 // the accumulated sums come last
			acc, sums := in[k:k+P], in[k+P:]
			cur := m.gradsOutputs(in[:k], P)
			out := make([]*Node, 0, P+3)
			for i, gr := range cur[:P] {
				out = append(out, Add(acc[i], gr))
			}
			return append(out, Add(sums[0], cur[P]), Add(sums[1], cur[P+1]), Add(sums[2], cur[P+2]))
		})
		if err != nil {
			return nil, err
		}
		m.gradAccExec = e
	}
	if m.applyExec == nil {
		in := replicated(concatSpecs(m.stateSpecs(), pspecs), 6)
		e, err := m.meshExec("apply", in, replicated(m.stateSpecs(), 4), func(g *Graph, in []*Node) []*Node {
			params, mom, vel, comp := m.splitState(in[:ns])
			grads := in[ns : ns+P]
			sc := in[ns+P:] // objective, count, cross-entropy, lr, bc1, bc2
			np, nm, nv, nc, norm := m.applyGraph(params, mom, vel, comp, grads, sc[1], sc[3], sc[4], sc[5])
			return stepOutputs(np, nm, nv, nc, sc[0], sc[1], norm, sc[2])
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
			finalize(acc)
			return nil, err
		}
		var args []any
		for d, r := range m.dev {
			for _, p := range r.params {
				args = append(args, p)
			}
			args = append(append(args, devInputs[d]...), m.frozenArgs(d)...)
			if acc != nil {
				don, err := m.donated(d, acc[d*per:(d+1)*per])
				if err != nil {
					return nil, err
				}
				args = append(args, don...)
			}
		}
		e := m.gradFirstExec
		if acc != nil {
			e = m.gradAccExec
		}
		out, err := e.Exec(args...)
		if err != nil {
			return nil, err
		}
		acc = out
	}
	var args []any
	for d := range n {
		st, err := m.donated(d, m.dev[d].all())
		if err != nil {
			return nil, err
		}
		args = append(args, st...)
		don, err := m.donated(d, acc[d*per:(d+1)*per])
		if err != nil {
			return nil, err
		}
		args = append(append(args, don...), scalars()...)
	}
	return m.applyExec.Exec(args...)
}

// Grads returns b's loss sums and the gradient of the objective's mean
// over b's trained tokens (cross-entropy plus z-loss; the gradient a step
// on b alone would clip and apply), changing nothing.
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
		args, err := m.paramArgs()
		if err != nil {
			return err
		}
		out, err := m.gradExec.Exec(append(append(args, in...), m.frozenArgs(0)...)...)
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

// paramArgs returns the whole weights on device 0 as execution arguments:
// device 0's own on one device, else gathered from the shards (cached
// until the next update).
func (m *Model) paramArgs() ([]any, error) {
	ts := m.dev[0].params
	if m.shard != nil {
		if m.full == nil {
			for i := range m.specs {
				t, err := m.gather(i, func(r *replica) *tensors.Tensor { return r.params[i] })
				if err != nil {
					finalize(m.full)
					m.full = nil
					return nil, err
				}
				m.full = append(m.full, t)
			}
		}
		ts = m.full
	}
	args := make([]any, 0, len(m.specs)+numBatchInputs)
	for _, p := range ts {
		args = append(args, p)
	}
	return args, nil
}

func scalar(t *tensors.Tensor) float64 { return float64(tensors.ToScalar[float32](t)) }

func finalize(ts []*tensors.Tensor) {
	for _, t := range ts {
		t.FinalizeAll()
	}
}

// Params copies the weights into float32 llama.Params (for checkpoints
// and exports), gathered from their shards. bf16 weights are written with
// their Kahan compensation added: the float32 value the updates have
// reached, from which New restores both exactly.
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
	return p, m.copyOut(p.Tensors())
}

// copyOut copies the trained tensors' float32 values into dst (specs
// order), gathered from their shards; bf16 weights with their Kahan
// compensation added.
func (m *Model) copyOut(dst []*llama.Tensor) error {
	return try(func() error {
		for i, t := range dst {
			w, err := m.gatherFloat32(i, func(r *replica) *tensors.Tensor { return r.params[i] })
			if err != nil {
				return err
			}
			copy(t.Data, w)
			if m.kahan {
				c, err := m.gatherFloat32(i, func(r *replica) *tensors.Tensor { return r.comp[i] })
				if err != nil {
					return err
				}
				for j, v := range c {
					t.Data[j] += v
				}
			}
		}
		return nil
	})
}

// gatherFloat32 returns parameter i's whole state tensor as float32 values.
func (m *Model) gatherFloat32(i int, perDevice func(r *replica) *tensors.Tensor) ([]float32, error) {
	t, err := m.gather(i, perDevice)
	if err != nil {
		return nil, err
	}
	if m.shard != nil {
		defer t.FinalizeAll()
	}
	return toFloat32(t)
}

// OptimizerState returns AdamW's state in backends/model/optim's form
// (float32), tensors in llama.Params' order (nil before the first update).
func (m *Model) OptimizerState() (*optim.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	if m.dev[0].m == nil {
		return nil, nil
	}
	st := &optim.State{Step: int64(m.steps)}
	for i, s := range m.specs {
		st.Names = append(st.Names, s.name)
		var mi, vi []float32
		err := try(func() error {
			var err error
			if mi, err = m.gatherFloat32(i, func(r *replica) *tensors.Tensor { return r.m[i] }); err != nil {
				return err
			}
			vi, err = m.gatherFloat32(i, func(r *replica) *tensors.Tensor { return r.v[i] })
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
// either engine, any device count); nil resets it.
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
	}
	if st != nil {
		err := try(func() error {
			for i, s := range m.specs {
				ms, err := m.place(i, hostTensor(st.M[i], s.shape, m.od))
				if err != nil {
					return err
				}
				vs, err := m.place(i, hostTensor(st.V[i], s.shape, m.od))
				if err != nil {
					return err
				}
				for d, r := range m.dev {
					r.m, r.v = append(r.m, ms[d]), append(r.v, vs[d])
				}
			}
			return nil
		})
		if err != nil {
			return err
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
		args, err := m.paramArgs()
		if err != nil {
			return err
		}
		out, err := m.evalX.Exec(append(append(args, in...), m.frozenArgs(0)...)...)
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
