package gomlx

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/marin-go/marin/backends/model/llama"
)

// The graph side of the Llama model. Every op here is one the pure-Go engine
// implements and differentiates: no Slice (its gradient needs Pad), Pad,
// Reverse, DynamicSlice or DynamicUpdateSlice, no Rsqrt (no gradient);
// matmuls go through dotGeneral for a matmul-shaped gradient.

// batchNodes are a batch's graph inputs; all are [B, S].
type batchNodes struct {
	tokens  *Node // int32 token ids
	targets *Node // int32: tokens shifted left (the next token); 0 past the end
	mask    *Node // float32 loss weights (already shifted: mask[t] weighs predicting targets[t])
	segs    *Node // int32 segment ids: attention stays inside a segment
	cos     *Node // float32 [B, S, head_dim]: RoPE cos(pos·inv_freq), halves repeated
	sin     *Node // float32 [B, S, head_dim]: RoPE sin, first half negated (rotate_half's sign)
}

// modelGraph builds the forward pass over named parameter nodes.
type modelGraph struct {
	cfg    llama.Config
	params map[string]*Node
	cd     dtypes.DType // compute dtype: Float32, or BFloat16 with f32 master weights
	zLoss  float64      // z-loss weight (PaLM, Levanter's z_loss_weight); 0: none

	// LoRA (lora.go): the adapted projections by module name, the update's
	// scale, and the dropout of a training pass (nil: none).
	lora      map[string]loraPair
	loraScale float64
	drop      *dropNodes
}

func (m *modelGraph) w(name string) *Node {
	p, ok := m.params[name]
	if !ok {
		panic("gomlx: missing parameter " + name)
	}
	if p.DType() != m.cd {
		return ConvertDType(p, m.cd)
	}
	return p
}

func (m *modelGraph) has(name string) bool { _, ok := m.params[name]; return ok }

// linear is x[..., in] · W[out, in]ᵀ (+ b), HF's nn.Linear, plus the
// module's LoRA update when it is adapted.
func (m *modelGraph) linear(x *Node, name string) *Node {
	w := m.w(name + ".weight")
	y := dotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
	if m.has(name + ".bias") {
		y = Add(y, bcastTo(m.w(name+".bias"), y.Shape().Dimensions...))
	}
	return m.addLoRA(y, x, name)
}

// rmsNorm is HF's LlamaRMSNorm: computed in float32, x / sqrt(mean(x²)+eps) · w.
func (m *modelGraph) rmsNorm(x *Node, name string) *Node {
	x32 := ConvertDType(x, dtypes.Float32)
	ms := ReduceAndKeep(Square(x32), ReduceMean, -1)
	normed := Div(x32, Sqrt(AddScalar(ms, m.cfg.RMSNormEps)))
	normed = ConvertDType(normed, m.cd)
	return Mul(bcastTo(m.w(name), normed.Shape().Dimensions...), normed)
}

// rope applies rotary embeddings to x [B, S, H, Dh] given cos and sin
// [B, S, Dh] (see Model.ropeInputs): x·cos + rotate_half(x)·sin,
// rotate_half swapping the halves through a 2×2 permutation matmul (exact).
func (m *modelGraph) rope(x, cos, sin *Node) *Node {
	dims := x.Shape().Dimensions
	B, S, H, Dh := dims[0], dims[1], dims[2], dims[3]
	halves := Reshape(x, B, S, H, 2, Dh/2)
	swap := Const(x.Graph(), [][]float32{{0, 1}, {1, 0}})
	swapped := dotGeneral(halves, []int{3}, nil, ConvertDType(swap, m.cd), []int{0}, nil) // [B,S,H,Dh/2,2]
	swapped = Reshape(TransposeAllAxes(swapped, 0, 1, 2, 4, 3), B, S, H, Dh)
	c := BroadcastToDims(Reshape(ConvertDType(cos, m.cd), B, S, 1, Dh), B, S, H, Dh)
	s := BroadcastToDims(Reshape(ConvertDType(sin, m.cd), B, S, 1, Dh), B, S, H, Dh)
	return Add(Mul(x, c), Mul(swapped, s))
}

