package gomlx

import (
	"errors"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/model/safetensors"
)

// LoRA on GoMLX: the trained tensors (Model.specs, with their AdamW
// moments, donated to each step) are the adapter's; the base's tensors are
// further inputs of every graph (Model.frozen), never differentiated,
// donated or updated, and held in the compute dtype (bfloat16 on
// accelerators: half the memory of the float32 master weights a full
// fine-tune keeps). An adapted projection adds s·B·A·dropout(x), computed
// in float32 as PEFT does for float32 adapters; the dropout masks are
// backends/model/lora's hash, computed in the graph from two uint32 inputs
// (the step's key and the pass's first token), so they are the cpu
// engine's masks and nothing but two scalars moves per pass.

// loraPair is an adapted projection's factors in a graph.
type loraPair struct {
	a, b  *Node // [r, in], [out, r] in the policy's weight dtype
	layer int
	kind  lora.Kind
}

// dropNodes are a training pass's dropout inputs.
type dropNodes struct {
	step, token0 *Node // uint32 scalars: lora.StepKey, the first token's index in the step's batch
	rate         float64
}

// addLoRA adds projection name's low-rank update to its output y, given
// its input x.
func (m *modelGraph) addLoRA(y, x *Node, name string) *Node {
	p, ok := m.lora[name]
	if !ok {
		return y
	}
	xd := ConvertDType(x, dtypes.Float32)
	if m.drop != nil {
		xd = m.dropout(xd, p.layer, p.kind)
	}
	// The factors are float32, or bf16 under the lean policy (with their
	// Kahan compensation outside the graph): the update is float32 either way.
	a, b := asFloat32(p.a), asFloat32(p.b)
	u := dotGeneral(xd, []int{xd.Rank() - 1}, nil, a, []int{1}, nil) // [..., r]
	d := dotGeneral(u, []int{u.Rank() - 1}, nil, b, []int{1}, nil)   // [..., out]
	return Add(y, ConvertDType(MulScalar(d, m.loraScale), y.DType()))
}

func asFloat32(x *Node) *Node {
	if x.DType() != dtypes.Float32 {
		return ConvertDType(x, dtypes.Float32)
	}
	return x
}

// dropout zeroes x's elements [..., in] that lora's mask drops for
// projection (layer, k) and scales the others by 1/(1−rate).
func (m *modelGraph) dropout(x *Node, layer int, k lora.Kind) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	in := dims[len(dims)-1]
	n := x.Shape().Size() / in
	tok := Add(Iota(g, shapes.Make(dtypes.Uint32, n), 0), BroadcastToDims(m.drop.token0, n))
	km := mix32(BitwiseXor(m.drop.step, Const(g, lora.ModuleSalt(layer, k))))
	kt := mix32(BitwiseXor(BroadcastToDims(km, n), mix32(tok)))
	col := BroadcastToDims(Reshape(Iota(g, shapes.Make(dtypes.Uint32, in), 0), 1, in), n, in)
	h := mix32(Add(BroadcastToDims(Reshape(kt, n, 1), n, in), col))
	keep := GreaterOrEqual(h, BroadcastToDims(Const(g, lora.Threshold(m.drop.rate)), n, in))
	xs := Reshape(x, n, in)
	kept := Mul(xs, BroadcastToDims(Const(g, lora.KeepScale(m.drop.rate)), n, in))
	return Reshape(Where(keep, kept, ZerosLike(xs)), dims...)
}

// mix32 is lora.Mix32 on a uint32 node: shifts are divisions by powers of
// two, and multiplication wraps.
func mix32(x *Node) *Node {
	c := func(v uint32) *Node {
		k := Const(x.Graph(), v)
		if x.Rank() == 0 {
			return k
		}
		return BroadcastToDims(k, x.Shape().Dimensions...)
	}
	x = BitwiseXor(x, Div(x, c(1<<16)))
	x = Mul(x, c(0x7feb352d))
	x = BitwiseXor(x, Div(x, c(1<<15)))
	x = Mul(x, c(0x846ca68b))
	return BitwiseXor(x, Div(x, c(1<<16)))
}

