// Package datasets is the built-in "datasets" plugin, the ops behind
// get_instruction_dataset:
//
//   - dataset/download copies the files of a Hugging Face hub repo at a
//     pinned commit into the step's output, laid out as in the repo
//     (resumable, verified against the hub's sizes and hashes; see
//     plugins/hfhub), plus .marin_download.json recording the commit.
//   - dataset/transform reads parquet, jsonl, jsonl.gz or JSON-array files
//     (a downloaded raw directory, a local path or any storage URL), turns
//     each row into a conversation with an adapter, and writes the documents
//     format of plugins/documents: {out}/{subset}/{split}/shard_NNNNN.jsonl.gz
//     and stats.json. Rows an adapter cannot use are counted per reason in
//     stats.json, with example locations; a file that cannot be parsed fails
//     the step naming the file and line.
//
// Adapters (config "adapter", columns in "fields"): messages (multi-turn
// with role renaming), sharegpt (from/value), instruction_response,
// instruct_column_response, instruct_msg_response, orca (system prompt +
// question + response), alpaca (instruction + input + output), dolly
// (instruction + context + response).
//
// eval/docs fetches the documents of evaluation tasks (evaluate and
// default_sft_eval in starlib; see evaldocs.go).
package datasets

import (
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
)

// Version is the plugin's version, recorded in .executor_info.
const Version = "1.0.0"

// transformSchema is transformConfig's, with the adapters this plugin has.
func transformSchema() *schema.Field {
	s := schema.MustFromStruct(transformConfig{})
	s.Lookup("adapter").Enum = append([]string(nil), adapterNames...)
	return s
}

// Plugin returns the built-in datasets plugin.
func Plugin() *sdk.Plugin {
	return &sdk.Plugin{
		Name: "datasets", Kind: sdk.KindDataset, Version: Version,
		Ops: map[string]sdk.Op{
			"dataset/download": {
				Description: "download a Hugging Face hub repo's files at a pinned commit (HF_ENDPOINT, HF_TOKEN)",
				Schema:      schema.MustFromStruct(downloadConfig{}),
				Run:         download,
			},
			"dataset/transform": {
				Description: "convert parquet/jsonl/json rows to documents (conversations) with an adapter",
				Schema:      transformSchema(),
				Run:         transform,
			},
			EvalDocsOp: {
				Description: "fetch evaluation tasks' documents (hub dataset at a pinned revision, or a data directory) as {task}/{split}.jsonl.gz",
				Schema:      schema.MustFromStruct(evalDocsConfig{}),
				Plan:        planEvalDocs,
				Run:         evalDocs,
			},
		},
	}
}
