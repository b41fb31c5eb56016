package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// quickScript writes experiments/quickstart.star with QUICK = True (the
// reduced run) into dir.
func quickScript(t *testing.T, repo, dir string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repo, "experiments", "quickstart.star"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(src), "\nQUICK = False\n", "\nQUICK = True\n", 1)
	if s == string(src) {
		t.Fatal("experiments/quickstart.star has no line QUICK = False")
	}
	p := filepath.Join(dir, "quickstart_quick.star")
	write(t, p, s)
	return p
}

func one(t *testing.T, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("%s matches %v", pattern, m)
	}
	return m[0]
}

type evalResults struct {
	Examples int                `json:"examples"`
	Correct  int                `json:"correct"`
	Accuracy float64            `json:"accuracy"`
	ByTask   map[string]float64 `json:"-"`
}

func readResults(t *testing.T, prefix, name string) evalResults {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(one(t, filepath.Join(prefix, "eval", name+"-*")), "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r evalResults
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

type metricsRow struct {
	Step     int64    `json:"step"`
	Loss     float64  `json:"loss"`
	LR       float64  `json:"lr"`
	GradNorm float64  `json:"grad_norm"`
	EvalLoss *float64 `json:"eval_loss"`
}

func readMetrics(t *testing.T, path string) []metricsRow {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []metricsRow
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var r metricsRow
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

var (
	quickOnce                    sync.Once
	quickScriptPath, quickPrefix string
	quickResult                  result
	quickErr                     string
)

// localQuickstart runs the reduced quickstart locally once for the tests
// that need its results (TestQuickstart, and TestSlurmQuickstart, which
// compares a Slurm run with it), under the e2e directory TestMain removes.
func localQuickstart(t *testing.T, repo string) (script, prefix string, r result) {
	t.Helper()
	quickOnce.Do(func() {
		dir, err := os.MkdirTemp(filepath.Dir(marinBin), "quickstart")
		if err != nil {
			quickErr = err.Error()
			return
		}
		quickScriptPath = quickScript(t, repo, dir)
		quickPrefix = filepath.Join(dir, "out")
		start := time.Now()
		quickResult = marin(t, repo, nil, quickScriptPath, "--prefix", quickPrefix)
		t.Logf("reduced quickstart: %s", time.Since(start).Round(time.Second))
		if quickResult.code != 0 {
			quickErr = fmt.Sprintf("exit %d:\n%s\n%s", quickResult.code, quickResult.stdout, quickResult.stderr)
		}
	})
	if quickErr != "" {
		t.Fatalf("local reduced quickstart: %s", quickErr)
	}
	return quickScriptPath, quickPrefix, quickResult
}

// sameTraining checks that both quickstart trainings logged the same
// metrics under got as under want, bit for bit.
func sameTraining(t *testing.T, want, got, wantName string) {
	t.Helper()
	for _, step := range []string{"quickstart_pretrain", "quickstart_sft"} {
		w := readMetrics(t, filepath.Join(one(t, filepath.Join(want, "checkpoints", step+"-*")), "metrics.jsonl"))
		g := readMetrics(t, filepath.Join(one(t, filepath.Join(got, "checkpoints", step+"-*")), "metrics.jsonl"))
		if len(g) != len(w) {
			t.Fatalf("%s: %d metrics rows, %s %d", step, len(g), wantName, len(w))
		}
		for i := range w {
			if w[i].Step != g[i].Step || math.Float64bits(w[i].Loss) != math.Float64bits(g[i].Loss) ||
				math.Float64bits(w[i].GradNorm) != math.Float64bits(g[i].GradNorm) || w[i].LR != g[i].LR {
				t.Fatalf("%s row %d: %+v, %s %+v", step, i, g[i], wantName, w[i])
			}
		}
	}
}

// TestQuickstart runs the reduced quickstart through the marin binary (its
// steps in the built-in plugins' processes), checks that fine-tuning lifts
// held-out accuracy, samples from the result with generate and chat, and
// kills a second run mid-training: its rerun reproduces the first run's
// losses bit for bit.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two small models")
	}
	repo, _ := filepath.Abs("../..")
	script, prefix, r := localQuickstart(t, repo)
	before := readResults(t, prefix, "quickstart_before_sft")
	after := readResults(t, prefix, "quickstart_after_sft")
	t.Logf("held-out exact match: %d/%d before fine-tuning, %d/%d after", before.Correct, before.Examples, after.Correct, after.Examples)
	if before.Examples == 0 || after.Accuracy < before.Accuracy+0.25 {
		t.Errorf("fine-tuning took held-out accuracy from %.2f to %.2f; want a rise of at least 0.25", before.Accuracy, after.Accuracy)
	}
	mustContain(t, r.stdout+r.stderr, "exact match")
	checkQuickstartResults(t, repo, script, prefix)
	sft := one(t, filepath.Join(prefix, "checkpoints", "quickstart_sft-*"))
	for _, f := range []string{"metrics.jsonl", "hf/step-400/config.json", "hf/step-400/model.safetensors", "hf/step-400/tokenizer.json",
		"hf/step-400/generation_config.json", "hf/step-400/marin.json", "checkpoints/step-400/metadata.json"} {
		if _, err := os.Stat(filepath.Join(sft, f)); err != nil {
			t.Error(err)
		}
	}

	t.Run("generate", func(t *testing.T) {
		g := marin(t, repo, nil, "generate", "--model", sft, "--chat", "--prompt", "upper abc", "--max-new-tokens", "12")
		if g.code != 0 || strings.TrimSpace(g.stdout) == "" {
			t.Fatalf("exit %d: %q %s", g.code, g.stdout, g.stderr)
		}
		s := marin(t, repo, nil, "generate", "--model", sft, "--prompt", "upper(abc)=", "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--max-new-tokens", "8")
		if s.code != 0 {
			t.Fatalf("sampled: exit %d: %s", s.code, s.stderr)
		}
		if u := marin(t, repo, nil, "generate", "--model", sft, "--prompt", "x", "--top-p", "2"); u.code != exitUsage {
			t.Errorf("--top-p 2: exit %d", u.code)
		}
		cmd := exec.Command(marinBin, "chat", "--model", sft, "--max-new-tokens", "12")
		cmd.Dir = repo
		cmd.Stdin = strings.NewReader("upper abc\nupper qrs\n/reset\nupper xyz\n/exit\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chat: %v: %s", err, out)
		}
		if n := strings.Count(string(out), "assistant> "); n != 3 {
			t.Errorf("chat gave %d replies, want 3:\n%s", n, out)
		}
	})

	t.Run("killed and rerun", func(t *testing.T) {
		prefix2 := t.TempDir()
		cmd := exec.Command(marinBin, script, "--prefix", prefix2)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "MARIN_PREFIX=", "MARIN_PLUGIN_PATH=")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill the host (its plugins die with it) once pretraining is past
		// its first checkpoint (step 50).
		deadline := time.Now().Add(5 * time.Minute)
		for {
			m, _ := filepath.Glob(filepath.Join(prefix2, "checkpoints", "quickstart_pretrain-*", "metrics.jsonl"))
			if len(m) == 1 {
				if raw, err := os.ReadFile(m[0]); err == nil && bytes.Count(raw, []byte("\n")) >= 120 {
					break
				}
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("pretraining did not get past step 120")
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		r := marin(t, repo, nil, script, "--prefix", prefix2)
		if r.code != 0 {
			t.Fatalf("rerun: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		mustContain(t, r.stdout+r.stderr, "resuming from")
		sameTraining(t, prefix, prefix2, "an uninterrupted run")
		if a2 := readResults(t, prefix2, "quickstart_after_sft"); a2.Correct != after.Correct {
			t.Errorf("after the kill and rerun %d correct, uninterrupted %d", a2.Correct, after.Correct)
		}
	})
}

// checkQuickstartResults reads the quickstart's evaluate() steps through
// `marin results`: fine-tuning must lift the held-out answers' accuracy and
// exact match and lower their perplexity, and the text table must show
// both models.
func checkQuickstartResults(t *testing.T, repo, script, prefix string) {
	t.Helper()
	r := marin(t, repo, nil, "results", script, "--prefix", prefix, "--json")
	if r.code != 0 {
		t.Fatalf("marin results: exit %d: %s", r.code, r.stderr)
	}
	var tbl resultsTable
	if err := json.Unmarshal([]byte(r.stdout), &tbl); err != nil {
		t.Fatalf("marin results --json: %v\n%s", err, r.stdout)
	}
	if len(tbl.Missing) > 0 {
		t.Errorf("steps without results: %v", tbl.Missing)
	}
	got := map[string]map[string]float64{}
	for _, row := range tbl.Results {
		k := row.Task + " " + row.Metric
		got[k] = map[string]float64{}
		for m, v := range row.Values {
			got[k][m] = v.Value
		}
	}
	for _, k := range []string{"quickstart_heldout_answer acc", "quickstart_heldout_generate exact_match"} {
		b, a := got[k]["quickstart_pretrain"], got[k]["quickstart_sft"]
		t.Logf("%s: %.3f before fine-tuning, %.3f after", k, b, a)
		if a < b+0.25 {
			t.Errorf("%s: %.3f before fine-tuning, %.3f after; want a rise of at least 0.25", k, b, a)
		}
	}
	if p := got["quickstart_heldout_answer perplexity"]; !(p["quickstart_sft"] < p["quickstart_pretrain"]) {
		t.Errorf("held-out answer perplexity %v did not fall", p)
	}
	txt := marin(t, repo, nil, "results", script, "--prefix", prefix)
	if txt.code != 0 {
		t.Fatalf("marin results: exit %d: %s", txt.code, txt.stderr)
	}
	mustContain(t, txt.stdout, "quickstart_pretrain", "quickstart_sft", "quickstart_heldout_generate", "exact_match")
}