// NewLoRA places a model that trains adapter a over the frozen base on the
// engine opts chooses: a's values are the starting point (a is not kept),
// seed keys the dropout masks (lora.StepKey). The optimizer starts at
// optim.DefaultAdamW without z-loss (SetAdamW).
func NewLoRA(base *llama.Params, a *lora.Adapter, opts Options, seed int64) (*Model, error) {
	if err := a.Check(base.Config); err != nil {
		return nil, err
	}
	m, ndev, err := newModel(base.Config, opts)
	if err != nil {
		return nil, err
	}
	m.adapter, m.base, m.seed = a.ZerosLike(), base, seed
	for _, t := range a.Tensors() {
		m.specs = append(m.specs, paramSpec{name: t.Name, shape: t.Shape, decay: lora.Decays(t.Name, optim.LevanterWeightDecay)})
	}
	replaced := map[string]bool{}
	for _, t := range a.Full {
		replaced[lora.BaseName(t.Name)] = true
	}
	var frozen []*llama.Tensor
	for _, t := range base.Tensors() {
		if !replaced[t.Name] {
			m.frozen = append(m.frozen, paramSpec{name: t.Name, shape: t.Shape})
			frozen = append(frozen, t)
		}
	}
	if err := m.placeTrained(a.Tensors(), ndev); err != nil {
		return nil, err
	}
	for _, r := range m.dev {
		for _, t := range frozen {
			r.frozen = append(r.frozen, m.frozenTensor(t))
		}
	}
	return m, nil
}

// frozenTensor is a base tensor as the device holds it: in the compute
// dtype (bfloat16 rounded to nearest even, as XLA converts).
func (m *Model) frozenTensor(t *llama.Tensor) *tensors.Tensor {
	if m.cd != dtypes.BFloat16 {
		return tensors.FromFlatDataAndDimensions(append([]float32(nil), t.Data...), t.Shape...)
	}
	h := make([]bfloat16.BFloat16, len(t.Data))
	for i, v := range t.Data {
		h[i] = bfloat16.FromBits(safetensors.F32ToBF16(v))
	}
	return tensors.FromFlatDataAndDimensions(h, t.Shape...)
}

// numDrop is how many dropout inputs a training graph takes (0 or 2).
func (m *Model) numDrop() int {
	if m.adapter != nil && m.adapter.Spec.Dropout > 0 {
		return 2
	}
	return 0
}

// dropInputs are the dropout inputs of a training pass of update number
// step whose first row is row0 of the step's batch of rows of t tokens.
func (m *Model) dropInputs(step, row0, t int) []any {
	if m.numDrop() == 0 {
		return nil
	}
	return []any{tensors.FromValue(lora.StepKey(m.seed, int64(step))), tensors.FromValue(uint32(row0 * t))}
}

// dropNodesOf reads a graph's dropout inputs (nil when it takes none).
func (m *Model) dropNodesOf(in []*Node) *dropNodes {
	if len(in) == 0 {
		return nil
	}
	return &dropNodes{step: in[0], token0: in[1], rate: m.adapter.Spec.Dropout}
}

// frozenArgs are device d's frozen base tensors as execution arguments.
func (m *Model) frozenArgs(d int) []any {
	out := make([]any, len(m.dev[d].frozen))
	for i, t := range m.dev[d].frozen {
		out[i] = t
	}
	return out
}

// Adapter returns a copy of the adapter being trained (nil for full
// fine-tuning).
func (m *Model) Adapter() (*lora.Adapter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	if m.adapter == nil {
		return nil, nil
	}
	a := m.adapter.ZerosLike()
	if err := m.copyOut(a.Tensors()); err != nil {
		return nil, err
	}
	return a, nil
}

// mergedParams is the base with the current adapter merged (host).
func (m *Model) mergedParams() (*llama.Params, error) {
	a := m.adapter.ZerosLike()
	if err := m.copyOut(a.Tensors()); err != nil {
		return nil, err
	}
	return a.Merge(m.base)
}

// loraGraph adds the adapter's projections to a graph over the trained
// tensors' nodes.
func (m *Model) loraGraph(g *modelGraph, trained []*Node) {
	if m.adapter == nil {
		return
	}
	g.lora = map[string]loraPair{}
	g.loraScale = m.adapter.Scale()
	idx := map[string]int{}
	for i, s := range m.specs {
		idx[s.name] = i
	}
	for _, mod := range m.adapter.Modules {
		g.lora[mod.Name] = loraPair{a: trained[idx[mod.A.Name]], b: trained[idx[mod.B.Name]], layer: mod.Layer, kind: mod.Kind}
	}
	for _, t := range m.adapter.Full {
		g.params[lora.BaseName(t.Name)] = trained[idx[t.Name]]
	}
}

var errLoRADecoder = errors.New("gomlx: decoding from a model that trains a LoRA adapter: merge the adapter (Model.Params) and decode the merged model")
