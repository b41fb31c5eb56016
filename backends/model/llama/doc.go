// Package llama is the CPU backend's Llama-family decoder in float32:
// token embeddings, RMSNorm, rotary position embeddings (with Llama 3 and
// linear rope scaling), grouped-query causal attention restricted to each
// document of a packed sequence, a SwiGLU MLP, optional Qwen2-style q/k/v
// biases (and Llama's attention_bias / mlp_bias), a tied or untied LM head,
// and a masked next-token cross-entropy loss with optional z-loss. The
// backward pass is written by hand and checked against finite differences
// of an independent float64 implementation (reference_test.go).
//
// # Pieces
//
//   - Config mirrors Hugging Face's LlamaConfig (field names and JSON keys),
//     so config.json unmarshals into it: ParseConfig applies HF's defaults.
//   - Params holds the weights as named tensors with HF's names and [out,
//     in] row-major layouts (model.embed_tokens.weight,
//     model.layers.N.self_attn.q_proj.weight, …, lm_head.weight), all in one
//     contiguous allocation. Loading or exporting safetensors is copying
//     Tensor.Data by name (converting bf16/f16 to float32 on load).
//     NewParams makes zeros (gradients, or a buffer to load into);
//     InitParams initialises from a seed as HF does for a fresh model
//     (normal(0, initializer_range) matrices, unit norms, zero biases),
//     deterministically on every machine.
//   - Batch is B rows of T tokens with segment ids (packing; −1 is
//     padding), RoPE positions and a loss mask. The mask is already
//     shifted: LossMask[t] trains the prediction of token t+1 from
//     positions ≤ t (see Batch).
//   - Model runs the passes: Loss (evaluation), LossAndGrad (training;
//     adds scale·gradient into a Params of gradients) and Logits
//     (generation). A Model keeps activation buffers between calls and is
//     not safe for concurrent use.
//
// # A training step with gradient accumulation
//
//	grads.Zero()
//	total := 0
//	for _, mb := range microBatches {
//		total += mb.TrainedCount()
//	}
//	var sum llama.LossResult
//	for _, mb := range microBatches {
//		r, err := model.LossAndGrad(mb, llama.LossOptions{ZLossWeight: zw}, grads, 1/float32(total))
//		if err != nil { ... }
//		sum = sum.Add(r)
//	}
//	// grads now hold ∂(mean over the step's trained tokens)/∂θ exactly;
//	// sum.ObjectiveMean() is the step's loss. Then optim.AdamW.Step.
//
// # Numbers another backend must reproduce
//
// The GoMLX backend matches this one given the same Params and Batch:
//
//   - RMSNorm: y = w ⊙ (x · 1/√(mean(x²) + eps)).
//   - RoPE in HF's rotate_half layout (pairs i and i+head_dim/2), angles
//     float32(position)·inv_freq; RopeInvFreq and RopeCosSin return the
//     exact float32 tables this package uses.
//   - Attention scores scaled by 1/√head_dim; query i attends to key j iff
//     j ≤ i and Segments[j] == Segments[i] ≠ −1 (ids, not runs: an id that
//     reappears later in the row is the same document). A padding query's
//     output is 0.
//   - MLP: down(silu(gate(h)) ⊙ up(h)).
//   - Loss per trained position t: logsumexp(z) − z[Tokens[t+1]] plus
//     ZLossWeight·logsumexp(z)², z = LM-head logits of the final-norm output
//     at t. LossResult reports the sums and the count.
//   - FLOPs for MFU: Config.FlopsPerToken (Levanter's formula).
//
// # Performance
//
// Matrix products go through backends/cpu/kernels (a BLIS-style sgemm with an
// AVX2/FMA micro-kernel); everything is parallel over kernels.Threads()
// goroutines and bit-identical for every thread count (fixed reduction
// orders, no split of any dot product across threads). The backward pass
// keeps, per layer, the layer input, the post-RoPE q and k, v, the
// attention output and its log-sum-exp, the mid-layer residual and the two
// MLP projections; normalised activations and the SwiGLU product are
// recomputed, attention probabilities are recomputed from the log-sum-exp
// (flash-attention style, so memory is linear in T), and the LM head and
// loss run in chunks of trained positions so that logits for the whole
// batch never exist at once. Only trained positions reach the LM head.
//
// BenchmarkTrainStep (bench_test.go) measures a training step of the issue's
// benchmark model and its MFU against OpenBLAS's sgemm peak.
package llama
