package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/marin-go/marin/backends/tokens/tokencache"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/host/validate"
	"github.com/rs/zerolog"
)

// marinBin is the marin binary built once for these end-to-end tests: the
// built-in plugins run as its child processes, exactly as for users.
var marinBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "marin-e2e")
	if err != nil {
		panic(err)
	}
	marinBin = filepath.Join(dir, "marin")
	// Token cache verification stamps go to the test's directory, not to
	// $HOME/.cache (HOME is the repository for some of these tests).
	os.Setenv(tokencache.VerifiedDirEnv, filepath.Join(dir, "verified"))
	build := exec.Command("go", "build", "-o", marinBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build marin:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// marin runs the binary in dir with extra environment.
func marin(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(marinBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MARIN_PREFIX=", "MARIN_PLUGIN_PATH=", "HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run marin %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// planned plans a script in-process, as `marin` does (plan-time checks and
// pins included), for the expected paths.
func planned(t *testing.T, script, prefix string) *graph.Plan {
	t.Helper()
	m, err := newManager(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_, p, _, err := loadPlan(context.Background(), script, prefix, m, validate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDryRunListsEveryStepOfTheExperiments(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	t.Chdir(repo) // the quickstart names its tokenizer relative to the repository
	for _, script := range []string{"experiments/exp606_sft.star", "experiments/exp808_sft_mixture.star", "experiments/quickstart.star"} {
		prefix := t.TempDir()
		p := planned(t, filepath.Join(repo, script), "file://"+prefix)
		r := marin(t, repo, nil, script, "--dry-run", "--prefix", prefix)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", script, r.code, r.stderr)
		}
		for _, s := range p.Steps {
			if !strings.Contains(r.stdout, s.RelPath) {
				t.Errorf("%s: dry run lacks step %s", script, s.RelPath)
			}
		}
		mustContain(t, r.stdout, fmt.Sprintf("%d step(s) under file://%s", len(p.Steps), prefix))

		r = marin(t, repo, nil, script, "--dry-run", "--json", "--prefix", prefix)
		if r.code != 0 {
			t.Fatalf("%s --json: exit %d: %s", script, r.code, r.stderr)
		}
		sc := bufio.NewScanner(strings.NewReader(r.stdout))
		n := 0
		for sc.Scan() {
			var obj map[string]any
			if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
				t.Fatalf("%s: line %d is not JSON: %v: %s", script, n+1, err, sc.Text())
			}
			for _, k := range []string{"name", "op", "output_path", "decision", "reason"} {
				if _, ok := obj[k]; !ok {
					t.Errorf("%s: line %d lacks %q", script, n+1, k)
				}
			}
			if obj["output_path"] != p.Steps[n].OutputPath || obj["decision"] != "run" {
				t.Errorf("%s: line %d = %v, want %s run", script, n+1, obj, p.Steps[n].OutputPath)
			}
			n++
		}
		if n != len(p.Steps) {
			t.Errorf("%s: %d JSON lines, want %d", script, n, len(p.Steps))
		}
	}
}

func TestScriptErrorShowsPositionAndExits3(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "bad.star"), "cfg = SimpleSFTConfig(\n    learning_rate = \"fast\",\n)\n")
	r := marin(t, dir, nil, "bad.star", "--dry-run")
	if r.code != exitScript {
		t.Fatalf("exit %d, want %d; stderr %s", r.code, exitScript, r.stderr)
	}
	mustContain(t, r.stderr, "bad.star:1:22:", "learning_rate must be a number", "Traceback")
}

// graphScript has a chain gen -> flaky -> report and an independent side step.
// flaky fails until the file ok exists in the test dir.
const graphScript = `
gen = ExecutorStep(name = "gen", op = "shell/run", config = {
    "command": "echo 21 > $MARIN_OUTPUT_PATH/n.txt; echo MARIN_PROGRESS 1 1 items",
})
flaky = ExecutorStep(name = "flaky", op = "shell/run", config = {
    "command": "test -f {{DIR}}/ok || { echo 'not ready' >&2; exit 3; }; echo $(( $(cat $IN) * 2 )) > $MARIN_OUTPUT_PATH/n.txt",
    "env": {"IN": output_path_of(gen, "n.txt")},
})
report = ExecutorStep(name = "report", op = "shell/run", config = {
    "command": "cp $IN $MARIN_OUTPUT_PATH/final.txt",
    "env": {"IN": output_path_of(flaky, "n.txt")},
})
side = ExecutorStep(name = "side", op = "shell/run", config = {"command": "echo side > $MARIN_OUTPUT_PATH/side.txt"})
executor_main(gen, flaky, report, side)
`

func statusOf(t *testing.T, prefix, relPath string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(prefix, relPath, ".executor_status"))
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct{ Status string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%s status line %q: %v", relPath, line, err)
		}
		out = append(out, e.Status)
	}
	return out
}

