// Package transformer is the CPU engine's Llama-family decoder in float32
// (the model defined in backends/model/llama): token embeddings, RMSNorm,
// rotary position embeddings, grouped-query causal attention restricted to
// each document of a packed sequence, a SwiGLU MLP, optional q/k/v biases, a
// tied or untied LM head, and a masked next-token cross-entropy loss with
// optional z-loss. The backward pass is written by hand and checked against
// finite differences of an independent float64 implementation
// (reference_test.go). backends/cpu wraps it, with backends/cpu/adamw, as a
// train.Engine.
//
// Model runs the passes: Loss (evaluation), LossAndGrad (training; adds
// scale·gradient into a Params of gradients) and Logits (next-token logits
// at chosen positions; cached decoding is backends/cpu/generate's). With a
// LoRA adapter (SetAdapter, lora.go) every pass adds the adapted
// projections' low-rank updates, and LossAndGradLoRA trains the adapter
// alone: the frozen weights' gradients are not computed, the adapters'
// dropout masks are backends/model/lora's hash. A Model keeps activation
// buffers between calls and is not safe for concurrent use.
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
//	// sum.ObjectiveMean() is the step's loss. Then adamw.AdamW.Step.
//
// # Performance
//
// Matrix products go through backends/cpu/kernels (a BLIS-style sgemm with
// AVX-512 and AVX2/FMA micro-kernels); everything is parallel over kernels.Threads()
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
// BenchmarkTrainStep (bench_test.go) measures a training step of a
// 56M-parameter model and its MFU against the CPU's peak.
package transformer
