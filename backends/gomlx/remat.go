package gomlx

import (
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.

	"github.com/marin-go/marin/backends/model/lora"
)

// Activation checkpointing per decoder layer (Options.Checkpointing). The
// forward pass keeps only each layer's input; the backward pass runs layer
// by layer from the top, recomputing the layer from its input and taking
// the gradient of ⟨layer(x), g⟩ with respect to x and the layer's weights,
// g being the gradient arriving from the layer above. The chain rule across
// layers is written out here, and GoMLX's Gradient differentiates one layer
// (or the head, or the embedding) at a time, so only one layer's
// activations exist at once.
//
// GoMLX v0.26.0 has no optimization barrier. So that XLA neither merges a
// recomputation with the forward pass (common-subexpression elimination,
// which would keep every activation alive again) nor schedules it early,
// each recomputation's input is the layer's saved input plus a zero that
// depends on g (max(g)·0: XLA does not fold x·0 for floats, as NaN·0 is
// NaN): the recomputation can only start once g exists.

// checkpointedGrads is gradsGraph with activation checkpointing: the same
// objective and gradients with respect to the trained tensors (the whole
// model's, or a LoRA adapter's and the tensors it trains in full; frozen
// tensors get no gradient).
func (m *Model) checkpointedGrads(params, frozen []*Node, b batchNodes, drop *dropNodes) (obj, ce, count *Node, grads []*Node) {
	mg := m.graphOf(params, frozen, drop)
	// Which trained tensors each part of the model reads, by their names
	// in the base model (a LoRA adapter's carry PEFT's prefix).
	index := make(map[string]int, len(m.specs))
	layerOf := make([][]int, m.cfg.NumHiddenLayers)
	for i, s := range m.specs {
		name := lora.BaseName(s.name)
		index[name] = i
		for l := range layerOf {
			if strings.HasPrefix(name, "model.layers."+itoa(l)+".") {
				layerOf[l] = append(layerOf[l], i)
			}
		}
	}
	grads = make([]*Node, len(params))
	gradOf := func(out *Node, leaf *Node, trained []int) *Node {
		wrt := []*Node{leaf}
		for _, i := range trained {
			wrt = append(wrt, params[i])
		}
		gs := Gradient(out, wrt...)
		for k, i := range trained {
			if grads[i] == nil {
				grads[i] = gs[k+1]
			} else {
				grads[i] = Add(grads[i], gs[k+1])
			}
		}
		return gs[0]
	}
	trainedOf := func(names ...string) []int {
		var out []int
		for _, n := range names {
			if i, ok := index[n]; ok {
				out = append(out, i)
			}
		}
		return out
	}

	allowed := allowedMask(b.segs)
	attn := func(_ int, x *Node, p string) *Node { return mg.attention(x, p, b, allowed) }
	L := m.cfg.NumHiddenLayers
	hs := make([]*Node, L+1) // each layer's input, and the last one's output
	hs[0] = mg.embed(b.tokens)
	for l := range L {
		hs[l+1] = mg.block(l, hs[l], attn)
	}

	// The head: final norm, logits and loss, differentiated with respect
	// to the last layer's output (a leaf cut from the forward pass).
	leaf := Identity(StopGradient(hs[L]))
	obj, ce, count = mg.lossFrom(mg.rmsNorm(leaf, "model.norm.weight"), b)
	head := "lm_head.weight"
	if m.cfg.TieWordEmbeddings {
		head = "model.embed_tokens.weight"
	}
	g := gradOf(obj, leaf, trainedOf("model.norm.weight", head))

	for l := L - 1; l >= 0; l-- {
		zero := StopGradient(MulScalar(ReduceAllMax(g), 0))
		x := Identity(StopGradient(Add(hs[l], BroadcastToDims(zero, hs[l].Shape().Dimensions...))))
		y := mg.block(l, x, attn)
		g = gradOf(ReduceAllSum(Mul(y, StopGradient(g))), x, layerOf[l])
	}

	// The embedding: the lookup's gradient scatters g into the rows used.
	if i, ok := index["model.embed_tokens.weight"]; ok {
		gs := Gradient(ReduceAllSum(Mul(mg.embed(b.tokens), StopGradient(g))), params[i])
		if grads[i] == nil {
			grads[i] = gs[0]
		} else {
			grads[i] = Add(grads[i], gs[0])
		}
	}
	for i, gr := range grads {
		if gr == nil { // a parameter nothing reads
			grads[i] = ZerosLike(params[i])
		}
	}
	return obj, ce, count, grads
}
