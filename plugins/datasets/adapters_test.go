package datasets

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Rows shaped like each dataset's real rows (column names and types from
// the dataset cards and viewers), with made-up content. Each dataset goes
// through the config get_instruction_dataset builds for it, so the
// registry's column names are exercised too. A few rows per dataset are
// unusable in the way real rows are, to show the counting.

type msg struct {
	Content string `parquet:"content"`
	Role    string `parquet:"role"`
}

type tuluRow struct {
	ID       string `parquet:"id"`
	Messages []msg  `parquet:"messages,list"`
	Source   string `parquet:"source"`
}

type smoltalkRow struct {
	Messages []msg  `parquet:"messages,list"`
	Source   string `parquet:"source"`
}

type ultrachatRow struct {
	Prompt   string `parquet:"prompt"`
	PromptID string `parquet:"prompt_id"`
	Messages []msg  `parquet:"messages,list"`
}

type turn struct {
	From  string `parquet:"from"`
	Value string `parquet:"value"`
}

type stratosRow struct {
	System        string `parquet:"system"`
	Conversations []turn `parquet:"conversations,list"`
}

type orcaRow struct {
	ID           string `parquet:"id"`
	SystemPrompt string `parquet:"system_prompt"`
	Question     string `parquet:"question"`
	Response     string `parquet:"response"`
}

type alpacaRow struct {
	Instruction string `parquet:"instruction"`
	Input       string `parquet:"input"`
	Output      string `parquet:"output"`
	Text        string `parquet:"text"`
}

type inference struct {
	ModelName    string  `parquet:"model_name"`
	CompletionID int64   `parquet:"completion_id"`
	Completion   string  `parquet:"completion"`
	PassRate     float64 `parquet:"pass_rate"`
}

type acecodeRow struct {
	ID         string      `parquet:"id"`
	Source     string      `parquet:"source"`
	Question   string      `parquet:"question"`
	TestCases  []string    `parquet:"test_cases,list"`
	Inferences []inference `parquet:"inferences,list"`
}

func um(c string) msg { return msg{Role: "user", Content: c} }
func am(c string) msg { return msg{Role: "assistant", Content: c} }
func sm(c string) msg { return msg{Role: "system", Content: c} }

type adapterCase struct {
	name  string // golden file stem
	call  string // the get_instruction_dataset call
	files func(t *testing.T, dir string)
}