// qkv projects x [B, S, D] to RoPE-rotated queries [B, S, H, Dh] and keys
// and values [B, S, KV, Dh] of layer prefix p.
func (m *modelGraph) qkv(x *Node, p string, cos, sin *Node) (q, k, v *Node) {
	c := m.cfg
	dims := x.Shape().Dimensions
	B, S := dims[0], dims[1]
	H, KV, Dh := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	q = m.rope(Reshape(m.linear(x, p+"q_proj"), B, S, H, Dh), cos, sin)
	k = m.rope(Reshape(m.linear(x, p+"k_proj"), B, S, KV, Dh), cos, sin)
	v = Reshape(m.linear(x, p+"v_proj"), B, S, KV, Dh)
	return q, k, v
}

// attend is grouped-query attention of q [B, Sq, H, Dh] over k, v [B, Sk,
// KV, Dh] where allowed [B, Sq, Sk] says which keys each query sees; it
// returns [B, Sq, H·Dh].
func (m *modelGraph) attend(q, k, v, allowed *Node) *Node {
	c := m.cfg
	B, Sq, Sk := q.Shape().Dimensions[0], q.Shape().Dimensions[1], k.Shape().Dimensions[1]
	H, KV, Dh := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	R := H / KV
	// q head h reads kv head h/R (HF's repeat_kv).
	q5 := Reshape(q, B, Sq, KV, R, Dh)
	scores := dotGeneral(q5, []int{4}, []int{0, 2}, k, []int{3}, []int{0, 2}) // [B, KV, Sq, R, Sk]
	scores = ConvertDType(scores, dtypes.Float32)
	scores = MulScalar(scores, 1/math.Sqrt(float64(Dh)))
	mask := BroadcastToDims(Reshape(allowed, B, 1, Sq, 1, Sk), B, KV, Sq, R, Sk)
	scores = Where(mask, scores, BroadcastToDims(Scalar(q.Graph(), dtypes.Float32, math.Inf(-1)), scores.Shape().Dimensions...))
	probs := softmax(scores)
	out := dotGeneral(ConvertDType(probs, m.cd), []int{4}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, KV, Sq, R, Dh]
	return Reshape(TransposeAllAxes(out, 0, 2, 1, 3, 4), B, Sq, H*Dh)
}

// attention is grouped-query causal attention restricted to each segment.
func (m *modelGraph) attention(x *Node, p string, b batchNodes, allowed *Node) *Node {
	q, k, v := m.qkv(x, p, b.cos, b.sin)
	return m.linear(m.attend(q, k, v, allowed), p+"o_proj")
}

// softmax over the last axis; every row has at least its own position.
func softmax(x *Node) *Node {
	mx := StopGradient(ReduceAndKeep(x, ReduceMax, -1))
	e := Exp(Sub(x, BroadcastToDims(mx, x.Shape().Dimensions...)))
	return Div(e, BroadcastToDims(ReduceAndKeep(e, ReduceSum, -1), x.Shape().Dimensions...))
}

func (m *modelGraph) mlp(x *Node, p string) *Node {
	gate := m.linear(x, p+"gate_proj")
	up := m.linear(x, p+"up_proj")
	return m.linear(Mul(Mul(gate, Sigmoid(gate)), up), p+"down_proj")
}

// allowedMask is [B, Sq, Sk]: key k is visible from query q when k ≤ q and
// both are in the same segment.
func allowedMask(segs *Node) *Node {
	dims := segs.Shape().Dimensions
	B, S := dims[0], dims[1]
	g := segs.Graph()
	qi := Iota(g, shapes.Make(dtypes.Int32, S, S), 0)
	ki := Iota(g, shapes.Make(dtypes.Int32, S, S), 1)
	causal := BroadcastToDims(Reshape(GreaterOrEqual(qi, ki), 1, S, S), B, S, S)
	sq := BroadcastToDims(Reshape(segs, B, S, 1), B, S, S)
	sk := BroadcastToDims(Reshape(segs, B, 1, S), B, S, S)
	return LogicalAnd(causal, Equal(sq, sk))
}

