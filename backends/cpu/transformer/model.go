package transformer

import (
	"fmt"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
)

// Model runs the forward and backward passes of a Llama-family decoder over
// its Params. It keeps activation buffers between calls (sized for the last
// batch shape), so a Model is not safe for concurrent use; Params may be
// shared read-only between Models.
type Model struct {
	Config llama.Config // normalized
	Params *llama.Params

	rope *llama.RopeTable
	ws   *workspace

	adapter *lora.Adapter // LoRA updates added to the projections (SetAdapter)
	drop    lora.Dropout  // the adapters' input dropout during a LoRA training pass
}

// New returns a model over params, which must have been made for cfg (by
// NewParams or InitParams, then filled by a loader).
func New(cfg llama.Config, params *llama.Params) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Normalized()
	want, err := llama.NewParams(cfg)
	if err != nil {
		return nil, err
	}
	if len(want.Tensors()) != len(params.Tensors()) {
		return nil, fmt.Errorf("new model: params hold %d tensors, config needs %d", len(params.Tensors()), len(want.Tensors()))
	}
	for i, t := range want.Tensors() {
		pt := params.Tensors()[i]
		if pt.Name != t.Name || fmt.Sprint(pt.Shape) != fmt.Sprint(t.Shape) || len(pt.Data) != t.Size() {
			return nil, fmt.Errorf("new model: tensor %d is %s %v, config needs %s %v", i, pt.Name, pt.Shape, t.Name, t.Shape)
		}
	}
	return &Model{Config: cfg, Params: params, rope: llama.NewRopeTable(cfg, 0)}, nil
}

// layerActs are the activations one layer keeps for its backward pass. The
// normalized inputs (h), the SwiGLU product and everything derived from
// them are recomputed instead of stored.
type layerActs struct {
	xIn, rstd1  []float32 // layer input [N,d], its RMS reciprocal [N]
	q, k, v     []float32 // post-RoPE q [N,qDim], k and v [N,kvDim]
	attn, lse   []float32 // attention output [N,qDim], log-sum-exp [B·H·T]
	xMid, rstd2 []float32 // residual after attention [N,d], RMS reciprocal [N]
	gate, up    []float32 // MLP projections [N,F]
	// loraU[k] is dropout(x)·Aᵀ [N,r] of adapted projection k.
	loraU [lora.NumKinds][]float32
}

type workspace struct {
	B, T   int
	stored int // layers with their own activations (0 until a training pass)
	acts   []layerActs
	xFinal []float32 // final residual [N,d]
	rstdF  []float32
	hF     []float32 // final-norm output [N,d]

	// scratch shared by all layers
	h, dh   []float32 // [N,d]
	a       []float32 // [N,F]
	dResid  []float32 // [N,d]
	dq      []float32 // [N,qDim]
	dk, dv  []float32 // [N,kvDim]
	dAttn   []float32 // [N,qDim]
	dhF     []float32 // [N,d]
	attnBuf [][]float32

	tokens  []int32
	pos     []int32
	layout  *seqLayout
	rows    []int32 // trained positions
	headIn  []float32
	logits  []float32
	rowLoss []float64
	rowZ    []float64

	loraX  []float32 // [N, widest adapted input]: dropout(x), or du·A
	loraDU []float32 // [N, largest r]
}

