// Package eval is marin's evaluation harness: it runs tasks defined in the
// shape of EleutherAI lm-evaluation-harness configs (plugins/evaltasks) on
// a model and scores them the way that harness does, behind the op
// eval/harness that every engine plugin serves.
//
// What is lm-eval's, reproduced here (and where it is tested):
//
//   - Templates: doc_to_text / doc_to_target / doc_to_choice as a column, a
//     Jinja template (github.com/ardanlabs/jinja, plus Python's .index and
//     lm-eval's regex_replace), an integer or a list; a rendered target
//     that is all digits is a choice index; a rendered choice list is
//     literal_eval'd (template.go, pyliteral.go).
//   - Prompts: description (system message), few-shot examples joined by
//     the few-shot delimiter, the target delimiter before each answer
//     (" " by default; none after a chat prompt), gen_prefix, multiple-input
//     tasks (winogrande), chat rendering with few-shot examples collapsed
//     into one user turn unless fewshot_as_multiturn (task.go).
//   - Few-shot sampling: first_n, or one random.Random(1234) per task
//     drawing n+1 and dropping the evaluated document, state running on
//     from document to document (pyrand is CPython's generator).
//   - Tokenization as HFLM does it: context and continuation encoded
//     together and split (trailing context spaces move to the continuation),
//     an empty context conditions on BOS (else EOS), over-long inputs are
//     cut on the left, rolling loglikelihoods in disjoint windows
//     (lm.go).
//   - Scoring: acc, acc_norm (loglikelihood over the choice's length in
//     characters, Python's len: lm-eval's rule; acc_bytes divides by UTF-8
//     bytes), exact_match with regexes_to_ignore / ignore_case /
//     ignore_punctuation / ignore_numbers, perplexity, word/byte perplexity,
//     bits per byte, acc_mutual_info, ifeval's instruction checkers (ifeval
//     package), pass@1 through a sandbox command; filters (regex with
//     group_select and fallback, take_first, …); aggregations with lm-eval's
//     standard errors (the mean's closed form, the bootstrap with lm-eval's
//     seeds for perplexity); groups averaged over their leaf tasks, weighted
//     by size, with pooled standard errors (metrics.go, harness.go,
//     results.go).
//   - Output: results.json in lm-eval's layout and samples_{task}.jsonl
//     records (op.go).
//
// Engines run token requests through the Engine interface; DecoderEngine
// provides it over any engine's key/value-cached decoder
// (backends/model/sample.Decoder): a context is fed once per row and its
// continuations scored on top of its cache, generation is greedy over rows
// in lockstep.
package eval