// hidden returns the final normed hidden states [B, S, D] (compute dtype).
func (m *modelGraph) hidden(b batchNodes) *Node {
	allowed := allowedMask(b.segs)
	h := m.layers(b.tokens, func(_ int, x *Node, p string) *Node { return m.attention(x, p, b, allowed) })
	return m.rmsNorm(h, "model.norm.weight")
}

// layers runs the decoder layers over tokens [B, S] and returns the last
// layer's output [B, S, D] (before the final norm); attn(l, x, p) is layer
// l's attention block (o_proj included) on its normed input x, p its
// parameters' prefix.
func (m *modelGraph) layers(tokens *Node, attn func(l int, x *Node, p string) *Node) *Node {
	h := m.embed(tokens)
	for l := range m.cfg.NumHiddenLayers {
		h = m.block(l, h, attn)
	}
	return h
}

// embed looks tokens [B, S] up: [B, S, D] in the compute dtype.
func (m *modelGraph) embed(tokens *Node) *Node {
	dims := tokens.Shape().Dimensions
	B, S := dims[0], dims[1]
	emb := m.params["model.embed_tokens.weight"]
	h := Gather(emb, Reshape(tokens, B, S, 1)) // [B, S, D]
	return ConvertDType(h, m.cd)
}

// block is decoder layer l on its input h [B, S, D].
func (m *modelGraph) block(l int, h *Node, attn func(l int, x *Node, p string) *Node) *Node {
	p := "model.layers." + itoa(l) + "."
	h = Add(h, attn(l, m.rmsNorm(h, p+"input_layernorm.weight"), p+"self_attn."))
	return Add(h, m.mlp(m.rmsNorm(h, p+"post_attention_layernorm.weight"), p+"mlp."))
}

// logits returns float32 logits for h [..., D].
func (m *modelGraph) logits(h *Node) *Node {
	head := "lm_head.weight"
	if m.cfg.TieWordEmbeddings {
		head = "model.embed_tokens.weight"
	}
	w := m.w(head)
	return ConvertDType(dotGeneral(h, []int{h.Rank() - 1}, nil, w, []int{1}, nil), dtypes.Float32)
}

// lossSum returns the objective Σ mask·(nll + zLoss·logsumexp²), the
// cross-entropy Σ mask·nll alone, and Σ mask.
func (m *modelGraph) lossSum(b batchNodes) (objective, ce, count *Node) {
	return m.lossFrom(m.hidden(b), b)
}

// lossFrom is lossSum given the final normed hidden states [B, S, D].
func (m *modelGraph) lossFrom(hidden *Node, b batchNodes) (objective, ce, count *Node) {
	dims := b.tokens.Shape().Dimensions
	N := dims[0] * dims[1]
	V := m.cfg.VocabSize
	logits := Reshape(m.logits(hidden), N, V)
	mx := StopGradient(ReduceAndKeep(logits, ReduceMax, -1))
	lse := Add(Log(ReduceSum(Exp(Sub(logits, BroadcastToDims(mx, N, V))), -1)), Reshape(mx, N))
	rows := Iota(logits.Graph(), shapes.Make(dtypes.Int32, N, 1), 0)
	idx := Concatenate([]*Node{rows, Reshape(b.targets, N, 1)}, 1)
	picked := Gather(logits, idx) // [N]
	mask := Reshape(b.mask, N)
	ce = ReduceAllSum(Mul(mask, Sub(lse, picked)))
	objective = ce
	if m.zLoss != 0 {
		objective = Add(ce, MulScalar(ReduceAllSum(Mul(mask, Square(lse))), m.zLoss))
	}
	return objective, ce, ReduceAllSum(mask)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var buf [20]byte
	n := len(buf)
	for i > 0 {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
	}
	return string(buf[n:])
}

// bcastTo broadcasts x to dims, aligning x's axes with the trailing ones
// (numpy's rule; GoMLX's BroadcastToDims aligns the leading ones).
func bcastTo(x *Node, dims ...int) *Node {
	if x.Rank() < len(dims) {
		lead := make([]int, len(dims)-x.Rank(), len(dims))
		for i := range lead {
			lead[i] = 1
		}
		x = Reshape(x, append(lead, x.Shape().Dimensions...)...)
	}
	return BroadcastToDims(x, dims...)
}