func TestFailureDepFailedThenRerunFinishes(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "graph.star")
	write(t, script, strings.ReplaceAll(graphScript, "{{DIR}}", dir))
	prefix := filepath.Join(dir, "out")
	p := planned(t, script, "file://"+prefix)
	rel := map[string]string{}
	for _, s := range p.Steps {
		rel[s.Step.Name] = s.RelPath
	}

	r := marin(t, dir, nil, "graph.star", "--prefix", prefix, "--log-format", "json")
	if r.code != exitFailed {
		t.Fatalf("exit %d, want %d: %s", r.code, exitFailed, r.stderr)
	}
	mustContain(t, r.stderr, "1 step(s) failed: ["+rel["flaky"]+"]", "not run because a dependency failed: ["+rel["report"]+"]")
	mustContain(t, r.stdout, "not ready") // the plugin's own message reaches the summary
	for name, want := range map[string]string{"gen": "RUNNING,SUCCESS", "flaky": "RUNNING,FAILED", "report": "DEP_FAILED", "side": "RUNNING,SUCCESS"} {
		if got := strings.Join(statusOf(t, prefix, rel[name]), ","); got != want {
			t.Errorf("after first run %s: status history %s, want %s", name, got, want)
		}
	}
	// JSON logs are one object per line.
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(line, "marin:") {
			continue
		}
		if !json.Valid([]byte(line)) {
			t.Errorf("--log-format json printed a non-JSON line: %q", line)
		}
	}

	d := marin(t, dir, nil, "graph.star", "--prefix", prefix, "--dry-run", "--json")
	var decisions []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(d.stdout), "\n") {
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		decisions = append(decisions, m)
	}
	want := map[string]string{"gen": "skip", "flaky": "run", "report": "run", "side": "skip"}
	for _, m := range decisions {
		if m["decision"] != want[m["name"].(string)] {
			t.Errorf("dry run after failure: %v decision %v, want %s", m["name"], m["decision"], want[m["name"].(string)])
		}
	}
	if r := marin(t, dir, nil, "graph.star", "--prefix", prefix, "--force-run-failed=false", "--dry-run"); !strings.Contains(r.stdout, "blocked") {
		t.Errorf("--force-run-failed=false: failed step not blocked:\n%s", r.stdout)
	}

	write(t, filepath.Join(dir, "ok"), "")
	r = marin(t, dir, nil, "graph.star", "--prefix", prefix)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d: %s", r.code, r.stderr)
	}
	for name, want := range map[string]string{"gen": "RUNNING,SUCCESS", "flaky": "RUNNING,FAILED,RUNNING,SUCCESS", "report": "DEP_FAILED,RUNNING,SUCCESS", "side": "RUNNING,SUCCESS"} {
		if got := strings.Join(statusOf(t, prefix, rel[name]), ","); got != want {
			t.Errorf("after rerun %s: status history %s, want %s", name, got, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(prefix, rel["report"], "final.txt"))
	if err != nil || strings.TrimSpace(string(b)) != "42" {
		t.Errorf("final.txt = %q, %v", b, err)
	}
	exps, _ := filepath.Glob(filepath.Join(prefix, "experiments", "graph-*.json"))
	if len(exps) != 1 {
		t.Errorf("experiment records %v, want one", exps)
	}
}

func TestHungStepFailsWhileIndependentStepsFinish(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "hang.star"), `
hang = ExecutorStep(name = "hang", op = "shell/run", timeout = 1, config = {"command": "sleep 60"})
after = ExecutorStep(name = "after", op = "shell/run", config = {"command": "true", "env": {"DEP": output_path_of(hang)}})
free = ExecutorStep(name = "free", op = "shell/run", config = {"command": "sleep 0.3; echo done > $MARIN_OUTPUT_PATH/x"})
executor_main(hang, after, free)
`)
	r := marin(t, dir, nil, "hang.star", "--prefix", "out")
	if r.code != exitFailed {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	mustContain(t, r.stderr, "1 step(s) failed: [hang-", "not run because a dependency failed: [after-")
	mustContain(t, r.stdout, "timed out after 1s")
	if m, _ := filepath.Glob(filepath.Join(dir, "out", "free-*", "x")); len(m) != 1 {
		t.Error("independent step did not finish")
	}
}

