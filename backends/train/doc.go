// Package train is the "train" op, the step default_sft makes, shared by
// every engine: it trains a Llama-family model (backends/model/llama) on
// token caches (backends/tokens/tokencache) with AdamW, global-norm clipping
// and Levanter's learning-rate schedules (backends/model/optim). The numerics
// run in an Engine (backends/cpu, backends/gomlx); everything else — config,
// data order, schedule, checkpoints, exports, metrics — is here, so a run can
// move between engines at a checkpoint. Each engine's plugin serves the op
// through Op(EngineSpec); Config's tags are the op's config schema.
//
// # Config
//
// The step config is SimpleSFTConfig's fields as default_sft writes them
// (see Config): data.components.NAME.{cache, weight, validation_only},
// max_seq_len, train_batch_size, num_train_steps or num_train_epochs,
// learning_rate, weight_decay, warmup, cooldown (the decay span, as Marin
// passes it), lr_schedule, min_lr_ratio, max_grad_norm, z_loss_weight,
// seed, steps_per_eval/checkpoint/hf_export, mixture_block_size, and the
// model: model_name_or_path (an HF directory, a training step's output or
// a hub id), initialize_from_checkpoint_path (weights only; the optimizer
// starts fresh), or model_config (an HF LlamaConfig object: a from-scratch
// model initialised from seed).
//
// # Data
//
// Every component's cache is packed greedily into max_seq_len sequences
// (at most 64 documents each, segment ids, positions restarting per
// document, the loss mask shifted for next-token targets), or padded one
// document a sequence when its chat format says pack=False. Weighted
// components are mixed by dataloader.Mixture (blocks of
// mixture_block_size, seeded Feistel shuffles, restart when exhausted);
// step s trains on global sequences [s·B, (s+1)·B). Validation-only
// components (no weight) are evaluated every steps_per_eval and at the end.
// num_train_epochs is resolved as ⌈epochs × Σ packed sequences of the
// weighted components ÷ train_batch_size⌉.
//
// Each step's batch is split into micro-batches that fit in memory
// (micro_batch_size; else, with resources.device_memory, the largest
// divisor of the batch whose memory plan fits it; else the largest whose
// activations fit a quarter of RAM); every micro-batch's gradient is
// scaled by 1/(loss targets in the whole batch), so accumulation gives the
// big batch's mean.
//
// # Memory
//
// precision (Precision: f32, mixed, lean or Levanter's "p=…,c=…,o=…") and
// gradient_checkpointing ask the engine to trade precision and compute for
// memory (EngineSpec.Profile resolves them; an engine without one trains
// in float32 and refuses the rest at plan time). While planning, the op
// estimates the step's peak bytes per device (PlanMemory: weights,
// gradients, optimizer state, activations with and without checkpointing,
// logits; LoRA and FSDP sharding over resources.num_devices accounted for)
// and shows it with its alternatives in `--dry-run`; a peak above
// resources.device_memory fails planning with the numbers. The model's
// shape is known from model_config, a local config.json, or, for the hub
// models the experiments name, the config.json shipped in hubmodels/
// (KnownHubModel, pinned revision; planning only).
//
// # Outputs
//
//	{output}/metrics.jsonl          one MetricsRow a step: step, loss, lr, grad_norm,
//	                                tokens, trained_tokens, tokens_per_second, mfu,
//	                                step_seconds; eval_loss and eval (per component)
//	                                on evaluation steps
//	{output}/checkpoints/step-N/    every steps_per_checkpoint, at the end, and
//	                                (temporary) every checkpoint_minutes (default 10)
//	{output}/hf/step-N/             every steps_per_hf_export and at the end: the
//	                                Hugging Face layout of backends/model/weights, with the
//	                                tokenizer files and marin.json (the chat format)
//
// A checkpoint has this layout (file names: ConfigFile, OptimizerFile,
// MetadataFile), which every engine
// reads and writes through this package:
//
//	config.json, model.safetensors   the model (float32, HF names; sharded above 10 GB)
//	optimizer.bin                    AdamW's step and moments (backends/model/optim's binary
//	                                 layout with a CRC)
//	tokenizer.json, …                the tokenizer files, so the directory is a model
//	metadata.json                    written last: {"step", "extra": TrainerState,
//	                                 "timestamp", "is_temporary", "files": [{path,
//	                                 bytes, sha256}]}
//
// TrainerState holds the data loader's position (next_sequence), the seed
// and the micro-batch size. The loader's randomness is a function of the
// seed and the sequence index and the model has no dropout, so these are
// the whole random state.
//
// # Resuming
//
// A rerun of the step (after a kill, a crash or a cancel) resumes from the
// newest complete checkpoint: the same weights, moments, schedule position
// and data order, so the losses it logs are bit-identical to an
// uninterrupted run's (rows of metrics.jsonl past the checkpoint are
// rewritten). A step-N directory without metadata.json is incomplete and
// skipped. A committed checkpoint whose files do not match their sizes and
// sha256 — or whose safetensors or optimizer state are damaged — is refused
// with an error naming the file and the older checkpoint that deleting it
// would resume from; it is never skipped silently. Temporary checkpoints
// are removed once a newer one is complete; the others are kept, as in
// Marin.
package train