func (m *Model) workspaceFor(b *llama.Batch, train bool) *workspace {
	c := m.Config
	N := b.B * b.T
	ws := m.ws
	if ws == nil || ws.B != b.B || ws.T != b.T {
		ws = &workspace{B: b.B, T: b.T}
		d, F := c.HiddenSize, c.IntermediateSize
		ws.xFinal = make([]float32, N*d)
		ws.rstdF = make([]float32, N)
		ws.hF = make([]float32, N*d)
		ws.h = make([]float32, N*d)
		ws.a = make([]float32, N*F)
		dims := newAttnDims(c, b.T)
		ws.attnBuf = make([][]float32, kernels.Threads())
		for i := range ws.attnBuf {
			ws.attnBuf[i] = make([]float32, dims.scratchFloat)
		}
		cr := chunkRows(c.VocabSize)
		ws.headIn = make([]float32, 2*cr*d)
		ws.logits = make([]float32, cr*c.VocabSize)
		ws.rowLoss = make([]float64, cr)
		ws.rowZ = make([]float64, cr)
		m.ws = ws
	}
	if len(ws.attnBuf) < kernels.Threads() {
		dims := newAttnDims(c, b.T)
		for len(ws.attnBuf) < kernels.Threads() {
			ws.attnBuf = append(ws.attnBuf, make([]float32, dims.scratchFloat))
		}
	}
	want := 1
	if train {
		want = c.NumHiddenLayers
	}
	for len(ws.acts) < max(want, 1) {
		ws.acts = append(ws.acts, m.newLayerActs(b))
	}
	m.loraScratch(ws, N)
	if train && ws.dResid == nil {
		d := c.HiddenSize
		qDim, kvDim := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
		ws.dh = make([]float32, N*d)
		ws.dResid = make([]float32, N*d)
		ws.dq = make([]float32, N*qDim)
		ws.dk = make([]float32, N*kvDim)
		ws.dv = make([]float32, N*kvDim)
		ws.dAttn = make([]float32, N*qDim)
		ws.dhF = make([]float32, N*d)
	}
	return ws
}

func (m *Model) newLayerActs(b *llama.Batch) layerActs {
	c := m.Config
	N := b.B * b.T
	d, F := c.HiddenSize, c.IntermediateSize
	qDim, kvDim := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	return layerActs{
		xIn: make([]float32, N*d), rstd1: make([]float32, N),
		q: make([]float32, N*qDim), k: make([]float32, N*kvDim), v: make([]float32, N*kvDim),
		attn: make([]float32, N*qDim), lse: make([]float32, b.B*c.NumAttentionHeads*b.T),
		xMid: make([]float32, N*d), rstd2: make([]float32, N),
		gate: make([]float32, N*F), up: make([]float32, N*F),
	}
}

// ReleaseBuffers drops the activation buffers kept between calls (they are
// sized for the last batch shape and reallocated when the shape changes).
func (m *Model) ReleaseBuffers() { m.ws = nil }

// prepare validates b and fills the workspace's per-batch fields.
func (m *Model) prepare(b *llama.Batch, train bool) (*workspace, error) {
	if err := b.Validate(m.Config); err != nil {
		return nil, err
	}
	pos := b.DerivedPositions()
	if err := m.rope.Check(pos); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	ws := m.workspaceFor(b, train)
	ws.tokens = b.Tokens
	ws.pos = pos
	ws.layout = newSeqLayout(b)
	ws.rows = ws.rows[:0]
	for i, on := range b.LossMask {
		if on {
			ws.rows = append(ws.rows, int32(i))
		}
	}
	return ws, nil
}

// forward runs embeddings, all layers and the final norm, leaving the
// final-norm output in ws.hF. With train set every layer keeps its
// activations.
func (m *Model) forward(ws *workspace, train bool) {
	c := m.Config
	N := ws.B * ws.T
	d := c.HiddenSize
	// Embedding lookup into the first layer's input (or xFinal when there
	// are no layers).
	x := ws.xFinal
	if c.NumHiddenLayers > 0 {
		x = ws.acts[0].xIn
	}
	emb := m.Params.Embed.Data
	kernels.ParallelRange(N, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			t := int(ws.tokens[i])
			copy(x[i*d:i*d+d], emb[t*d:t*d+d])
		}
	})
	for li := 0; li < c.NumHiddenLayers; li++ {
		acts := &ws.acts[0]
		if train {
			acts = &ws.acts[li]
		}
		in := x
		out := ws.xFinal
		if li+1 < c.NumHiddenLayers {
			if train {
				out = ws.acts[li+1].xIn
			} else {
				// Without stored activations the layer input must survive
				// only until xMid is formed; ping-pong with xFinal.
				out = ws.xFinal
				if &in[0] == &ws.xFinal[0] {
					out = ws.acts[0].xIn
				}
			}
		}
		m.layerForward(ws, li, acts, in, out)
		x = out
	}
	rmsNorm(ws.hF, ws.xFinal, ws.rstdF, m.Params.Norm.Data, N, d, c.RMSNormEps)
}

