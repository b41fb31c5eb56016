package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/weights"
)

// TestTornStatusKeepsTheExperimentPlannable reproduces defect 1 of issue 16
// end to end: a shell/run step that fails, run many times so that its
// status grows, then its status cut off mid-line as a full disk left it.
// Planning then failed for every step with "unexpected end of JSON input",
// --dry-run with exit 1; now the torn line is ignored with a warning, the
// plan is printed (exit 0) and a graph error still exits 3.
func TestTornStatusKeepsTheExperimentPlannable(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "flaky.star"), `
flaky = ExecutorStep(name = "flaky", op = "shell/run", config = {"command": "echo no; exit 1"})
fine = ExecutorStep(name = "fine", op = "shell/run", config = {"command": "echo ok > $MARIN_OUTPUT_PATH/ok"})
executor_main(flaky, fine)
`)
	for i := 0; i < 4; i++ {
		if r := marin(t, dir, nil, "flaky.star", "--prefix", "out"); r.code != exitFailed {
			t.Fatalf("run %d: exit %d: %s", i, r.code, r.stderr)
		}
	}
	status := one(t, filepath.Join(dir, "out", "flaky-*", ".executor_status"))
	raw, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(raw, []byte("\n")); n != 8 {
		t.Fatalf("status has %d lines after 4 runs, want 8", n)
	}
	// The disk filled while the next RUNNING line was written.
	torn := append(raw, []byte(`{"status":"RUNNING","time":"2026-`)...)
	if err := os.WriteFile(status, torn, 0o644); err != nil {
		t.Fatal(err)
	}

	r := marin(t, dir, nil, "flaky.star", "--prefix", "out", "--dry-run")
	if r.code != 0 {
		t.Fatalf("--dry-run with a torn status: exit %d: %s", r.code, r.stderr)
	}
	mustContain(t, r.stdout, "2 step(s)", "1 to run, 1 done")
	mustContain(t, r.stderr, "torn last line 9 ignored")
	if strings.Contains(r.stdout, "unexpected end of JSON input") || strings.Contains(r.stderr, "marin: ") {
		t.Errorf("the parse error still fails the plan:\n%s%s", r.stdout, r.stderr)
	}
	// A real run retries the step and rewrites the status without the torn line.
	if r := marin(t, dir, nil, "flaky.star", "--prefix", "out"); r.code != exitFailed {
		t.Fatalf("run after the torn write: exit %d: %s", r.code, r.stderr)
	}
	raw, _ = os.ReadFile(status)
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("status line %d is still torn: %q", i+1, line)
		}
	}

	write(t, filepath.Join(dir, "cycle.star"), `
a = ExecutorStep(name = "a", op = "shell/run", config = {"command": "true"})
executor_main(a, a)
x = undefined_name
`)
	if r := marin(t, dir, nil, "cycle.star", "--prefix", "out", "--dry-run"); r.code != exitScript {
		t.Errorf("--dry-run of a broken script: exit %d, want %d: %s", r.code, exitScript, r.stderr)
	}
}

// TestSignalStopsScriptEvaluation reproduces defect 5 of issue 16: a script
// looping at top level ignored SIGINT and SIGTERM while it was evaluated.
func TestSignalStopsScriptEvaluation(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "loop.star"), `
n = 0
for i in range(2000000000):
    n += i
executor_main(ExecutorStep(name = "a", op = "shell/run", config = {"command": "true", "n": n}))
`)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(marinBin, "loop.star", "--prefix", "out", "--dry-run")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "MARIN_SCRIPT_MAX_STEPS=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		sent := time.Now()
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("%s: evaluation went on for 20s after the signal", sig)
		}
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
			t.Errorf("%s: exit %d, want %d: %s", sig, code, exitInterrupted, stderr.String())
		}
		if took := time.Since(sent); took > 5*time.Second {
			t.Errorf("%s: took %s to stop", sig, took)
		}
		// The interrupt lands on the loop's header (line 3) or its body (line 4).
		if msg := stderr.String(); !strings.Contains(msg, "loop.star:3:") && !strings.Contains(msg, "loop.star:4:") {
			t.Errorf("%s: %q does not say where the script was interrupted", sig, msg)
		}
		mustContain(t, stderr.String(), "interrupted")
	}
}