var adapterCases = []adapterCase{
	{"tulu-3-sft-mixture", `get_instruction_dataset("allenai/tulu-3-sft-mixture")`, func(t *testing.T, dir string) {
		writeParquet(t, filepath.Join(dir, "data/train-00000-of-00002.parquet"), []tuluRow{
			{"oasst1_1024", []msg{um("What is a llama?"), am("A South American camelid."), um("Do they spit?"), am("Yes, when annoyed.")}, "ai2-adapt-dev/oasst1_converted"},
			{"ai2-adapt-dev/flan_v2_7", []msg{sm("You are terse."), um("2+2?"), am("4")}, "ai2-adapt-dev/flan_v2_converted"},
		})
		writeParquet(t, filepath.Join(dir, "data/train-00001-of-00002.parquet"), []tuluRow{
			{"personahub_9", []msg{um("Write a haiku about <tags> & \"quotes\"."), am("Angle brackets close\nampersand joins two halves—\nquotes hold what we say")}, "ai2-adapt-dev/personahub_ifdata"},
			{"broken_1", []msg{um("Hello?")}, "ai2-adapt-dev/oasst1_converted"},                          // ends on the user
			{"broken_2", []msg{um("Hi"), am("   ")}, "ai2-adapt-dev/oasst1_converted"},                   // empty answer
			{"broken_3", []msg{{Role: "tool", Content: "x"}, am("y")}, "ai2-adapt-dev/oasst1_converted"}, // no such role
			{"broken_4", nil, "ai2-adapt-dev/oasst1_converted"},                                          // no messages
		})
	}},
	{"smoltalk", `get_instruction_dataset("HuggingFaceTB/smoltalk")`, func(t *testing.T, dir string) {
		writeParquet(t, filepath.Join(dir, "data/all/train-00000-of-00001.parquet"), []smoltalkRow{
			{[]msg{sm("You are a helpful math tutor."), um("Explain primes."), am("Numbers with exactly two divisors.")}, "smol-magpie-ultra"},
			{[]msg{um("Rewrite: me and him went"), am("He and I went.")}, "smol-rewrite"},
		})
		// Another subset in the same repo layout is not read.
		writeParquet(t, filepath.Join(dir, "data/smol-constraints/train-00000-of-00001.parquet"), []smoltalkRow{
			{[]msg{um("not this"), am("no")}, "smol-constraints"},
		})
	}},
	{"ultrachat_200k", `get_instruction_dataset("HuggingFaceH4/ultrachat_200k", splits=["train_sft"])`, func(t *testing.T, dir string) {
		writeParquet(t, filepath.Join(dir, "data/train_sft-00000-of-00001-a2b3c4d5e6f7a8b9.parquet"), []ultrachatRow{
			{"How do bees dance?", "4f7a1c0e9b2d3a5f6c8e1b0d2a4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d", []msg{um("How do bees dance?"), am("With a waggle dance that points to food."), um("Why?"), am("To share where nectar is.")}},
		})
		writeParquet(t, filepath.Join(dir, "data/test_sft-00000-of-00001-0f1e2d3c4b5a6978.parquet"), []ultrachatRow{
			{"held out", "00", []msg{um("held out"), am("not read")}},
		})
	}},
	{"OpenHermes-2.5", `get_instruction_dataset("teknium/OpenHermes-2.5")`, func(t *testing.T, dir string) {
		// A JSON array, one conversation per element, many null columns.
		writeFile(t, filepath.Join(dir, "openhermes2_5.json"), []byte(`[
  {"custom_instruction": null, "topic": null, "model_name": null, "model": null, "skip_prompt_formatting": false, "category": "orca",
   "conversations": [{"from": "system", "value": "You are an AI assistant.", "weight": null},
                     {"from": "human", "value": "Summarise: the cat sat.", "weight": null},
                     {"from": "gpt", "value": "A cat sat.", "weight": null}],
   "views": null, "language": null, "id": null, "title": null, "idx": null, "hash": null, "avatarUrl": null, "system_prompt": null, "source": "airoboros2.2"},
  {"conversations": [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Teal."}], "source": "CamelAI", "category": null, "id": "d5d9a0"},
  {"conversations": [{"from": "human", "value": "Only a question"}], "source": "glaive-code-assist"},
  {"conversations": [{"from": "narrator", "value": "?"}, {"from": "gpt", "value": "!"}], "source": "x"}
]
`))
	}},
	{"Bespoke-Stratos-17k", `get_instruction_dataset("bespokelabs/Bespoke-Stratos-17k")`, func(t *testing.T, dir string) {
		writeParquet(t, filepath.Join(dir, "data/train-00000-of-00001.parquet"), []stratosRow{
			{"Your role as an assistant involves thoroughly exploring questions...", []turn{{"user", "Return your final response within \\boxed{}. What is 3*4?"}, {"assistant", "<|begin_of_thought|>\n3*4=12\n<|end_of_thought|>\n\\boxed{12}"}}},
		})
	}},
	{"OpenOrca", `get_instruction_dataset("Open-Orca/OpenOrca")`, func(t *testing.T, dir string) {
		writeParquet(t, filepath.Join(dir, "1M-GPT4-Augmented.parquet"), []orcaRow{
			{"niv.242684", "", "You will be given a definition of a task first, then some input of the task.\nTranslate to French: cheese", "fromage"},
			{"flan.564327", "You are an AI assistant. You will be given a task. You must generate a detailed and long answer.", "Write a sentence about rain.", "Rain fell softly on the roofs."},
			{"cot.86217", "You are a helpful assistant.", "Is the sky green?", ""},
		})
		writeParquet(t, filepath.Join(dir, "3_5M-GPT3_5-Augmented.parquet"), []orcaRow{
			{"t0.1234", "", "Answer yes or no: is water wet?", "yes"},
		})
	}},
	{"alpaca", `get_instruction_dataset("tatsu-lab/alpaca")`, func(t *testing.T, dir string) {
		writeParquet(t, filepath.Join(dir, "data/train-00000-of-00001-a09b74b3ef9c3b56.parquet"), []alpacaRow{
			{"Give three tips for staying healthy.", "", "1. Eat well.\n2. Sleep.\n3. Move.", "Below is an instruction..."},
			{"Translate the sentence to Spanish.", "The cat is black.", "El gato es negro.", "Below is an instruction..."},
			{"Classify the input.", "ambiguous", "", "Below is an instruction..."},
		})
	}},
	{"databricks-dolly-15k", `get_instruction_dataset("databricks/databricks-dolly-15k")`, func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "databricks-dolly-15k.jsonl"), jsonLines(t,
			map[string]any{"instruction": "When did Virgin Australia start operating?", "context": "Virgin Australia commenced services on 31 August 2000.", "response": "On 31 August 2000.", "category": "closed_qa"},
			map[string]any{"instruction": "Which is a species of fish? Tope or Rope", "context": "", "response": "Tope", "category": "classification"},
			map[string]any{"instruction": 42, "context": "", "response": "numbers are not prompts", "category": "open_qa"},
		))
	}},
	{"AceCode-89K", `get_instruction_dataset("TIGER-Lab/AceCode-89K")`, func(t *testing.T, dir string) {
		writeParquet(t, filepath.Join(dir, "data/train-00000-of-00001.parquet"), []acecodeRow{
			{"oss_0", "oss", "Write add(a, b).", []string{"assert add(1, 2) == 3"}, []inference{
				{"qwen", 0, "def add(a, b):\n    return a - b", 0.0},
				{"qwen", 1, "def add(a, b):\n    return a + b", 1.0},
				{"qwen", 2, "def add(a,b): return a+b  # ok", 1.0},
			}},
			{"oss_1", "oss", "Write nothing.", []string{}, nil},
		})
	}},
	{"natural_reasoning", `get_instruction_dataset("facebook/natural_reasoning")`, func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "natural_reasoning.jsonl"), jsonLines(t,
			map[string]any{"question": "Why is the sky blue?", "reference_answer": "Rayleigh scattering", "responses": []any{map[string]any{"response_model": "Llama-3.3-70B-Instruct", "response": "Shorter wavelengths scatter more."}}},
			map[string]any{"question": "Empty?", "reference_answer": "n/a", "responses": []any{}},
		))
	}},
	{"dolphin-r1-reasoning", `get_instruction_dataset("cognitivecomputations/dolphin-r1-reasoning")`, func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "dolphin-r1-reasoning-deepseek.jsonl"), jsonLines(t,
			map[string]any{"messages": []any{map[string]any{"role": "user", "content": "Solve x+1=3."}}, "model": "deepseek-ai/DeepSeek-R1", "reasoning": "<think>subtract</think>", "answer": "x = 2"},
			map[string]any{"messages": []any{map[string]any{"role": "system", "content": "Think."}, map[string]any{"role": "user", "content": "Hi"}}, "model": "deepseek-ai/DeepSeek-R1", "reasoning": "", "answer": "Hello"},
		))
		writeFile(t, filepath.Join(dir, "dolphin-r1-reasoning-flash.jsonl"), jsonLines(t,
			map[string]any{"messages": []any{map[string]any{"role": "user", "content": "Capital of Peru?"}}, "model": "gemini-2.0-flash-thinking", "reasoning": "...", "answer": "Lima"},
			map[string]any{"messages": []any{map[string]any{"role": "user", "content": "No answer"}}, "model": "gemini", "reasoning": "...", "answer": nil},
		))
		// The nonreasoning subset lives beside them and is not read.
		writeFile(t, filepath.Join(dir, "dolphin-r1-nonreasoning.jsonl"), jsonLines(t,
			map[string]any{"messages": []any{map[string]any{"role": "user", "content": "x"}, map[string]any{"role": "assistant", "content": "y"}}},
		))
	}},
	{"MetaMathQA", `get_instruction_dataset("meta-math/MetaMathQA")`, func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "MetaMathQA-395K.json"), []byte(`[{"query": "What is 7*6?", "response": "7*6 = 42. The answer is: 42", "type": "GSM_Rephrased", "original_question": "7 times 6?"},
{"query": "Half of 10?", "response": "5. The answer is: 5", "type": "MATH_AnsAug", "original_question": "10/2"}]`))
	}},
}