// layerForward runs decoder layer li from in to out, recording activations.
// in and out may not alias acts.xMid; in may be acts.xIn.
func (m *Model) layerForward(ws *workspace, li int, acts *layerActs, in, out []float32) {
	c := m.Config
	p := &m.Params.Layers[li]
	N := ws.B * ws.T
	d := c.HiddenSize
	dims := newAttnDims(c, ws.T)
	if &acts.xIn[0] != &in[0] {
		parallelCopy(acts.xIn, in)
	}
	// Attention block.
	rmsNorm(ws.h, acts.xIn, acts.rstd1, p.InputNorm.Data, N, d, c.RMSNormEps)
	m.project(ws, acts, acts.q, ws.h, li, lora.Q, p.Q, p.QBias, false)
	m.project(ws, acts, acts.k, ws.h, li, lora.K, p.K, p.KBias, false)
	m.project(ws, acts, acts.v, ws.h, li, lora.V, p.V, p.VBias, false)
	kernels.ParallelRange(N, 32, func(lo, hi int) {
		ropeApply(m.rope, acts.q, dims.qDim, dims.H, ws.pos, lo, hi)
		ropeApply(m.rope, acts.k, dims.kvDim, dims.KV, ws.pos, lo, hi)
	})
	attentionForward(acts.attn, acts.lse, acts.q, acts.k, acts.v, ws.layout, dims, ws.attnBuf)
	parallelCopy(acts.xMid, acts.xIn)
	m.project(ws, acts, acts.xMid, acts.attn, li, lora.O, p.O, p.OBias, true)
	// MLP block.
	rmsNorm(ws.h, acts.xMid, acts.rstd2, p.PostAttentionNorm.Data, N, d, c.RMSNormEps)
	m.project(ws, acts, acts.gate, ws.h, li, lora.Gate, p.Gate, p.GateBias, false)
	m.project(ws, acts, acts.up, ws.h, li, lora.Up, p.Up, p.UpBias, false)
	kernels.ParallelRange(len(acts.gate), 1<<14, func(lo, hi int) {
		kernels.SwiGLU(ws.a[lo:hi], acts.gate[lo:hi], acts.up[lo:hi])
	})
	parallelCopy(out, acts.xMid)
	m.project(ws, acts, out, ws.a, li, lora.Down, p.Down, p.DownBias, true)
}

