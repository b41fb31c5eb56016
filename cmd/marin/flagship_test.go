package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyModel replaces the 8B model of the flagship experiments in tests.
const tinyModel = `{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
    "num_key_value_heads": 2, "vocab_size": 272, "max_position_embeddings": 128}`

// shrink edits a flagship script into a tiny run over local data, leaving
// its resources line as shipped.
func shrink(t *testing.T, src string, edits [][2]string) string {
	t.Helper()
	for _, e := range edits {
		if !strings.Contains(src, e[0]) {
			t.Fatalf("the script no longer has %q", e[0])
		}
		src = strings.Replace(src, e[0], e[1], 1)
	}
	if !strings.Contains(src, `resources = JaxDistributedConfig(backend = "gomlx"`) {
		t.Fatal("the script's resources line changed")
	}
	return src
}

// TestFlagshipsTrainOnGoMLXFromTheirResourcesLine: exp606 and exp808, with
// a tiny model and local data swapped in, plan, validate and train three
// steps on the gomlx backend their own JaxDistributedConfig line asks for.
func TestFlagshipsTrainOnGoMLXFromTheirResourcesLine(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	tokenizer := filepath.Join(repo, "experiments", "quickstart", "tokenizer")
	common := [][2]string{
		{"TOKENIZER = llama3_instruct_tokenizer", fmt.Sprintf("TOKENIZER = %q\nTINY = %s", tokenizer, tinyModel)},
		{"FORMAT = llama3_instruct_chat_format", `FORMAT = ChatFormat(name = "hf_template")`},
		{`    model_name_or_path = "meta-llama/Llama-3.1-8B",` + "\n", ""},
	}
	scripts := map[string][][2]string{
		"exp606_sft.star": append(common,
			[2]string{`get_instruction_dataset(dataset_name = "allenai/tulu-3-sft-mixture")`, `get_instruction_dataset(path = "data/tulu.jsonl")`},
			[2]string{"TRAIN_BATCH_SIZE = 128", "TRAIN_BATCH_SIZE = 4"},
			[2]string{"MAX_SEQ_LEN = 4096", "MAX_SEQ_LEN = 64"},
			[2]string{"NUM_TRAIN_STEPS = NUM_TRAIN_TOKENS // (TRAIN_BATCH_SIZE * MAX_SEQ_LEN) * 3", "NUM_TRAIN_STEPS = 3"},
			[2]string{"    sft_config = sft_config_single,", "    sft_config = sft_config_single,\n    model_config = TINY,"},
		),
		"exp808_sft_mixture.star": append(common,
			[2]string{"get_instruction_dataset(dataset_name = dataset_name)", `get_instruction_dataset(path = "data/" + short + ".jsonl")`},
			[2]string{"    max_seq_len = 4096,\n)", "    max_seq_len = 64,\n)"},
			[2]string{"    max_seq_len = 4096,\n    train_batch_size = 128,\n    num_train_steps = 19086,", "    max_seq_len = 64,\n    train_batch_size = 4,\n    num_train_steps = 3,"},
			[2]string{"    sft_config = sft_config_mixture,", "    sft_config = sft_config_mixture,\n    model_config = TINY,"},
		),
	}
	for name, edits := range scripts {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			raw, err := os.ReadFile(filepath.Join(repo, "experiments", name))
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, name), shrink(t, string(raw), edits))
			var rows strings.Builder
			for i := 0; i < 40; i++ {
				fmt.Fprintf(&rows, `{"messages": [{"role": "user", "content": "add %d and %d"}, {"role": "assistant", "content": "%d"}]}`+"\n", i, i+1, 2*i+1)
			}
			for _, d := range []string{"tulu", "tulu_3_sft_mixture", "openthoughts_114k_math", "verifiable_math_problems", "acecode_89k",
				"smoltalk", "natural_reasoning", "dolphin_r1_nonreasoning", "dolphin_r1_reasoning", "bespoke_stratos_17k"} {
				write(t, filepath.Join(dir, "data", d+".jsonl"), rows.String())
			}
			prefix := filepath.Join(dir, "out")
			r := marin(t, dir, nil, name, "--dry-run", "--prefix", prefix)
			if r.code != 0 {
				t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
			}
			mustContain(t, r.stdout, "gomlx/train")
			r = marin(t, dir, nil, name, "--prefix", prefix)
			if r.code != 0 {
				t.Fatalf("run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			infos, _ := filepath.Glob(filepath.Join(prefix, "checkpoints", "*", ".executor_info"))
			if len(infos) != 1 {
				t.Fatalf("%d training steps ran", len(infos))
			}
			var info struct {
				Op     string `json:"op"`
				Plugin struct {
					Name string `json:"name"`
				} `json:"plugin"`
			}
			data, _ := os.ReadFile(infos[0])
			if err := json.Unmarshal(data, &info); err != nil {
				t.Fatal(err)
			}
			if info.Plugin.Name != "gomlx" {
				t.Errorf("the training step ran on plugin %q (op %s), want gomlx", info.Plugin.Name, info.Op)
			}
			metrics, err := os.ReadFile(filepath.Join(filepath.Dir(infos[0]), "metrics.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(metrics), `"step"`); n < 3 {
				t.Errorf("metrics.jsonl has %d step rows, want 3:\n%s", n, metrics)
			}
		})
	}
}