func TestAdapterGoldens(t *testing.T) {
	for _, c := range adapterCases {
		t.Run(c.name, func(t *testing.T) {
			_, cfg := registrySteps(t, c.call)
			dir := t.TempDir()
			c.files(t, dir)
			// What dataset/download writes beside the files; rows get its date.
			writeFile(t, filepath.Join(dir, manifestFile), []byte(`{"commit_date": "2024-11-21T16:00:00Z"}`))
			out, rep, err := runTransform(t, cfg, "file://"+dir)
			if err != nil {
				t.Fatal(err)
			}
			got := readOutput(t, out)
			checkGolden(t, c.name+".golden", got)
			if !strings.Contains(got, `"added":"2024-11-21T16:00:00Z"`) {
				t.Error("rows do not carry the commit date as added")
			}
			// Reruns are byte-identical.
			out2, _, err := runTransform(t, cfg, "file://"+dir)
			if err != nil {
				t.Fatal(err)
			}
			if again := readOutput(t, out2); again != got {
				t.Error("a second run gave different output")
			}
			if len(rep.progress) == 0 || !strings.Contains(rep.progress[len(rep.progress)-1], "rows/s") || !strings.Contains(rep.progress[len(rep.progress)-1], "MB/s") {
				t.Errorf("progress: %v", rep.progress)
			}
		})
	}
	_ = time.Second
}
