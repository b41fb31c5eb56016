// Package cpu is the CPU engine and its built-in plugin "cpu" (served as
// `marin plugin serve cpu`): the pure-Go reference every other engine is
// checked against. Engine (NewEngine) is its train.Engine — the forward and
// hand-written backward of backends/cpu/transformer and the AdamW update of
// backends/cpu/adamw, on float32 in parallel over the host's cores,
// training every parameter or a LoRA adapter over frozen weights
// (train.Setup.LoRA) — and
// PeakFLOPS the CPU's float32 peak that MFU is reported against; NewDecoder
// is its sample.Decoder (backends/cpu/generate's key/value cache). Plugin
// serves tokenize (backends/tokens/tokenize), train on this engine
// (backends/train) and eval/exact_match (backends/cpu/evaluate).
//
// Subpackages: kernels (sgemm and the vector kernels, AVX-512 / AVX2 /
// pure Go), transformer (the model's passes), adamw (the update), generate
// (KV-cache decoding), evaluate (the exact-match op). The conformance suite
// runs on this engine from this package's tests.
package cpu
