package evaluate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/plugins/tasks"
)

type nopReporter struct{}

func (nopReporter) Progress(done, total float64, unit, msg string) {}
func (nopReporter) Log(level, msg string, kv ...string)            {}

// model exports a tiny random model with the quickstart tokenizer.
func model(t *testing.T) string {
	t.Helper()
	tokDir := t.TempDir()
	tj, cj, sm, err := tasks.TokenizerFiles()
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": cj, "special_tokens_map.json": sm} {
		os.WriteFile(filepath.Join(tokDir, n), b, 0o644)
	}
	p, err := weights.Init(llama.Config{HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 1, NumAttentionHeads: 2,
		VocabSize: 272, MaxPositionEmbeddings: 64, TieWordEmbeddings: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "train-out", "hf", "step-5")
	err = weights.ExportHF(dir, p, weights.ExportOptions{TokenizerDir: tokDir,
		Extra: map[string][]byte{"marin.json": []byte(`{"chat_format":{"name":"chatml"},"step":5}`)}})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(dir))
}

func TestExactMatchCountsAndWritesPredictions(t *testing.T) {
	m := model(t)
	data := t.TempDir()
	sets, _ := tasks.Generate(tasks.Spec{Seed: 2, Tasks: tasks.AllTasks, Test: 9})
	if err := tasks.Write(context.Background(), "file://"+data, sets, nopReporter{}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// The format comes from the model's marin.json.
	res, err := Run(context.Background(), Config{Model: m, Data: filepath.Join(data, "sft", "test"), MaxNewTokens: 4}, out, nopReporter{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Examples != 9 || res.Format != "chatml" || len(res.ByTask) != 3 || res.ByTask["add"].Examples != 3 {
		t.Errorf("results %+v", res)
	}
	raw, err := os.ReadFile(filepath.Join(out, "predictions.jsonl"))
	if err != nil || strings.Count(string(raw), "\n") != 9 {
		t.Fatalf("predictions: %v\n%s", err, raw)
	}
	var p Prediction
	json.Unmarshal([]byte(strings.SplitN(string(raw), "\n", 2)[0]), &p)
	if p.Reference == "" || p.Prompt == "" || p.Task == "" {
		t.Errorf("prediction %+v", p)
	}
	if _, err := os.Stat(filepath.Join(out, "results.json")); err != nil {
		t.Error(err)
	}

	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte(`{"id":"x","messages":[{"role":"user","content":"hi"}]}`+"\n"), 0o644)
	if _, err := Run(context.Background(), Config{Model: m, Data: bad}, out, nopReporter{}); err == nil || !strings.Contains(err.Error(), "does not end with an assistant answer") {
		t.Errorf("conversation without an answer: %v", err)
	}
}
