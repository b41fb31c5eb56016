package starlib

// instructionDatasets is the registry behind get_instruction_dataset, with the
// revisions Python Marin pins. Sources:
//   - marin-community/marin experiments/instruction_datasets.py (the 17-dataset
//     registry: hf_dataset_id, revision, filetype, subsets, splits,
//     metadata_columns, adapter_name)
//   - marin-community/marin marin/transform/conversation/adapters.py (the
//     registered TransformAdapter per dataset: format, columns, role values)
//   - marin-community/marin marin/transform/conversation/transform_conversation.py
//   - marin-community/marin experiments/posttrain/instruction_datasets.py (later
//     registry; same revisions except AceCode, see that entry)
//   - marin-community/marin experiments/exp808_sft_mixture.py (document counts)
//   - Hugging Face dataset cards and public scripts pinning the four datasets
//     Marin does not register (OpenOrca, alpaca, dolly, ultrachat_200k); each
//     entry says where its revision was read.
//
// Conventions of this table:
//   - ID is the key get_instruction_dataset takes (Marin's registry key). It is
//     also the Hugging Face repo to download unless Fields["repo"] names another
//     (Marin's two dolphin-r1 entries share the repo cognitivecomputations/dolphin-r1).
//   - Revision is copied exactly as Marin pins it (Marin mostly pins 7-character
//     commit prefixes); entries Marin lacks carry the full commit hash found.
//   - FileGlobs are relative to the repo root at Revision and select the files
//     of the default Subsets/Splits. For Hugging Face parquet layouts the split
//     name is the file-name prefix (data/{split}-NNNNN-of-NNNNN[-hash].parquet).
//   - Fields: adapter column names ("messages", "role", "content", "instruction",
//     "input", "context", "system", "response"), role renames as
//     "role.<source value>": "<openai role>", "content" for the key inside a
//     list-of-dicts response column, "filter_on" for the key used to pick the best
//     of several responses, and "metadata" for Marin's metadata_columns
//     (comma-separated; copied into each row's metadata).
//   - Adapter is one of: messages, sharegpt, instruction_response,
//     instruct_column_response, instruct_msg_response, orca, alpaca, dolly.
//   - Entries are sorted by ID in byte order (upper case first).
//   - DocCount is the row count of the default subsets/splits (exp808's mixture
//     weights where exp808 uses the dataset), 0 if unknown.
var instructionDatasets = []instructionDataset{
	{
		// Registry key differs from the repo (GeneralReasoning/GeneralThought-195K).
		ID:        "GeneralReasoning/GeneralThought-195K-modelanswer",
		Name:      "GeneralThought-195K-modelanswer",
		Revision:  "64f7cb8",
		FileType:  "jsonl",
		FileGlobs: []string{"*.jsonl"}, // file layout not verified
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "instruction_response",
		Fields: map[string]string{
			"repo":        "GeneralReasoning/GeneralThought-195K",
			"instruction": "question",
			"response":    "model_answer",
			"metadata":    "question_id,question_url,reference_answer,model_name,question_source,task",
		},
		DocCount: 0,
	},
	{
		// Registry key differs from the repo (GeneralReasoning/GeneralThought-195K).
		ID:        "GeneralReasoning/GeneralThought-195K-modelreasoning",
		Name:      "GeneralThought-195K-modelreasoning",
		Revision:  "64f7cb8",
		FileType:  "jsonl",
		FileGlobs: []string{"*.jsonl"}, // file layout not verified
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "instruction_response",
		Fields: map[string]string{
			"repo":        "GeneralReasoning/GeneralThought-195K",
			"instruction": "question",
			"response":    "model_reasoning",
			"metadata":    "question_id,question_url,reference_answer,model_name,question_source,task",
		},
		DocCount: 0,
	},
	{
		// Not in Marin's registry. Revision 8049631c405ae6576f93f445c6b8166f76f5505a
		// is the "Update README.md" commit shown on the card and pinned (with
		// file hashes) in several public scripts. Splits: train_sft, test_sft,
		// train_gen, test_gen (207865 / 23110 / 256032 / 28304 rows).
		ID:        "HuggingFaceH4/ultrachat_200k",
		Name:      "ultrachat_200k",
		Revision:  "8049631c405ae6576f93f445c6b8166f76f5505a",
		FileType:  "parquet",
		FileGlobs: []string{"data/train_sft-*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train_sft"},
		Adapter:   "messages",
		Fields: map[string]string{
			"messages":       "messages",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "prompt_id",
		},
		DocCount: 207865,
	},
	{
		// Subset "all" lives under data/all/ (train-0000N-of-00009.parquet,
		// test-00000-of-00001.parquet).
		ID:        "HuggingFaceTB/smoltalk",
		Name:      "smoltalk",
		Revision:  "2c849df",
		FileType:  "parquet",
		FileGlobs: []string{"data/all/train-*.parquet"},
		Subsets:   []string{"all"},
		Splits:    []string{"train"},
		Adapter:   "messages",
		Fields: map[string]string{
			"messages":       "messages",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "source",
		},
		DocCount: 1043917,
	},
	{
		// Not in Marin's registry. Revision e9c87b4abb2609913751f9b26553fdb9c061796c
		// appears as the datasets-cache commit directory and as a pinned revision
		// (with file 1M-GPT4-Augmented.parquet) in public scripts. Files:
		// 1M-GPT4-Augmented.parquet and 3_5M-GPT3_5-Augmented.parquet.
		ID:        "Open-Orca/OpenOrca",
		Name:      "OpenOrca",
		Revision:  "e9c87b4abb2609913751f9b26553fdb9c061796c",
		FileType:  "parquet",
		FileGlobs: []string{"*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "orca",
		Fields: map[string]string{
			"system":      "system_prompt",
			"instruction": "question",
			"response":    "response",
			"metadata":    "id",
		},
		DocCount: 4233923,
	},
	{
		ID:        "PrimeIntellect/verifiable-math-problems",
		Name:      "verifiable-math-problems",
		Revision:  "2ad7c92",
		FileType:  "parquet",
		FileGlobs: []string{"data/train-*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "instruction_response",
		Fields: map[string]string{
			"instruction": "prompt",
			"response":    "gold_standard_solution",
			"metadata":    "source,task_type,problem_id",
		},
		DocCount: 777457,
	},
	{
		// Marin instruction_response with filter_on_key: "inferences" is a list of
		// {completion, pass_rate, ...}; the completion with the highest pass_rate
		// is the response. Marin's later registry
		// (experiments/posttrain/instruction_datasets.py) pins
		// 13216309a9f6cb40b60cb1a9750071efeac414ad instead; exp808 ran on 0361e95.
		ID:        "TIGER-Lab/AceCode-89K",
		Name:      "AceCode-89K",
		Revision:  "0361e95",
		FileType:  "parquet",
		FileGlobs: []string{"data/train-*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "instruction_response",
		Fields: map[string]string{
			"instruction": "question",
			"response":    "inferences",
			"content":     "completion",
			"filter_on":   "pass_rate",
			"metadata":    "id,source",
		},
		DocCount: 87149,
	},
	{
		ID:        "allenai/tulu-3-sft-mixture",
		Name:      "tulu-3-sft-mixture",
		Revision:  "55e9fd6",
		FileType:  "parquet",
		FileGlobs: []string{"data/train-*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "messages",
		Fields: map[string]string{
			"messages":       "messages",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "dataset,id",
		},
		DocCount: 939343,
	},
	{
		ID:        "allenai/tulu-v2-sft-mixture",
		Name:      "tulu-v2-sft-mixture",
		Revision:  "6248b17",
		FileType:  "parquet",
		FileGlobs: []string{"data/train-*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "messages",
		Fields: map[string]string{
			"messages":       "messages",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "dataset,id",
		},
		DocCount: 326154,
	},
	{
		ID:        "allenai/tulu-v2-sft-mixture-olmo-4096",
		Name:      "tulu-v2-sft-mixture-olmo-4096",
		Revision:  "7a7c388",
		FileType:  "jsonl",
		FileGlobs: []string{"*.jsonl"}, // file layout not verified
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "messages",
		Fields: map[string]string{
			"messages":       "messages",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "dataset,id",
		},
		DocCount: 0,
	},
	{
		// Marin's multi-turn adapter reads only "conversations" and ignores the
		// "system" column; it sets no system role value.
		ID:        "bespokelabs/Bespoke-Stratos-17k",
		Name:      "Bespoke-Stratos-17k",
		Revision:  "9e9adba",
		FileType:  "parquet",
		FileGlobs: []string{"data/train-*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "sharegpt",
		Fields: map[string]string{
			"messages":       "conversations",
			"role":           "from",
			"content":        "value",
			"role.user":      "user",
			"role.assistant": "assistant",
		},
		DocCount: 16710,
	},
	{
		// Registry key differs from the repo: subset "nonreasoning" of
		// cognitivecomputations/dolphin-r1. File name follows the repo's
		// dolphin-r1-<subset>.jsonl pattern (reasoning-deepseek seen in a URL).
		ID:        "cognitivecomputations/dolphin-r1-nonreasoning",
		Name:      "dolphin-r1-nonreasoning",
		Revision:  "f6ac651",
		FileType:  "jsonl",
		FileGlobs: []string{"dolphin-r1-nonreasoning.jsonl"},
		Subsets:   []string{"nonreasoning"},
		Splits:    []string{"train"},
		Adapter:   "messages",
		Fields: map[string]string{
			"repo":           "cognitivecomputations/dolphin-r1",
			"messages":       "messages",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "score,refusal,compliance_rating,overall_quality",
		},
		DocCount: 214318,
	},
	{
		// Subsets "reasoning-deepseek" and "reasoning-flash" of
		// cognitivecomputations/dolphin-r1. The instruction column holds a
		// one-message list; rows with more than one message, a message without
		// "role", or a null answer are dropped (Marin INSTRUCT_MSG_RESPONSE).
		// dolphin-r1-reasoning-deepseek.jsonl was seen in a resolve URL; the
		// flash file name follows the same pattern.
		ID:       "cognitivecomputations/dolphin-r1-reasoning",
		Name:     "dolphin-r1-reasoning",
		Revision: "f6ac651",
		FileType: "jsonl",
		FileGlobs: []string{
			"dolphin-r1-reasoning-deepseek.jsonl",
			"dolphin-r1-reasoning-flash.jsonl",
		},
		Subsets: []string{"reasoning-deepseek", "reasoning-flash"},
		Splits:  []string{"train"},
		Adapter: "instruct_msg_response",
		Fields: map[string]string{
			"repo":           "cognitivecomputations/dolphin-r1",
			"instruction":    "messages",
			"response":       "answer",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "score,refusal,compliance_rating,overall_quality",
		},
		DocCount: 585418,
	},
	{
		// Not in Marin's registry. Revision: bdd27f4d94b9c1f951818a7da7fd7aeea5dbff1a,
		// pinned with load_dataset(..., revision=...) in public scripts and
		// recorded as the Hub API sha of main (repo last modified 2023-06-30).
		// "context" is an empty string (not null) when absent.
		ID:        "databricks/databricks-dolly-15k",
		Name:      "databricks-dolly-15k",
		Revision:  "bdd27f4d94b9c1f951818a7da7fd7aeea5dbff1a",
		FileType:  "jsonl",
		FileGlobs: []string{"databricks-dolly-15k.jsonl"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "dolly",
		Fields: map[string]string{
			"instruction": "instruction",
			"context":     "context",
			"response":    "response",
			"metadata":    "category",
		},
		DocCount: 15011,
	},
	{
		// Marin INSTRUCT_COLUMN_RESPONSE: the response is responses[0]["response"].
		// Marin's filetype is jsonl; the file name is not verified.
		ID:        "facebook/natural_reasoning",
		Name:      "natural_reasoning",
		Revision:  "99eea5d",
		FileType:  "jsonl",
		FileGlobs: []string{"*.jsonl"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "instruct_column_response",
		Fields: map[string]string{
			"instruction": "question",
			"response":    "responses",
			"content":     "response",
			"metadata":    "reference_answer",
		},
		DocCount: 1145824,
	},
	{
		ID:        "meta-math/MetaMathQA",
		Name:      "MetaMathQA",
		Revision:  "aa4f34d",
		FileType:  "json",
		FileGlobs: []string{"MetaMathQA-395K.json"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "instruction_response",
		Fields: map[string]string{
			"instruction": "query",
			"response":    "response",
			"metadata":    "type",
		},
		DocCount: 395000,
	},
	{
		ID:        "open-r1/OpenThoughts-114k-math",
		Name:      "OpenThoughts-114k-math",
		Revision:  "2db609d",
		FileType:  "parquet",
		FileGlobs: []string{"data/train-*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "messages",
		Fields: map[string]string{
			"messages":       "messages",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "system,source,generated_token_count,correct",
		},
		DocCount: 89120,
	},
	{
		ID:        "openbmb/UltraInteract_sft",
		Name:      "UltraInteract_sft",
		Revision:  "2b102e4",
		FileType:  "parquet",
		FileGlobs: []string{"*.parquet"}, // e.g. 0000_sft.parquet
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "instruction_response",
		Fields: map[string]string{
			"instruction": "instruction",
			"response":    "response",
			"metadata":    "task,dataset",
		},
		DocCount: 0,
	},
	{
		ID:        "sherryy/tulu-3-sft-personas-instruction-following-expanded",
		Name:      "tulu-3-sft-personas-instruction-following-expanded",
		Revision:  "79ab2c4",
		FileType:  "parquet",
		FileGlobs: []string{"data/train-*.parquet"}, // file layout not verified
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "messages",
		Fields: map[string]string{
			"messages":       "messages",
			"role":           "role",
			"content":        "content",
			"role.user":      "user",
			"role.assistant": "assistant",
			"role.system":    "system",
			"metadata":       "dataset,id",
		},
		DocCount: 0,
	},
	{
		// Not in Marin's registry. Revision dce01c9b08f87459cf36a430d809084718273017
		// appears as the datasets-cache commit directory and as a pinned revision
		// of data/train-00000-of-00001-a09b74b3ef9c3b56.parquet in public scripts.
		// "input" is an empty string when absent.
		ID:        "tatsu-lab/alpaca",
		Name:      "alpaca",
		Revision:  "dce01c9b08f87459cf36a430d809084718273017",
		FileType:  "parquet",
		FileGlobs: []string{"data/train-*.parquet"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "alpaca",
		Fields: map[string]string{
			"instruction": "instruction",
			"input":       "input",
			"response":    "output",
		},
		DocCount: 52002,
	},
	{
		// ShareGPT shape. Marin pins the single file openhermes2_5.json (a JSON
		// array, 1001551 conversations).
		ID:        "teknium/OpenHermes-2.5",
		Name:      "OpenHermes-2.5",
		Revision:  "b820378",
		FileType:  "json",
		FileGlobs: []string{"openhermes2_5.json"},
		Subsets:   []string{"default"},
		Splits:    []string{"train"},
		Adapter:   "sharegpt",
		Fields: map[string]string{
			"messages":    "conversations",
			"role":        "from",
			"content":     "value",
			"role.human":  "user",
			"role.gpt":    "assistant",
			"role.system": "system",
			"metadata":    "id,category,source",
		},
		DocCount: 1001551,
	},
}
