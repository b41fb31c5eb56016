package starlib

import (
	"strings"
	"testing"

	"github.com/marin-go/marin/host/graph"
)

const evalScript = `
sft = ExecutorStep(name = "checkpoints/my_sft", op = "train", config = {"x": 1})
mine = EvalTask(
    task = "my_qa",
    data = output_path_of(sft, "heldout"),
    output_type = "generate_until",
    doc_to_text = "{{question}}",
    doc_to_target = "{{answer}}",
    metric_list = [{"metric": "exact_match", "ignore_case": True}],
)
steps = evaluate(model = sft, tasks = TASKS, limit = 5, batch_size = 8)
executor_main(steps)
`

func evalPlanPaths(t *testing.T, tasks string) map[string]string {
	t.Helper()
	f := newFixture(t)
	return paths(f.plan("e.star", strings.Replace(evalScript, "TASKS", tasks, 1)))
}

// Each task is its own step whose path depends on its definition, the
// model and the data: adding a task leaves the others where they are,
// batch_size (not a result) changes nothing, and a different revision or
// template moves only that task.
func TestEvaluateStepsPerTask(t *testing.T) {
	one := evalPlanPaths(t, `["arc_easy"]`)
	two := evalPlanPaths(t, `["arc_easy", mine]`)
	if one["eval/my_sft/arc_easy"] == "" || one["eval/my_sft/arc_easy"] != two["eval/my_sft/arc_easy"] {
		t.Errorf("adding a task moved arc_easy: %q -> %q", one["eval/my_sft/arc_easy"], two["eval/my_sft/arc_easy"])
	}
	if two["eval/my_sft/my_qa"] == "" || two["eval_docs/my_qa"] == "" || two["eval_docs/arc_easy-210d026"] == "" {
		t.Errorf("steps: %v", two)
	}
	f := newFixture(t)
	bs := paths(f.plan("b.star", strings.Replace(strings.Replace(evalScript, "TASKS", `["arc_easy"]`, 1), "batch_size = 8", "batch_size = 64", 1)))
	if bs["eval/my_sft/arc_easy"] != one["eval/my_sft/arc_easy"] {
		t.Error("batch_size moved the step")
	}
	lim := paths(f.plan("l.star", strings.Replace(strings.Replace(evalScript, "TASKS", `["arc_easy"]`, 1), "limit = 5", "limit = 6", 1)))
	if lim["eval/my_sft/arc_easy"] == one["eval/my_sft/arc_easy"] {
		t.Error("limit did not move the step")
	}
	tmpl := paths(f.plan("t.star", strings.Replace(strings.Replace(evalScript, "TASKS", `[mine]`, 1), "{{question}}", "Q: {{question}}", 1)))
	if tmpl["eval/my_sft/my_qa"] == two["eval/my_sft/my_qa"] {
		t.Error("changing the template did not move the step")
	}
	if tmpl["eval_docs/my_qa"] != two["eval_docs/my_qa"] {
		t.Error("changing the template moved the documents step, which depends only on the data")
	}
}

func TestEvaluateConfig(t *testing.T) {
	f := newFixture(t)
	p := f.plan("c.star", strings.Replace(evalScript, "TASKS", `["mmlu", mine]`, 1))
	for _, s := range p.Steps {
		switch s.Step.Name {
		case "eval/my_sft/mmlu":
			suite := s.Config["suite"].(map[string]any)
			if len(suite["tasks"].([]any)) != 57 || suite["name"] != "mmlu" {
				t.Errorf("mmlu suite: %d tasks", len(suite["tasks"].([]any)))
			}
			if s.Config["model"] != "file:///prefix/"+findRel(p, "checkpoints/my_sft") || s.Config["model_name"] != "my_sft" {
				t.Errorf("model %v name %v", s.Config["model"], s.Config["model_name"])
			}
			if !strings.HasPrefix(s.Config["docs"].(string), "file:///prefix/eval_docs/mmlu-c30699e") {
				t.Errorf("docs %v", s.Config["docs"])
			}
			if s.Step.Backend != "cpu" || s.Step.Op != "eval/harness" {
				t.Errorf("backend %q op %q", s.Step.Backend, s.Step.Op)
			}
		case "eval_docs/my_qa":
			task := s.Config["tasks"].([]any)[0].(map[string]any)
			if task["data"] != "file:///prefix/"+findRel(p, "checkpoints/my_sft")+"/heldout" {
				t.Errorf("data %v", task["data"])
			}
		}
	}
}

