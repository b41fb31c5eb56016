// Package lora holds low-rank adaptation (LoRA, Hu et al. 2021) for the
// Llama-family model of backends/model/llama, in Hugging Face PEFT's
// conventions so that adapters move between marin and the PEFT ecosystem
// (transformers, PEFT, vLLM):
//
//   - Spec is a LoRA configuration with PEFT's fields and defaults (r 8,
//     lora_alpha 8, lora_dropout 0, target_modules by module name, a regular
//     expression or "all-linear", bias "none", modules_to_save, use_rslora),
//     as adapter_config.json records it.
//   - Adapter is an adapter's trainable tensors laid out for a model: for
//     every targeted projection W [out, in] a pair A [r, in] and B [out, r],
//     plus the base tensors trained in full (modules_to_save, and biases when
//     bias is "all" or "lora_only"). Tensors carry PEFT's state-dict names
//     (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight,
//     base_model.model.model.embed_tokens.weight), which are also the names
//     the optimizer state and checkpoints use.
//   - A targeted projection computes W·x (+ bias) + s·B·A·dropout(x), with
//     s = lora_alpha/r (lora_alpha/√r with use_rslora); a fresh adapter has
//     A drawn as PEFT's kaiming_uniform_(a=√5) (uniform in ±1/√in) and B = 0,
//     so it starts as the base model. Merge folds an adapter into its base
//     (W + s·B·A), View substitutes its fully trained tensors.
//   - Dropout masks are a counter-based hash of (seed, step, module, token,
//     feature), so every engine draws the same masks without moving them
//     between host and device, and a resumed run draws the masks the
//     uninterrupted one would have.
//
// # The adapter directory (adapter/step-N/, PEFT's save_pretrained layout)
//
//	adapter_config.json        peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha,
//	                           lora_dropout, target_modules, bias, modules_to_save,
//	                           use_rslora, base_model_name_or_path, revision, and
//	                           PEFT's other keys at their defaults
//	adapter_model.safetensors  the tensors above by PEFT's names, F32 (BF16 on request)
//
// marin's exports add the tokenizer files and marin.json (the chat format,
// and the base model's path relative to the adapter, for a prefix that has
// moved). Read accepts adapters made elsewhere in this layout (F32, BF16 or
// F16 tensors) and refuses what it cannot apply exactly (DoRA, rank or
// alpha patterns, fan_in_fan_out, LoRA on embeddings or lm_head).
package lora
