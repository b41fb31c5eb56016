// Package gomlx is the GoMLX engine and its plugin: the Llama-family model
// of DESIGN §5 (RMSNorm, RoPE with Llama 3 scaling, grouped-query
// attention, SwiGLU, tied or untied head, optional q/k/v biases), its
// masked next-token loss and AdamW with global-norm clipping, built as one
// GoMLX v0.26.0 graph per training step, and a key/value-cached decoder,
// run on
//
//   - GoMLX's pure-Go engine on CPU ("go:ops_sequential"): hermetic, nothing
//     downloaded, float32; what CI tests;
//   - XLA through a PJRT plugin file named by configuration on GPU/TPU
//     (Options.PJRTPlugin, resources.pjrt_plugin or $MARIN_PJRT_PLUGIN, an
//     absolute path), over all local devices (or resources.num_devices):
//     the weights and optimizer state sharded FSDP-style and the batch split
//     by rows, with GoMLX's AutoSharding (sharding.go). Nothing is
//     downloaded; without a plugin it fails saying so.
//
// # Memory
//
// A precision policy (Options.Precision, the step's precision key:
// train.Precision) sets the dtypes of the weights, the compute and AdamW's
// moments: float32 on the CPU engine by default, "mixed" (float32 weights
// and moments, bf16 compute) on XLA, or "lean": bf16 weights updated with
// Kahan compensation (a bf16 buffer keeps what each update's rounding lost),
// bf16 compute and moments. Updates are computed in float32 whatever the
// state's dtypes, and gradients summed over micro-batches accumulate in
// float32. Checkpoints hold float32 weights (bf16 weight plus its
// compensation, from which New restores both) and moments, so runs move
// between policies, engines and device counts at any checkpoint.
// Activation checkpointing (Options.Checkpointing, gradient_checkpointing;
// on by default on XLA) recomputes each decoder layer in the backward pass
// (remat.go). A LoRA adapter (lora.go) trains under the same policy: its
// factors in the weight dtype (bf16 with compensation under lean), the
// frozen base in the compute dtype, checkpointing recomputing the adapted
// projections with their layer. backends/train's PlanMemory estimates a step's peak per
// device; TestMemoryPlanMatchesMeasuredPeak measures it on the CPU engine.
//
// The model's definitions are backends/model's, shared with the cpu
// engine: llama.Config (parsing, defaults, validation), llama.Params'
// tensor names, shapes and order, llama.Batch, the float32 RoPE tables of
// llama.RopeTable (so both engines rotate with the same values) and
// optim.AdamWConfig with Levanter's weight-decay mask. Checkpoints and hf/
// exports are written and read by backends/train and backends/model/weights,
// so a run can move between engines at a checkpoint. Sampling and the
// generation loop are backends/model/sample's. backends/conformance holds
// the suite both engines pass; conformance_test.go runs it here, and
// against the cpu engine (same numbers, checkpoints handed over both ways).
//
// Entry points: New (from llama.Params) / LoadHF / LoadCheckpoint give a
// *Model, which is a train.Engine (Step, Grads, Eval, Params,
// OptimizerState, LoadOptimizerState, PeakFLOPS, Close); EngineFactory
// makes one for the train op's loop. Model.TrainStep applies one AdamW step
// (several micro-batches accumulate); SaveCheckpoint and ExportHF write.
// NewLoRA gives a *Model that trains a LoRA adapter over a frozen base
// (lora.go: the base held in the compute dtype, the adapter's update in
// float32, dropout masks hashed in the graph as the cpu engine draws them).
// Model.NewDecoder (or DecoderFactory, from llama.Params) gives a
// sample.Decoder: rows of sequences with a key/value cache on device 0.
// Plugin is the built-in "gomlx" backend plugin (gomlx/train,
// gomlx/generate). gpucheck.sh runs the checks that need a GPU
// (conformance on XLA, throughput and MFU, an 8B fine-tune's memory, the
// hf/ export in transformers) and writes their figures.
//
// # GoMLX v0.26.0 workarounds
//
//   - DotGeneral's stock gradient materialises a [batch, M, N, K] tensor;
//     dot.go registers a matmul-shaped gradient for the products this
//     package builds (graph.VJPRegistration).
//   - Rsqrt has no gradient: RMSNorm divides by Sqrt.
//   - The pure-Go engine lacks Pad (Slice's gradient), Reverse, DynamicSlice
//     and DynamicUpdateSlice: RoPE's rotate_half is a 2×2 permutation
//     matmul (exact), the target logit is a Gather, and the decoder writes
//     new keys and values into its cache with a Gather and a Where (exact)
//     and attends over the cache's whole capacity under a mask; token
//     counts are padded to powers of two and the capacity doubles, so a
//     few compiled graphs serve every length.
//   - The pure-Go engine's default parallel op execution deadlocked on 2
//     cores; ops run sequentially (each op still uses its worker pool).
//   - Variables live outside ml/context (the step is a pure function of
//     weights, moments and batch), so checkpoint reloading needs no
//     ctx.Checked(false); weight decay follows Levanter (linear weights
//     only) and clipping is written out, as GoMLX has neither.
//   - GoMLX panics are recovered at this package's API (try) and returned
//     as errors.
//
// # Choosing a backend
//
// The ops are backend-qualified (gomlx/train, gomlx/generate) because the
// host refuses an op served by two plugins: a step's op stays "train"
// (hashed, so switching engines never moves an output path) and the
// executor dispatches it to "gomlx/train" when resources.backend or
// `marin --backend` says gomlx (host/executor.DispatchOp).
package gomlx