func TestUnservedOpFailsBeforeAnythingRuns(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "s.star"), `
a = ExecutorStep(name = "a", op = "shell/run", config = {"command": "true"})
b = ExecutorStep(name = "b", op = "nobody/serves", config = {"x": output_path_of(a)})
executor_main(a, b)
`)
	r := marin(t, dir, nil, "s.star", "--prefix", "out")
	if r.code != exitNoPlugin {
		t.Fatalf("exit %d, want %d: %s", r.code, exitNoPlugin, r.stderr)
	}
	mustContain(t, r.stderr, `op "nobody/serves"`, "nothing ran")
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		if m, _ := filepath.Glob(filepath.Join(dir, "out", "a-*")); len(m) > 0 {
			t.Errorf("step a ran although the plan had an unserved op: %v", m)
		}
	}
}

func TestRunOnlyRunsSelectionAndItsDependencies(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "s.star"), `
a = ExecutorStep(name = "a", op = "shell/run", config = {"command": "true"})
b = ExecutorStep(name = "b", op = "shell/run", config = {"command": "true", "env": {"IN": output_path_of(a)}})
c = ExecutorStep(name = "c", op = "shell/run", config = {"command": "true"})
executor_main(a, b, c)
`)
	r := marin(t, dir, nil, "s.star", "--prefix", "out", "--run-only", "^b$")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for name, want := range map[string]bool{"a": true, "b": true, "c": false} {
		m, _ := filepath.Glob(filepath.Join(dir, "out", name+"-*", ".executor_status"))
		if (len(m) == 1) != want {
			t.Errorf("step %s ran=%v, want %v", name, len(m) == 1, want)
		}
	}
}

func TestExplainShowsWhyAStepReruns(t *testing.T) {
	dir := t.TempDir()
	src := `
a = ExecutorStep(name = "train", op = "shell/run", config = {"command": "true", "env": {"LEARNING_RATE": LR, "NOTE": unversioned("x")}})
executor_main(a)
`
	write(t, filepath.Join(dir, "s.star"), strings.ReplaceAll(src, "LR", `"2e-05"`))
	if r := marin(t, dir, nil, "s.star", "--prefix", "out"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	write(t, filepath.Join(dir, "s.star"), strings.ReplaceAll(src, "LR", `"3e-05"`))
	r := marin(t, dir, nil, "s.star", "--prefix", "out", "--dry-run")
	mustContain(t, r.stdout, "changed since train-", `env.LEARNING_RATE "2e-05" → "3e-05"`)
	r = marin(t, dir, nil, "explain", "s.star", "train", "--prefix", "out")
	if r.code != 0 {
		t.Fatalf("explain exit %d: %s", r.code, r.stderr)
	}
	mustContain(t, r.stdout, "step:", "train", "op:", "shell/run", `env.LEARNING_RATE "2e-05" → "3e-05"`, "version (hash", "not hashed (unversioned or non-semantic): env.NOTE", `"NOTE": "x"`, "s.star:2:17")
	if r := marin(t, dir, nil, "explain", "s.star", "nope", "--prefix", "out"); r.code != exitUsage || !strings.Contains(r.stderr, "no step matches") {
		t.Errorf("explain of a missing step: exit %d %s", r.code, r.stderr)
	}
}

func TestThirdPartyPluginOnPluginPath(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("plugin processes are exercised on linux")
	}
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "marin-plugin-wordcount"), ".")
	build.Dir = "../../plugins/examples/wordcount"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build example plugin: %v\n%s", err, out)
	}
	env := []string{"MARIN_PLUGIN_PATH=" + pluginDir}
	r := marin(t, dir, env, "plugins")
	if r.code != 0 {
		t.Fatalf("plugins: exit %d: %s", r.code, r.stderr)
	}
	mustContain(t, r.stdout, "shell", "builtin", "wordcount", "wordcount/count", filepath.Join(pluginDir, "marin-plugin-wordcount"))
	r = marin(t, dir, env, "plugins", "--json")
	if !strings.Contains(r.stdout, `"protocol_version":1`) {
		t.Errorf("plugins --json: %s", r.stdout)
	}

	write(t, filepath.Join(dir, "words.txt"), "the cat and the hat\n")
	write(t, filepath.Join(dir, "wc.star"), `
wc = ExecutorStep(name = "wc", op = "wordcount/count", config = {"input": "`+filepath.Join(dir, "words.txt")+`"})
executor_main(wc)
`)
	r = marin(t, dir, env, "wc.star", "--prefix", "out")
	if r.code != 0 {
		t.Fatalf("run: exit %d: %s", r.code, r.stderr)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "out", "wc-*", "counts.json"))
	if len(m) != 1 {
		t.Fatal("no counts.json")
	}
	b, _ := os.ReadFile(m[0])
	if !strings.Contains(string(b), `"the": 2`) && !strings.Contains(string(b), `"the":2`) {
		t.Errorf("counts.json = %s", b)
	}
	info, _ := os.ReadFile(filepath.Join(filepath.Dir(m[0]), ".executor_info"))
	mustContain(t, string(info), `"name": "wordcount"`)

	// The plugin's schema and its Plan reach the host: a misspelt key and a
	// missing file are plan-time diagnostics at their script positions.
	write(t, filepath.Join(dir, "bad.star"), `
wc = ExecutorStep(name = "wc", op = "wordcount/count", config = {
    "input": "/no/such/file.txt",
})
wc2 = ExecutorStep(name = "wc2", op = "wordcount/count", config = {
    "inputs": ["x"],
})
executor_main(wc, wc2)
`)
	r = marin(t, dir, env, "bad.star", "--prefix", "out", "--dry-run")
	if r.code != exitScript {
		t.Fatalf("bad.star: exit %d: %s", r.code, r.stderr)
	}
	mustContain(t, r.stderr, "bad.star:3:5: ExecutorStep.config.input: stat /no/such/file.txt: no such file or directory",
		`bad.star:6:5: ExecutorStep.config.inputs: unknown key (did you mean "input"?)`, "bad.star:5:58: ExecutorStep.config.input: is required")
}

func TestHelpEverywhereAndUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--help"}, {"explain", "--help"}, {"plugins", "--help"}, {"plugin", "--help"}, {"plugin", "serve", "--help"}, {"version", "--help"}, {"datasets", "--help"}} {
		r := marin(t, dir, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	mustContain(t, marin(t, dir, nil, "--help").stdout, "Exit codes")
	if r := marin(t, dir, nil); r.code != exitUsage {
		t.Errorf("no script: exit %d", r.code)
	}
	if r := marin(t, dir, nil, "x.star", "--bogus"); r.code != exitUsage {
		t.Errorf("unknown flag: exit %d", r.code)
	}
	if r := marin(t, dir, nil, "x.star", "--json"); r.code != exitUsage || !strings.Contains(r.stderr, "--json goes with --dry-run") {
		t.Errorf("--json without --dry-run: exit %d %s", r.code, r.stderr)
	}
	if r := marin(t, dir, nil, "plugin", "serve", "nope"); r.code != exitUsage || !strings.Contains(r.stderr, `no plugin named "nope"`) {
		t.Errorf("serve unknown plugin: exit %d %s", r.code, r.stderr)
	}
	if r := marin(t, dir, nil, "version"); r.code != 0 || !strings.Contains(r.stdout, "plugin protocol 1") {
		t.Errorf("version: %d %s", r.code, r.stdout)
	}
	if r := marin(t, dir, nil, "datasets"); r.code != 0 || !strings.Contains(r.stdout, "allenai/tulu-3-sft-mixture") {
		t.Errorf("datasets: %d %s", r.code, r.stdout)
	}
}

func mustContain(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

func TestKilledHostLeavesNoPluginRunning(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signals are Linux-only")
	}
	dir := t.TempDir()
	marker := fmt.Sprintf("%d.%d", os.Getpid(), time.Now().UnixNano()%100000)
	write(t, filepath.Join(dir, "s.star"), `
s = ExecutorStep(name = "long", op = "shell/run", config = {"command": ["sleep", "`+marker+`"]})
executor_main(s)
`)
	cmd := exec.Command(marinBin, "s.star", "--prefix", "out")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "MARIN_PLUGIN_PATH=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	running := func() bool { return exec.Command("pgrep", "-f", "sleep "+marker).Run() == nil }
	deadline := time.Now().Add(20 * time.Second)
	for !running() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the step's command never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill() // SIGKILL: no chance to clean up
	_ = cmd.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for running() {
		if time.Now().After(deadline) {
			exec.Command("pkill", "-f", "sleep "+marker).Run()
			t.Fatal("the step's command outlived the killed marin")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