// layerBackward takes ws.dResid = ∂L/∂(layer output) and turns it into
// ∂L/∂(layer input), adding parameter gradients into g (skipping its nil
// tensors: frozen weights) and the adapter's into ga (when not nil). It
// destroys the layer's gate and up activations.
func (m *Model) layerBackward(ws *workspace, li int, g *llama.LayerParams, ga *lora.Adapter) {
	c := m.Config
	p := &m.Params.Layers[li]
	acts := &ws.acts[li]
	N := ws.B * ws.T
	d := c.HiddenSize
	dims := newAttnDims(c, ws.T)

	// MLP block: out = xMid + down(swiglu(gate(h2), up(h2))), h2 = norm(xMid).
	rmsNorm(ws.h, acts.xMid, acts.rstd2, p.PostAttentionNorm.Data, N, d, c.RMSNormEps)
	kernels.ParallelRange(len(acts.gate), 1<<14, func(lo, hi int) {
		kernels.SwiGLU(ws.a[lo:hi], acts.gate[lo:hi], acts.up[lo:hi])
	})
	// dA into ws.a once the down-projection weight gradients have used a.
	linearBackward(nil, false, g.Down, g.DownBias, ws.dResid, ws.a, N, p.Down)
	downAdapted := m.loraWeightGrads(ws, acts, ga, ws.dResid, ws.a, li, lora.Down)
	kernels.Sgemm(false, false, N, c.IntermediateSize, d, 1, ws.dResid, d, p.Down.Data, c.IntermediateSize, 0, ws.a, c.IntermediateSize)
	if downAdapted {
		m.loraInputGrad(ws, ws.a, li, lora.Down)
	}
	kernels.ParallelRange(len(acts.gate), 1<<14, func(lo, hi int) {
		kernels.SwiGLUBackward(acts.gate[lo:hi], acts.up[lo:hi], ws.a[lo:hi], acts.gate[lo:hi], acts.up[lo:hi])
	})
	linearBackward(ws.dh, false, g.Gate, g.GateBias, acts.gate, ws.h, N, p.Gate)
	m.loraBackward(ws, acts, ga, ws.dh, acts.gate, ws.h, li, lora.Gate)
	linearBackward(ws.dh, true, g.Up, g.UpBias, acts.up, ws.h, N, p.Up)
	m.loraBackward(ws, acts, ga, ws.dh, acts.up, ws.h, li, lora.Up)
	rmsNormBackward(ws.dResid, data(g.PostAttentionNorm), ws.dh, acts.xMid, acts.rstd2, p.PostAttentionNorm.Data, N, d)

	// Attention block: xMid = xIn + o(attn(rope(q(h1)), rope(k(h1)), v(h1))).
	rmsNorm(ws.h, acts.xIn, acts.rstd1, p.InputNorm.Data, N, d, c.RMSNormEps)
	linearBackward(ws.dAttn, false, g.O, g.OBias, ws.dResid, acts.attn, N, p.O)
	m.loraBackward(ws, acts, ga, ws.dAttn, ws.dResid, acts.attn, li, lora.O)
	attentionBackward(ws.dq, ws.dk, ws.dv, ws.dAttn, acts.q, acts.k, acts.v, acts.attn, acts.lse, ws.layout, dims, ws.attnBuf)
	kernels.ParallelRange(N, 32, func(lo, hi int) {
		ropeApplyInverse(m.rope, ws.dq, dims.qDim, dims.H, ws.pos, lo, hi)
		ropeApplyInverse(m.rope, ws.dk, dims.kvDim, dims.KV, ws.pos, lo, hi)
	})
	linearBackward(ws.dh, false, g.Q, g.QBias, ws.dq, ws.h, N, p.Q)
	m.loraBackward(ws, acts, ga, ws.dh, ws.dq, ws.h, li, lora.Q)
	linearBackward(ws.dh, true, g.K, g.KBias, ws.dk, ws.h, N, p.K)
	m.loraBackward(ws, acts, ga, ws.dh, ws.dk, ws.h, li, lora.K)
	linearBackward(ws.dh, true, g.V, g.VBias, ws.dv, ws.h, N, p.V)
	m.loraBackward(ws, acts, ga, ws.dh, ws.dv, ws.h, li, lora.V)
	rmsNormBackward(ws.dResid, data(g.InputNorm), ws.dh, acts.xIn, acts.rstd1, p.InputNorm.Data, N, d)
}

// Loss runs the model on b and returns the loss over b's trained positions
// (LossMask), without gradients. It is the evaluation loss.
func (m *Model) Loss(b *llama.Batch, opts llama.LossOptions) (llama.LossResult, error) {
	ws, err := m.prepare(b, false)
	if err != nil {
		return llama.LossResult{}, fmt.Errorf("loss: %w", err)
	}
	m.forward(ws, false)
	return m.headLoss(ws.hF, ws.rows, nil, nil, 0, opts), nil
}

