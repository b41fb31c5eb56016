// Package llama defines the Llama-family model every engine trains, once:
// its configuration, its parameters, a batch and the tables and sums all
// engines compute the same way. It computes nothing heavy itself — the
// engines do: backends/cpu/transformer (float32 on the CPU, forward and a
// hand-written backward) and backends/gomlx (GoMLX graphs on XLA or its
// pure-Go engine). Weights move between disk and Params in
// backends/model/weights.
//
// # Pieces
//
//   - Config mirrors Hugging Face's LlamaConfig (field names and JSON keys),
//     so config.json unmarshals into it: ParseConfig applies HF's defaults
//     (and Mistral- and Qwen2-style configs), Validate refuses what no
//     engine runs, and the size checks refuse absurd dimensions before any
//     buffer is made.
//   - Params holds the weights as named tensors with HF's names and [out,
//     in] row-major layouts (model.embed_tokens.weight,
//     model.layers.N.self_attn.q_proj.weight, …, lm_head.weight), all in one
//     contiguous allocation, in one order every engine shares. NewParams
//     makes zeros (gradients, or a buffer to load into); InitParams
//     initialises from a seed as HF does for a fresh model (normal(0,
//     initializer_range) matrices, unit norms, zero biases), deterministically
//     on every machine.
//   - Batch is B rows of T tokens with segment ids (packing; −1 is
//     padding), RoPE positions and a loss mask. The mask is already
//     shifted: LossMask[t] trains the prediction of token t+1 from
//     positions ≤ t (see Batch).
//   - RopeInvFreq and RopeTable are the rotary tables (Llama 3 and linear
//     scaling), in float32 as transformers computes them; every engine,
//     training and decoding, rotates with them.
//   - LossOptions and LossResult are the loss's settings and its sums, so
//     micro-batches accumulate exactly.
//
// # Numbers every engine reproduces
//
// Given the same Params and Batch, engines agree on (backends/conformance
// checks it):
//
//   - RMSNorm: y = w ⊙ (x · 1/√(mean(x²) + eps)).
//   - RoPE in HF's rotate_half layout (pairs i and i+head_dim/2), angles
//     float32(position)·inv_freq; RopeTable holds the exact float32
//     values.
//   - Attention scores scaled by 1/√head_dim; query i attends to key j iff
//     j ≤ i and Segments[j] == Segments[i] ≠ −1 (ids, not runs: an id that
//     reappears later in the row is the same document). Padding
//     contributes nothing to the loss or the gradients.
//   - MLP: down(silu(gate(h)) ⊙ up(h)).
//   - Loss per trained position t: logsumexp(z) − z[Tokens[t+1]] plus
//     ZLossWeight·logsumexp(z)², z = LM-head logits of the final-norm output
//     at t. LossResult reports the sums and the count.
//   - FLOPs for MFU: Config.FlopsPerToken (Levanter's formula).
package llama
