package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// planBase is a small experiment over local data and the quickstart's
// tokenizer; each case of TestPlanTimeDiagnostics edits one line of it
// into a mistake, marked with "#<".
const planBase = `
MODEL = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
         "num_key_value_heads": 2, "vocab_size": 272, "max_position_embeddings": 256}
docs = get_instruction_dataset(
    path = "data.jsonl",
    adapter = "messages",
)
fmt = ChatFormat(
    name = "hf_template",
)
tok = default_tokenize(
    name = "t",
    dataset = docs,
    tokenizer = TOKENIZER,
    format = fmt,
)
mix = lm_mixture_data_config(
    components = {"t": tok},
    weights = {"t": 1},
    max_seq_len = 64,
)
cfg = SimpleSFTConfig(
    data_config = mix,
    max_seq_len = 64,
    train_batch_size = 4,
    num_train_steps = 3,
    learning_rate = 1e-3,
    lr_schedule = "linear",
    min_lr_ratio = 0.1,
    steps_per_eval = 10,
    resources = ResourceConfig(
        backend = "cpu",
        device = "cpu",
    ),
)
sft = default_sft(
    name = "s",
    sft_config = cfg,
    model_config = MODEL,
)
shell = ExecutorStep(
    name = "report",
    op = "shell/run",
    config = {
        "command": "true",
    },
)
executor_main(sft, shell)
`

type planCase struct {
	name string
	// old and new: the line edit that makes the mistake (new carries "#<"
	// on the line the diagnostic must point at).
	edits [][2]string
	// key is the text on the marked line whose column the position names.
	key string
	// wants are further substrings of the message (the attribute path and
	// the explanation).
	wants []string
	code  int
}

var planCases = []planCase{
	{"both model_config and model_name_or_path",
		[][2]string{{"    model_config = MODEL,", "    model_config = MODEL, #<"}, {"    max_seq_len = 64,\n    train_batch_size", "    model_name_or_path = \"meta-llama/Llama-3.1-8B\",\n    max_seq_len = 64,\n    train_batch_size"}},
		"model_config", []string{"default_sft.model_config: give exactly one model"}, 3},
	{"device cuda on the cpu backend",
		[][2]string{{`        device = "cpu",`, `        device = "cuda", #<`}},
		"device", []string{`ResourceConfig.device: must be one of "auto", "cpu", got "cuda"`}, 3},
	{"misspelt key in an ExecutorStep config",
		[][2]string{{`        "command": "true",`, `        "comand": "true", #<`}},
		`"comand"`, []string{`ExecutorStep.config.comand: unknown key (did you mean "command"?)`}, 3},
	{"max_seq_len above the model's positions",
		[][2]string{{"    max_seq_len = 64,\n    train_batch_size", "    max_seq_len = 512, #<\n    train_batch_size"}, {"    max_seq_len = 64,\n)", "    max_seq_len = 512,\n)"}},
		"max_seq_len", []string{"SimpleSFTConfig.max_seq_len: 512 exceeds the model's max_position_embeddings (256)"}, 3},
	{"a backend that does not exist",
		[][2]string{{`        backend = "cpu",`, `        backend = "jax", #<`}},
		"backend", []string{`ResourceConfig.backend: "jax" is not a backend; backends: cpu, gomlx`}, 3},
	{"a string for a number",
		[][2]string{{`        "command": "true",`, `        "command": "true",` + "\n    },\n)\ntasks = ExecutorStep(name = \"tasks\", op = \"tasks/generate\", config = {\n        \"train\": \"many\", #<"},
			{"executor_main(sft, shell)", "executor_main(sft, shell, tasks)"}},
		`"train"`, []string{"ExecutorStep.config.train: must be a number, got the string \"many\""}, 3},
	{"a negative learning rate",
		[][2]string{{"    learning_rate = 1e-3,", "    learning_rate = -1e-3, #<"}},
		"learning_rate", []string{"SimpleSFTConfig.learning_rate: must not be negative, got -0.001"}, 3},
	{"min_lr_ratio above one",
		[][2]string{{"    min_lr_ratio = 0.1,", "    min_lr_ratio = 1.5, #<"}},
		"min_lr_ratio", []string{"SimpleSFTConfig.min_lr_ratio: must be in [0, 1], got 1.5"}, 3},
	{"an unknown chat format",
		[][2]string{{`    name = "hf_template",`, `    name = "llama4", #<`}},
		"name", []string{`ChatFormat.name: must be one of "llama3_instruct", "chatml"`}, 3},
	{"an unknown adapter",
		[][2]string{{`    adapter = "messages",`, `    adapter = "sharegtp", #<`}},
		"adapter", []string{`get_instruction_dataset.adapter: must be one of`, `(did you mean "sharegpt"?)`}, 3},
	{"a weight for a component that does not exist",
		[][2]string{{`mix = lm_mixture_data_config(`, `mix = lm_mixture_data_config( #<`}, {`    weights = {"t": 1},`, `    weights = {"tok": 1},`}},
		"(", []string{`weight for "tok", which is not a component (did you mean "t"?)`}, 3},
	{"a misspelt schedule",
		[][2]string{{`    lr_schedule = "linear",`, `    lr_schedule = "cosin", #<`}},
		"lr_schedule", []string{`SimpleSFTConfig.lr_schedule: must be one of "linear", "cosine", "constant", got "cosin" (did you mean "cosine"?)`}, 3},
	{"both steps and epochs",
		[][2]string{{"    num_train_steps = 3,", "    num_train_steps = 3,\n    num_train_epochs = 2.0, #<"}},
		"num_train_epochs", []string{"SimpleSFTConfig.num_train_epochs: conflicts with num_train_steps"}, 3},
	{"a zero batch size",
		[][2]string{{"    train_batch_size = 4,", "    train_batch_size = 0, #<"}},
		"train_batch_size", []string{"SimpleSFTConfig.train_batch_size: must be positive, got 0"}, 3},
	{"a negative mixture weight",
		[][2]string{{`    weights = {"t": 1},`, `    weights = {"t": -1}, #<`}},
		`"t"`, []string{`lm_mixture_data_config.weights["t"]: must not be negative, got -1`}, 3},
	{"a tokenizer that does not exist",
		[][2]string{{"    tokenizer = TOKENIZER,", "    tokenizer = \"./no/such/tokenizer.json\", #<"}},
		"tokenizer", []string{"default_tokenize.tokenizer:", "no such file"}, 3},
	{"a max_seq_len that differs from the data's",
		[][2]string{{"    max_seq_len = 64,\n    train_batch_size", "    max_seq_len = 32, #<\n    train_batch_size"}},
		"max_seq_len", []string{"SimpleSFTConfig.max_seq_len: 32 differs from data.max_seq_len (64); they must match"}, 3},
	{"a negative cadence",
		[][2]string{{"    steps_per_eval = 10,", "    steps_per_eval = -1, #<"}},
		"steps_per_eval", []string{"SimpleSFTConfig.steps_per_eval: must not be negative, got -1"}, 3},
	{"LoRA over a model trained from scratch",
		[][2]string{{"    resources = ResourceConfig(", "    lora = LoraConfig(r = 4), #<\n    resources = ResourceConfig("}},
		"lora", []string{"SimpleSFTConfig.lora: LoRA trains an adapter over a pretrained model"}, 3},
	{"a LoRA dropout of one",
		[][2]string{{"    resources = ResourceConfig(", "    lora = LoraConfig(dropout = 1.0), #<\n    resources = ResourceConfig("}},
		"dropout", []string{"LoraConfig.dropout: must be in [0, 1), got 1"}, 3},
	{"an op no plugin serves",
		[][2]string{{`    op = "shell/run",`, `    op = "shell/runn", #<`}},
		"", []string{`no plugin serves op "shell/runn"`}, 4},
}