func findRel(p *graph.Plan, name string) string {
	for _, s := range p.Steps {
		if s.Step.Name == name {
			return s.RelPath
		}
	}
	return ""
}

func TestEvaluateRefusals(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ src, want string }{
		{`executor_main(evaluate(model = "m", tasks = ["humaneval"]))`, "humaneval executes code the model writes"},
		{`executor_main(evaluate(model = "m", tasks = ["mmluu"]))`, `did you mean "mmlu"`},
		{`executor_main(evaluate(model = "m", tasks = [EvalTask(task = "x", dataset_path = "a/b", test_split = "test", output_type = "multiple_choice", doc_to_text = "q", doc_to_target = "a")]))`, "multiple_choice needs doc_to_choice"},
		{`EvalTask(task = "x", dataset_path = "a/b", test_split = "test", output_type = "generate_until", doc_to_text = "q", doc_to_target = "a", process_docs = "mine")`, "Python functions cannot run here"},
		{`executor_main(evaluate(model = "m", tasks = ["arc_easy", "arc_easy"]))`, "listed twice"},
		{`executor_main(evaluate(model = "m", tasks = ["arc_easy"], limit = 0))`, "limit must be positive"},
	} {
		got := f.execErr("r.star", c.src)
		mustContain(t, got, c.want)
	}
}

func TestDefaultSFTEval(t *testing.T) {
	f := newFixture(t)
	src := `
sft = ExecutorStep(name = "checkpoints/tulu", op = "train", config = {})
executor_main(default_sft_eval(sft, max_eval_instances = 10))
`
	p := f.plan("d.star", src)
	var evals []string
	for _, s := range p.Steps {
		if s.Step.Op == "eval/harness" {
			evals = append(evals, strings.TrimPrefix(s.Step.Name, "eval/tulu/"))
			if s.Config["apply_chat_template"] != true || s.Config["limit"] != 10.0 {
				t.Errorf("%s: apply_chat_template %v limit %v", s.Step.Name, s.Config["apply_chat_template"], s.Config["limit"])
			}
		}
	}
	want := "bbh_cot_fewshot gsm8k_cot ifeval leaderboard_bbh leaderboard_gpqa leaderboard_ifeval leaderboard_mmlu_pro leaderboard_musr mmlu"
	if got := strings.Join(sortedCopy(evals), " "); got != want {
		t.Errorf("default_sft_eval tasks %q, want %q", got, want)
	}
	p = f.plan("d2.star", strings.Replace(src, "max_eval_instances = 10", "run_generation_evals = False", 1))
	n := 0
	for _, s := range p.Steps {
		if s.Step.Op == "eval/harness" {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d steps without generation evals, want 5", n)
	}
	p = f.plan("d3.star", strings.Replace(src, "max_eval_instances = 10", `code_sandbox = ["bwrap", "python3"]`, 1))
	found := false
	for _, s := range p.Steps {
		if s.Step.Name == "eval/tulu/humaneval" {
			found = true
		}
	}
	if !found {
		t.Error("humaneval missing with a code sandbox")
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestLoadEvalTasksFromLMEvalYAML(t *testing.T) {
	f := newFixture(t)
	f.file("tasks/_template.yaml", "dataset_path: allenai/ai2_arc\ndataset_kwargs:\n  revision: 210d026faf9955653af8916fad021475a3f00453\noutput_type: multiple_choice\ntest_split: test\n"+
		"doc_to_text: \"Question: {{question}}\\nAnswer:\"\ndoc_to_target: \"{{choices.label.index(answerKey)}}\"\ndoc_to_choice: \"{{choices.text}}\"\ntag: [ai2_arc]\nshould_decontaminate: true\n")
	f.file("tasks/mine.yaml", "task: my_arc\ninclude: _template.yaml\ndataset_name: ARC-Easy\n")
	p := f.plan("y.star", `executor_main(evaluate(model = "m", tasks = load_eval_tasks("tasks/mine.yaml")))`)
	if findRel(p, "eval/m/my_arc") == "" {
		t.Fatalf("steps %v", paths(p))
	}
	f.file("tasks/py.yaml", "task: x\ninclude: _template.yaml\nprocess_docs: !function utils.process_docs\n")
	mustContain(t, f.execErr("z.star", `load_eval_tasks("tasks/py.yaml")`), "is a Python function")
}
