package transformer

import (
	"fmt"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
)

// LoRA: an adapted projection computes W·x (+ bias) + s·B·A·dropout(x)
// (backends/model/lora). The forward pass keeps u = dropout(x)·Aᵀ [N, r]
// per adapted projection; the backward pass recomputes dropout(x) from the
// projection's input (which it recomputes anyway) and the hashed mask,
// adds
//
//	∂B += s·dyᵀ·u,  du = s·dy·B,  ∂A += duᵀ·dropout(x),  ∂x += dropout'(du·A)
//
// and skips the frozen weights' gradients.

// SetAdapter makes the model add a's low-rank updates to its projections
// (nil: none). The model reads a's values as they are at each pass; a's
// fully trained tensors are the caller's to put in Params (Adapter.View).
func (m *Model) SetAdapter(a *lora.Adapter) error {
	if a != nil {
		if err := a.Check(m.Config); err != nil {
			return err
		}
	}
	m.adapter = a
	m.ws = nil
	return nil
}

// LossAndGradLoRA runs the forward and backward passes on b with the
// model's adapter (SetAdapter) and adds scale·∂(Loss+ZLoss)/∂φ into ga for
// the adapter's tensors φ (ga is laid out as the adapter: ZerosLike). The
// base weights are frozen: their gradients are not computed. d drops the
// adapters' inputs (d.Rate 0: none).
func (m *Model) LossAndGradLoRA(b *llama.Batch, opts llama.LossOptions, d lora.Dropout, ga *lora.Adapter, scale float32) (llama.LossResult, error) {
	if m.adapter == nil {
		return llama.LossResult{}, fmt.Errorf("loss and grad: the model has no adapter")
	}
	if ga == nil || m.adapter.SameLayout(ga) != nil {
		return llama.LossResult{}, fmt.Errorf("loss and grad: the gradients are not laid out like the adapter")
	}
	full := make([]*llama.Tensor, len(ga.Full))
	for i, t := range ga.Full {
		full[i] = &llama.Tensor{Name: lora.BaseName(t.Name), Shape: t.Shape, Data: t.Data}
	}
	g, err := llama.Sparse(m.Config, full...)
	if err != nil {
		return llama.LossResult{}, fmt.Errorf("loss and grad: %w", err)
	}
	m.drop = d
	defer func() { m.drop = lora.Dropout{} }()
	return m.lossAndGrad(b, opts, g, ga, scale)
}

// loraScratch sizes the workspace's LoRA buffers for the adapter.
func (m *Model) loraScratch(ws *workspace, N int) {
	if m.adapter == nil || ws.loraDU != nil {
		return
	}
	maxIn, maxR := 0, 0
	for _, mod := range m.adapter.Modules {
		maxIn = max(maxIn, mod.A.Shape[1])
		maxR = max(maxR, mod.Rank())
	}
	ws.loraX = make([]float32, N*maxIn)
	ws.loraDU = make([]float32, N*maxR)
}

// loraU returns the buffer keeping u = dropout(x)·Aᵀ of layer activations
// acts for projection k.
func (m *Model) loraU(acts *layerActs, mod *lora.Module, N int) []float32 {
	if acts.loraU[mod.Kind] == nil {
		acts.loraU[mod.Kind] = make([]float32, N*mod.Rank())
	}
	return acts.loraU[mod.Kind]
}

// dropped returns dropout(x) for projection mod while training (in the
// workspace's scratch), else x.
func (m *Model) dropped(ws *workspace, x []float32, N int, mod *lora.Module) []float32 {
	if m.drop.Rate <= 0 {
		return x
	}
	in := mod.A.Shape[1]
	dst := ws.loraX[:N*in]
	m.applyDropout(dst, x, N, in, mod)
	return dst
}

// applyDropout writes dropout(x) of projection mod into dst (which may be
// x), tokens in parallel.
func (m *Model) applyDropout(dst, x []float32, N, in int, mod *lora.Module) {
	kernels.ParallelRange(N, 16, func(lo, hi int) {
		d := m.drop
		d.Token0 += uint32(lo)
		d.Apply(dst[lo*in:hi*in], x[lo*in:hi*in], hi-lo, in, mod.Layer, mod.Kind)
	})
}

// project is linear(y, x, …) plus layer li's adapter of projection k, if
// any: y (+)= x·Wᵀ + bias + s·(dropout(x)·Aᵀ)·Bᵀ.
func (m *Model) project(ws *workspace, acts *layerActs, y, x []float32, li int, k lora.Kind, w, bias *llama.Tensor, accumulate bool) {
	N := ws.B * ws.T
	linear(y, x, N, w, bias, accumulate)
	if m.adapter == nil {
		return
	}
	mod := m.adapter.Module(li, k)
	if mod == nil {
		return
	}
	r, in, out := mod.Rank(), mod.A.Shape[1], mod.B.Shape[0]
	u := m.loraU(acts, mod, N)
	kernels.Sgemm(false, true, N, r, in, 1, m.dropped(ws, x, N, mod), in, mod.A.Data, in, 0, u, r)
	kernels.Sgemm(false, true, N, out, r, float32(m.adapter.Scale()), u, r, mod.B.Data, r, 1, y, out)
}

// loraWeightGrads adds the gradients of layer li's adapter of projection
// k into ga, given the projection's output gradient dy and input x, and
// leaves du = s·dy·B in the workspace for loraInputGrad. It reports
// whether the projection is adapted.
func (m *Model) loraWeightGrads(ws *workspace, acts *layerActs, ga *lora.Adapter, dy, x []float32, li int, k lora.Kind) bool {
	if m.adapter == nil || ga == nil {
		return false
	}
	mod := m.adapter.Module(li, k)
	if mod == nil {
		return false
	}
	g := ga.Module(li, k)
	N := ws.B * ws.T
	r, in, out := mod.Rank(), mod.A.Shape[1], mod.B.Shape[0]
	s := float32(m.adapter.Scale())
	u := acts.loraU[k]
	du := ws.loraDU[:N*r]
	kernels.Sgemm(true, false, out, r, N, s, dy, out, u, r, 1, g.B.Data, r)
	kernels.Sgemm(false, false, N, r, out, s, dy, out, mod.B.Data, r, 0, du, r)
	kernels.Sgemm(true, false, r, in, N, 1, du, r, m.dropped(ws, x, N, mod), in, 1, g.A.Data, in)
	return true
}

// loraInputGrad adds the adapter's part of ∂x, dropout'(du·A), into dx
// (after loraWeightGrads of the same projection).
func (m *Model) loraInputGrad(ws *workspace, dx []float32, li int, k lora.Kind) {
	mod := m.adapter.Module(li, k)
	N := ws.B * ws.T
	r, in := mod.Rank(), mod.A.Shape[1]
	du := ws.loraDU[:N*r]
	if m.drop.Rate <= 0 {
		kernels.Sgemm(false, false, N, in, r, 1, du, r, mod.A.Data, in, 1, dx, in)
		return
	}
	t := ws.loraX[:N*in]
	kernels.Sgemm(false, false, N, in, r, 1, du, r, mod.A.Data, in, 0, t, in)
	m.applyDropout(t, t, N, in, mod)
	addInto(dx, t)
}

// loraBackward is loraWeightGrads then loraInputGrad into dx.
func (m *Model) loraBackward(ws *workspace, acts *layerActs, ga *lora.Adapter, dx, dy, x []float32, li int, k lora.Kind) {
	if m.loraWeightGrads(ws, acts, ga, dy, x, li, k) {
		m.loraInputGrad(ws, dx, li, k)
	}
}
