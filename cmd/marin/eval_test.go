package main

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/evaltasks"
	"github.com/marin-go/marin/plugins/hfhub/hubtest"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/starlib"
)

// tinyEvalModel exports a random 1-layer Llama with the quickstart's
// byte-level tokenizer (which has a chat template) to dir.
func tinyEvalModel(t *testing.T, repo, dir string) {
	t.Helper()
	cfg := llama.Config{HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 1, NumAttentionHeads: 2, NumKeyValueHeads: 1,
		VocabSize: 272, MaxPositionEmbeddings: 2048, RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: true}
	p, err := weights.Init(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := weights.ExportHF(dir, p, weights.ExportOptions{TokenizerDir: filepath.Join(repo, "experiments", "quickstart", "tokenizer")}); err != nil {
		t.Fatal(err)
	}
}

type logReporter struct{ t *testing.T }

func (r logReporter) Progress(done, total float64, unit, msg string) {}
func (r logReporter) Log(level, msg string, kv ...string)            { r.t.Logf("%s %s %v", level, msg, kv) }

// runPlanInProcess runs every step of a plan in order through the built-in
// plugins' ops, in this process.
func runPlanInProcess(t *testing.T, plan *graph.Plan) {
	t.Helper()
	ops := map[string]sdk.Op{}
	for _, p := range builtinPlugins() {
		for name, op := range p.Ops {
			ops[name] = op
		}
	}
	for _, n := range plan.Steps {
		op, ok := ops[executor.DispatchOp(n.Step.Op, n.Step.Backend, "", "cpu")]
		if !ok {
			t.Fatalf("%s: no built-in op %s", n.Step.Name, n.Step.Op)
		}
		raw, err := json.Marshal(n.Config)
		if err != nil {
			t.Fatal(err)
		}
		req := &sdk.Request{Op: n.Step.Op, StepName: n.Step.Name, Config: n.Config, ConfigJSON: raw, OutputPath: n.OutputPath, Prefix: plan.Prefix, Attempt: 1}
		if err := op.Run(context.Background(), req, logReporter{t}); err != nil {
			t.Fatalf("%s (%s): %v", n.Step.Name, n.Step.Op, err)
		}
	}
}

func readSamples(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// TestEvalTasksEndToEndThroughFakeHub evaluates a tiny model on every
// shipped task — and on a script task of the one output type no shipped
// task has (loglikelihood_rolling) — from a fake Hugging Face hub holding
// the tasks' files at their pinned revisions: evaluate() builds the steps,
// eval/docs fetches and reads the parquet/jsonl/csv files, eval/harness
// runs multiple_choice, loglikelihood, loglikelihood_rolling and
// generate_until on the CPU engine (humaneval through a sandbox command,
// the chat-template path on two tasks), and every results.json and sample
// file is checked.
func TestEvalTasksEndToEndThroughFakeHub(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates every shipped task")
	}
	repo, _ := filepath.Abs("../..")
	hub := hubtest.New(fixtureRepos(t)...)
	defer hub.Close()
	t.Setenv("HF_ENDPOINT", hub.URL())
	t.Setenv("HF_TOKEN", "")
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny")
	tinyEvalModel(t, repo, model)
	c, err := evaltasks.Registry()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range c.TopLevel() {
		if n != "humaneval" {
			names = append(names, `"`+n+`"`)
		}
	}
	script := filepath.Join(dir, "eval.star")
	write(t, script, `
MODEL = "`+model+`"
wikitext = EvalTask(
    task = "wikitext_rolling",
    dataset_path = "EleutherAI/wikitext_document_level",
    dataset_name = "wikitext-2-raw-v1",
    revision = "647234772b9554e208af6c826f23b99e3cac88c8",
    data_files = {"test": ["{dataset_name}/test-*.parquet"]},
    test_split = "test",
    output_type = "loglikelihood_rolling",
    doc_to_target = "{{page}}",
)
plain = evaluate(model = MODEL, tasks = [`+strings.Join(names, ", ")+`, wikitext], limit = 2, name = "tiny")
chat = evaluate(model = MODEL, tasks = ["mmlu_anatomy", "gsm8k_cot"], limit = 1, apply_chat_template = True, name = "tiny_chat")
code = evaluate(model = MODEL, tasks = ["humaneval"], code_sandbox = ["/usr/bin/python3"], name = "tiny_code")
short_gen = EvalTask(
    task = "lambada_short_gen",
    dataset_path = "EleutherAI/lambada_openai",
    revision = "900124bf3b8235c6daf21033af9948b3f07346c4",
    data_files = {"test": ["data/lambada_test.jsonl"]},
    test_split = "test",
    output_type = "generate_until",
    doc_to_text = "{{text.split(' ')[:-1]|join(' ')}}",
    doc_to_target = "{{' '+text.split(' ')[-1]}}",
    generation_kwargs = {"until": ["."], "max_gen_toks": 6},
)
gomlx = evaluate(model = MODEL, tasks = ["arc_easy", "lambada_openai", short_gen, wikitext], limit = 2, name = "tiny_gomlx",
                 resources = ResourceConfig(backend = "gomlx"))
cpu_gen = evaluate(model = MODEL, tasks = [short_gen], limit = 2, name = "tiny")
executor_main(plain, chat, code, gomlx, cpu_gen)
`)
	res, err := starlib.ExecFile(script, nil)
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, "out")
	plan, err := graph.Build(prefix, res.Roots)
	if err != nil {
		t.Fatal(err)
	}
	runPlanInProcess(t, plan)

	seen := map[string]bool{}
	for _, n := range plan.Steps {
		if n.Step.Op != eval.OpName {
			continue
		}
		out, err := sdk.LocalPath(n.OutputPath)
		if err != nil {
			t.Fatal(err)
		}
		r, err := eval.ReadResults(context.Background(), n.OutputPath)
		if err != nil {
			t.Fatalf("%s: %v", n.Step.Name, err)
		}
		var suite evaltasks.Suite
		b, _ := json.Marshal(n.Config["suite"])
		if err := json.Unmarshal(b, &suite); err != nil {
			t.Fatal(err)
		}
		for _, task := range suite.Tasks {
			seen[task.Task] = true
			tm, ok := r.Results[task.Task]
			if !ok {
				t.Errorf("%s: no results for %s", n.Step.Name, task.Task)
				continue
			}
			var want []string
			switch {
			case task.ProcessResults == "ifeval":
				want = []string{"prompt_level_strict_acc,none", "inst_level_strict_acc,none", "prompt_level_loose_acc,none", "inst_level_loose_acc,none"}
			case len(task.FilterList) > 0: // gsm8k_cot's strict-match and flexible-extract, bbh_cot_fewshot's get-answer
				for _, m := range task.MetricList {
					for _, f := range task.FilterList {
						want = append(want, m.Metric+","+f.Name)
					}
				}
			case task.OutputType == evaltasks.LoglikelihoodRolling:
				want = []string{"word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"}
			default:
				for _, m := range task.MetricList {
					want = append(want, m.Metric+",none")
				}
			}
			for _, k := range want {
				v, ok := tm[k].(float64)
				if !ok {
					t.Errorf("%s: %s: %s missing or not a number: %v", n.Step.Name, task.Task, k, tm[k])
					continue
				}
				if strings.HasPrefix(k, "acc") || strings.HasPrefix(k, "exact_match") || strings.Contains(k, "level_") || strings.HasPrefix(k, "pass") {
					if v < 0 || v > 1 {
						t.Errorf("%s: %s %s = %v", n.Step.Name, task.Task, k, v)
					}
				}
			}
			ns := r.NSamples[task.Task]
			if ns.Effective == 0 || ns.Effective > ns.Original {
				t.Errorf("%s: %s n-samples %+v", n.Step.Name, task.Task, ns)
			}
			samples := readSamples(t, filepath.Join(out, "samples_"+task.Task+".jsonl"))
			filters := max(1, len(task.FilterList))
			if len(samples) != ns.Effective*filters {
				t.Errorf("%s: %s: %d samples, want %d", n.Step.Name, task.Task, len(samples), ns.Effective*filters)
			}
			for _, s := range samples {
				for _, k := range []string{"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics", "doc_hash", "prompt_hash"} {
					if _, ok := s[k]; !ok {
						t.Errorf("%s: sample without %s", task.Task, k)
					}
				}
				if task.OutputType == evaltasks.MultipleChoice {
					// each choice's (loglikelihood, is_greedy)
					fr, _ := s["filtered_resps"].([]any)
					if len(fr) < 2 {
						t.Errorf("%s: filtered_resps %v", task.Task, s["filtered_resps"])
					} else if p, ok := fr[0].([]any); !ok || len(p) != 2 {
						t.Errorf("%s: a choice's response %v, want [loglikelihood, is_greedy]", task.Task, fr[0])
					}
				}
			}
			if r.Data[task.Task].Commit == "" {
				t.Errorf("%s: no dataset commit recorded for %s", n.Step.Name, task.Task)
			}
		}
		for _, g := range suite.Groups {
			gm, ok := r.Results[g.Group]
			if !ok {
				t.Errorf("%s: no group entry %s", n.Step.Name, g.Group)
				continue
			}
			for _, a := range g.AggregateMetricList {
				filter := "none"
				if len(a.FilterList) > 0 {
					filter = a.FilterList[0]
				}
				if _, ok := gm[a.Metric+","+filter].(float64); !ok {
					t.Errorf("%s: group %s: %s,%s missing", n.Step.Name, g.Group, a.Metric, filter)
				}
				if a.Macro {
					if _, ok := gm[a.Metric+"_macro,"+filter].(float64); !ok {
						t.Errorf("%s: group %s: macro average missing", n.Step.Name, g.Group)
					}
				}
			}
		}
		if n.Config["apply_chat_template"] == true {
			samples := readSamples(t, filepath.Join(out, "samples_"+suite.Tasks[0].Task+".jsonl"))
			args := samples[0]["arguments"].([]any)[0].([]any)
			if p := args[0].(string); !strings.Contains(p, "<|user|>") || !strings.HasSuffix(p, "<|assistant|>") {
				t.Errorf("chat prompt %q is not rendered with the tokenizer's chat template", p)
			}
		}
	}
	// The gomlx engine's numbers are the cpu engine's.
	byModel := map[string]*eval.Results{}
	for _, n := range plan.Steps {
		if n.Step.Op == eval.OpName {
			r, err := eval.ReadResults(context.Background(), n.OutputPath)
			if err != nil {
				t.Fatal(err)
			}
			byModel[n.Config["model_name"].(string)+"/"+n.Config["suite"].(map[string]any)["name"].(string)] = r
		}
	}
	for _, task := range []string{"arc_easy", "lambada_openai", "lambada_short_gen", "wikitext_rolling"} {
		cpuR, gR := byModel["tiny/"+task], byModel["tiny_gomlx/"+task]
		if cpuR == nil || gR == nil {
			t.Fatalf("%s: missing results (cpu %v, gomlx %v)", task, cpuR != nil, gR != nil)
		}
		for k, v := range cpuR.Results[task] {
			a, ok1 := v.(float64)
			b, ok2 := gR.Results[task][k].(float64)
			if ok1 != ok2 || (ok1 && math.Abs(a-b) > 1e-4*math.Max(1, math.Abs(a))) {
				t.Errorf("%s %s: cpu %v gomlx %v", task, k, v, gR.Results[task][k])
			}
		}
	}
	for _, n := range c.TopLevel() {
		s, _ := c.Suite(n)
		for _, task := range s.Tasks {
			if !seen[task.Task] {
				t.Errorf("shipped task %s was not evaluated", task.Task)
			}
		}
	}
}