func TestScriptStepLimitIsAScriptError(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "loop.star"), "for i in range(2000000000):\n    pass\nexecutor_main()\n")
	r := marin(t, dir, []string{"MARIN_SCRIPT_MAX_STEPS=200000"}, "loop.star", "--dry-run")
	if r.code != exitScript {
		t.Fatalf("exit %d, want %d: %s", r.code, exitScript, r.stderr)
	}
	mustContain(t, r.stderr, "loop.star:1:", "more than 200000 Starlark steps", "MARIN_SCRIPT_MAX_STEPS")
}

// TestSecretsNeverReachOutput: a step whose output and error echo a request
// with credentials (as a hub or proxy error body may) fails without the
// secrets reaching the summary, the logs or .executor_status (defect 2 of
// issue 16, end to end through a plugin process).
func TestSecretsNeverReachOutput(t *testing.T) {
	dir := t.TempDir()
	const tok = "hf_EchoedTokenAbcdefghijklmnop12"
	const env = "opaque-secret-from-the-environment"
	write(t, filepath.Join(dir, "leak.star"), `
leak = ExecutorStep(name = "leak", op = "shell/run", config = {"command":
    "echo 'GET https://bob:hunter22@hub.example/api: 400; headers: Authorization: Bearer `+tok+`' >&2; " +
    "echo \"token=$HF_TOKEN\"; echo 'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'; exit 1"})
executor_main(leak)
`)
	for _, format := range []string{"console", "json"} {
		r := marin(t, dir, []string{"HF_TOKEN=" + env}, "leak.star", "--prefix", "out-"+format, "--log-format", format)
		if r.code != exitFailed {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		status, err := os.ReadFile(one(t, filepath.Join(dir, "out-"+format, "leak-*", ".executor_status")))
		if err != nil {
			t.Fatal(err)
		}
		for where, text := range map[string]string{"stdout": r.stdout, "stderr": r.stderr, ".executor_status": string(status)} {
			for _, secret := range []string{tok, env, "hunter22", "wJalrXUtnFEMI"} {
				if strings.Contains(text, secret) {
					t.Errorf("%s: %s holds %q:\n%s", format, where, secret, text)
				}
			}
		}
		mustContain(t, r.stdout+r.stderr, "Authorization: Bearer [REDACTED]", "bob:[REDACTED]@hub.example")
	}
}

// TestGenerateRefusesAConfigLargerThanItsWeights reproduces defect 3 of
// issue 16 at the command line: a model directory whose config.json claims
// huge sizes next to small safetensors made `marin generate` panic
// (makeslice: len out of range) or die out of memory.
func TestGenerateRefusesAConfigLargerThanItsWeights(t *testing.T) {
	dir := t.TempDir()
	p, err := weights.Init(llama.Config{HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 1, NumAttentionHeads: 2,
		VocabSize: 272, MaxPositionEmbeddings: 64, RMSNormEps: 1e-5, TieWordEmbeddings: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := weights.WriteModelFiles(model, p, weights.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, _ := filepath.Abs("../../experiments/quickstart/tokenizer")
	for name, cfg := range map[string]string{
		"absurd": `{"hidden_size": 4294967296, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 272}`,
		"70B":    `{"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256}`,
		"bigger": `{"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 8, "num_attention_heads": 8, "vocab_size": 272, "tie_word_embeddings": true}`,
	} {
		write(t, filepath.Join(model, "config.json"), cfg)
		r := marin(t, dir, nil, "generate", "--model", model, "--tokenizer", tok, "--prompt", "hi", "--max-new-tokens", "2")
		if r.code == 0 {
			t.Errorf("%s: exit %d", name, r.code)
		}
		if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "out of memory") {
			t.Errorf("%s: crashed instead of refusing the config:\n%s", name, r.stderr)
		}
		mustContain(t, r.stderr, "config")
	}
}
