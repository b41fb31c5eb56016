// Package sample generates text from a Llama-family model on any engine.
// It holds what does not depend on where the numbers are computed:
//
//   - Decoder, the interface every engine's key/value-cached decoder
//     implements (backends/cpu/generate, backends/gomlx): rows of
//     sequences fed tokens, returning next-token logits after the last fed
//     token (Last) or after each (Every), with Len, Truncate and Reset;
//     DecoderFactory is how an engine makes one from llama.Params.
//   - Sampling and Sampler: greedy decoding (ties to the lowest id) or a
//     seeded draw with temperature, top-k and top-p.
//   - Generate: the loop that feeds prompts and draws tokens for a batch of
//     rows until each stops (a stop token, a length limit or a full cache).
//   - Load and Model: a model and its tokenizer from a directory, a training
//     step's output or a hub id, with the chat format it was trained with
//     (marin.json, weights.MarinInfo); chat.Prompter renders prompts.
//
// marin generate and chat, and the eval/exact_match op, use it.
package sample