// LossAndGrad runs the forward and backward passes on b and adds
// scale·∂(Loss+ZLoss)/∂θ into grads (which must be for the same config;
// it is not zeroed first). Loss and ZLoss are sums over trained positions,
// so scale = 1/Count gives the gradient of the mean; for gradient
// accumulation over micro-batches, zero grads once and pass scale =
// 1/(total Count of the step) to every micro-batch to get the exact mean
// over the whole step. Results are bit-identical for every thread count.
func (m *Model) LossAndGrad(b *llama.Batch, opts llama.LossOptions, grads *llama.Params, scale float32) (llama.LossResult, error) {
	if grads == nil || len(grads.Tensors()) != len(m.Params.Tensors()) || grads.NumParams() != m.Params.NumParams() {
		return llama.LossResult{}, fmt.Errorf("loss and grad: gradients are not shaped like the model's parameters")
	}
	return m.lossAndGrad(b, opts, grads, nil, scale)
}

// lossAndGrad is the training pass: gradients into grads' tensors (nil
// ones are frozen) and, with an adapter, into ga.
func (m *Model) lossAndGrad(b *llama.Batch, opts llama.LossOptions, grads *llama.Params, ga *lora.Adapter, scale float32) (llama.LossResult, error) {
	ws, err := m.prepare(b, true)
	if err != nil {
		return llama.LossResult{}, fmt.Errorf("loss and grad: %w", err)
	}
	c := m.Config
	N := ws.B * ws.T
	d := c.HiddenSize
	m.forward(ws, true)

	gHead := grads.LMHead
	if gHead == nil && c.TieWordEmbeddings {
		gHead = grads.Embed
	}
	res := m.headLoss(ws.hF, ws.rows, ws.dhF, gHead, scale, opts)
	clear(ws.dResid)
	rmsNormBackward(ws.dResid, data(grads.Norm), ws.dhF, ws.xFinal, ws.rstdF, m.Params.Norm.Data, N, d)
	for li := c.NumHiddenLayers - 1; li >= 0; li-- {
		m.layerBackward(ws, li, &grads.Layers[li], ga)
	}
	if grads.Embed == nil {
		return res, nil
	}
	// Embedding gradient: a scatter-add in position order, split across
	// threads by columns so every element is summed in the same order.
	ge := grads.Embed.Data
	kernels.ParallelRange(d, 32, func(lo, hi int) {
		for i := 0; i < N; i++ {
			if ws.layout.seg[i] < 0 {
				continue
			}
			t := int(ws.tokens[i])
			dst := ge[t*d+lo : t*d+hi]
			for j, v := range ws.dResid[i*d+lo : i*d+hi] {
				dst[j] += v
			}
		}
	})
	return res, nil
}

// data is t's values, nil for a nil tensor (a frozen weight's gradient).
func data(t *llama.Tensor) []float32 {
	if t == nil {
		return nil
	}
	return t.Data
}

// Logits runs the model on b and returns the next-token logits at the given
// flat positions (row·T + t): len(positions) rows of VocabSize values. For
// generation, pass each row's last position. LossMask is ignored.
func (m *Model) Logits(b *llama.Batch, positions []int) ([]float32, error) {
	bb := *b
	bb.LossMask = nil
	ws, err := m.prepare(&bb, false)
	if err != nil {
		return nil, fmt.Errorf("logits: %w", err)
	}
	N := b.B * b.T
	for _, p := range positions {
		if p < 0 || p >= N {
			return nil, fmt.Errorf("logits: position %d outside the batch's %d positions", p, N)
		}
	}
	m.forward(ws, false)
	d, V := m.Config.HiddenSize, m.Config.VocabSize
	hc := make([]float32, len(positions)*d)
	for j, p := range positions {
		copy(hc[j*d:j*d+d], ws.hF[p*d:p*d+d])
	}
	out := make([]float32, len(positions)*V)
	if len(positions) > 0 {
		kernels.Sgemm(false, true, len(positions), V, d, 1, hc, d, m.headWeight().Data, d, 0, out, V)
	}
	return out, nil
}