// TestPlanTimeDiagnostics: each configuration mistake is caught while
// planning — by `marin --dry-run` and by a real run alike — with exit 3, the
// script position of the value and its attribute path, before any step runs.
func TestPlanTimeDiagnostics(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	tokenizer := filepath.Join(repo, "experiments", "quickstart", "tokenizer")
	base := fmt.Sprintf("TOKENIZER = %q\n", tokenizer) + planBase
	if len(planCases) < 15 {
		t.Fatalf("only %d cases", len(planCases))
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "data.jsonl"), `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}`+"\n")
	write(t, filepath.Join(dir, "ok.star"), base)
	if r := marin(t, dir, nil, "ok.star", "--dry-run", "--prefix", filepath.Join(dir, "out")); r.code != 0 {
		t.Fatalf("the base script: exit %d: %s", r.code, r.stderr)
	}
	for i, c := range planCases {
		src := base
		for _, e := range c.edits {
			if !strings.Contains(src, e[0]) {
				t.Fatalf("%s: the base script has no %q", c.name, e[0])
			}
			src = strings.Replace(src, e[0], e[1], 1)
		}
		script := fmt.Sprintf("case%02d.star", i)
		write(t, filepath.Join(dir, script), src)
		line, col := 0, 0
		for n, l := range strings.Split(src, "\n") {
			if strings.Contains(l, "#<") {
				line, col = n+1, strings.Index(l, c.key)+1
			}
		}
		prefix := filepath.Join(dir, "out-"+script)
		for _, args := range [][]string{{script, "--dry-run", "--prefix", prefix}, {script, "--prefix", prefix}} {
			r := marin(t, dir, nil, args...)
			if r.code != c.code {
				t.Errorf("%s (%v): exit %d, want %d\n%s", c.name, args, r.code, c.code, r.stderr)
				continue
			}
			wants := c.wants
			if c.key != "" {
				wants = append([]string{fmt.Sprintf("%s:%d:%d: ", script, line, col)}, wants...)
			}
			for _, w := range wants {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%s (%v): stderr lacks %q:\n%s", c.name, args, w, r.stderr)
				}
			}
			if entries, err := os.ReadDir(prefix); err == nil && len(entries) > 0 {
				t.Errorf("%s (%v): something ran: %s holds %d entries", c.name, args, prefix, len(entries))
			}
		}
	}
}
