package datasets

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/hfhub/hubtest"
	"github.com/marin-go/marin/plugins/sdk"
)

func TestSelectSplitFilesByLayoutRules(t *testing.T) {
	files := []hfhub.File{{Path: "README.md"}, {Path: "piqa_train.parquet"}, {Path: "piqa_validation.parquet"},
		{Path: "boolq/train-00000-of-00001.parquet"}, {Path: "boolq/validation-00000-of-00002.parquet"}, {Path: "boolq/validation-00001-of-00002.parquet"},
		{Path: "cb/train-00000-of-00001.parquet"}}
	for _, c := range []struct {
		task  evalDocsTask
		split string
		want  string
	}{
		{evalDocsTask{}, "train", "boolq/train-00000-of-00001.parquet cb/train-00000-of-00001.parquet piqa_train.parquet"},
		{evalDocsTask{DatasetName: "boolq"}, "validation", "boolq/validation-00000-of-00002.parquet boolq/validation-00001-of-00002.parquet"},
		{evalDocsTask{DatasetName: "boolq", DataFiles: map[string][]string{"train": {"{dataset_name}/train-*.parquet"}}}, "train", "boolq/train-00000-of-00001.parquet"},
		{evalDocsTask{DatasetName: "nope"}, "validation", "boolq/validation-00000-of-00002.parquet boolq/validation-00001-of-00002.parquet piqa_validation.parquet"},
	} {
		got, err := selectSplitFiles(files, c.task, c.split)
		if err != nil {
			t.Errorf("%+v %s: %v", c.task, c.split, err)
			continue
		}
		var names []string
		for _, f := range got {
			names = append(names, f.Path)
		}
		if strings.Join(names, " ") != c.want {
			t.Errorf("%+v %s: %v, want %s", c.task, c.split, names, c.want)
		}
	}
	// No file names a split: all of them are "train", and there is no test.
	plain := []hfhub.File{{Path: "README.md"}, {Path: "ifeval_input_data.jsonl"}, {Path: "extra.jsonl"}}
	got, err := selectSplitFiles(plain, evalDocsTask{}, "train")
	if err != nil || len(got) != 2 || got[0].Path != "extra.jsonl" || got[1].Path != "ifeval_input_data.jsonl" {
		t.Errorf("unnamed files as train: %v %v", got, err)
	}
	if _, err := selectSplitFiles(plain, evalDocsTask{}, "test"); err == nil {
		t.Errorf("unnamed files gave a test split")
	}
	if _, err := selectSplitFiles(files, evalDocsTask{}, "test"); err == nil || !strings.Contains(err.Error(), "give data_files") {
		t.Errorf("no test split: %v", err)
	}
	// A data/ directory holds the splits; "dev" is a validation split.
	got, err = selectSplitFiles([]hfhub.File{{Path: "data/dev.jsonl"}, {Path: "data/test.jsonl"}, {Path: "extra/validation.csv"}}, evalDocsTask{}, "validation")
	if err != nil || len(got) != 1 || got[0].Path != "data/dev.jsonl" {
		t.Errorf("data/ layout: %v %v", got, err)
	}
}

// TestEvalDocsPinsBranchesAtPlanTime: a revision that is not a commit is
// resolved while planning, so the step's version holds the commit.
func TestEvalDocsPinsBranchesAtPlanTime(t *testing.T) {
	commit := strings.Repeat("ab", 20)
	hub := hubtest.New(&hubtest.Repo{Type: "dataset", ID: "org/gated", Commit: commit, Branches: []string{"main"}, Date: time.Now(),
		Files: map[string][]byte{"x_diamond.csv": []byte("Question,Answer\nq,a\n")}})
	defer hub.Close()
	t.Setenv("HF_ENDPOINT", hub.URL())
	cfg := map[string]any{"tasks": []any{map[string]any{"task": "t", "dataset_path": "org/gated", "dataset_name": "x_diamond", "revision": "main",
		"data_files": map[string]any{"train": []any{"{dataset_name}.csv"}}, "splits": []any{"train"}}}}
	raw, _ := json.Marshal(cfg)
	res, err := sdk.CallPlan(context.Background(), Plugin().Ops[EvalDocsOp], &sdk.PlanRequest{Op: EvalDocsOp, ConfigJSON: raw})
	if err != nil || len(res.Diagnostics) > 0 {
		t.Fatalf("%v %v", err, res.Diagnostics)
	}
	tasks, _ := res.Set["tasks"].([]any)
	if len(tasks) != 1 || tasks[0].(map[string]any)["revision"] != commit {
		t.Fatalf("pinned %v, want revision %s", res.Set, commit)
	}
	// And the run reads the CSV, numbers and all.
	out := t.TempDir()
	req := &sdk.Request{Op: EvalDocsOp, StepName: "eval_docs/t", ConfigJSON: raw, OutputPath: "file://" + out}
	if err := Plugin().Ops[EvalDocsOp].Run(context.Background(), req, nopReporter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "t", "train.jsonl.gz")); err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile(filepath.Join(out, "docs.json"))
	if err != nil || !strings.Contains(string(man), commit) || !strings.Contains(string(man), `"rows": 1`) {
		t.Errorf("docs.json %s %v", man, err)
	}
}

type nopReporter struct{}

func (nopReporter) Progress(done, total float64, unit, msg string) {}
func (nopReporter) Log(level, msg string, kv ...string)            {}
