package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/eval"
)

func TestResultsTableText(t *testing.T) {
	res := &eval.Results{
		Results:       map[string]eval.TaskMetrics{"mmlu": {}, "mmlu_stem": {}, "mmlu_anatomy": {}, "mmlu_other": {}, "mmlu_virology": {}},
		GroupSubtasks: map[string][]string{"mmlu": {"mmlu_stem", "mmlu_other"}, "mmlu_stem": {"mmlu_anatomy"}, "mmlu_other": {"mmlu_virology"}},
	}
	if got := strings.Join(entryOrder(res, "mmlu"), " "); got != "mmlu mmlu_stem mmlu_anatomy mmlu_other mmlu_virology" {
		t.Errorf("--all order %q", got)
	}
	up, se := true, 0.0123
	tbl := &resultsTable{Models: []string{"base", "sft"}, Results: []resultRow{
		{Task: "mmlu", Metric: "acc", Filter: "none", HigherIsBetter: &up, Values: map[string]resultValue{"base": {Value: 0.25, Stderr: &se}, "sft": {Value: 0.5}}},
		{Task: "gsm8k_cot", Metric: "exact_match", Filter: "strict-match", Values: map[string]resultValue{"sft": {Value: 123456}}},
	}}
	var b bytes.Buffer
	printResults(&b, tbl)
	out := b.String()
	for _, want := range []string{"TASK", "base", "sft", "acc ↑", "0.2500 ± 0.0123", "0.5000", "exact_match (strict-match)", "1.235e+05"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasSuffix(strings.TrimSpace(lines[2]), "-") && !strings.Contains(lines[2], "  -  ") {
		t.Errorf("a model without a value shows -:\n%s", out)
	}
}
