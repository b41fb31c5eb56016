package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/runner/slurm/slurmtest"
)

// These tests run against the single-node Slurm cluster scripts/test starts
// (scripts/slurm-cluster); without one they skip, unless
// MARIN_REQUIRE_SLURM=1.

var slurmFlags = []string{"--runner", "slurm", "--shared-prefix", "--poll", "500ms"}

// TestSlurmQuickstart runs the reduced quickstart with every step a Slurm
// job and checks that its results equal the local run's, bit for bit.
func TestSlurmQuickstart(t *testing.T) {
	slurmtest.Require(t)
	if testing.Short() {
		t.Skip("trains two small models")
	}
	repo, _ := filepath.Abs("../..")
	_, local, _ := localQuickstart(t, repo)
	script := quickScript(t, repo, t.TempDir())
	prefix := t.TempDir()
	start := time.Now()
	r := marin(t, repo, nil, append([]string{script, "--prefix", prefix}, slurmFlags...)...)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("reduced quickstart on slurm: %s", time.Since(start).Round(time.Second))
	mustContain(t, r.stderr, "step submitted")

	sameTraining(t, local, prefix, "the local run")
	for _, name := range []string{"quickstart_before_sft", "quickstart_after_sft"} {
		if w, g := readResults(t, local, name), readResults(t, prefix, name); w.Correct != g.Correct || w.Examples != g.Examples {
			t.Errorf("%s: %d/%d correct on slurm, %d/%d locally", name, g.Correct, g.Examples, w.Correct, w.Examples)
		}
	}
	// Same paths, and every step ran as a job that recorded its own result.
	t.Chdir(repo) // the quickstart names its tokenizer relative to the repository
	for _, st := range planned(t, script, "file://"+prefix).Steps {
		p := strings.TrimPrefix(st.OutputPath, "file://")
		if _, err := os.Stat(filepath.Join(local, st.RelPath)); err != nil {
			t.Errorf("step %s: no such output in the local run: %v", st.RelPath, err)
		}
		h, err := executor.ReadStatus(context.Background(), st.OutputPath)
		if err != nil || len(h) != 2 || h[1].Status != executor.StatusSuccess || !strings.HasPrefix(h[1].Message, "slurm job ") {
			t.Errorf("step %s: history %+v (%v), want RUNNING then SUCCESS from its slurm job", st.RelPath, h, err)
		}
		if logs, _ := filepath.Glob(filepath.Join(p, executor.JobsDir, "attempt-1", "slurm-*.err")); len(logs) != 1 {
			t.Errorf("step %s: job stderr files %v", st.RelPath, logs)
		}
	}
}

// raceScript writes a diamond of shell steps, each appending its name to
// log when it runs.
func raceScript(t *testing.T, dir, log string) string {
	t.Helper()
	p := filepath.Join(dir, "race.star")
	write(t, p, fmt.Sprintf(`
def step(name, deps):
    env = {"STEP": name}
    for k, v in deps.items():
        env[k] = output_path_of(v)
    return ExecutorStep(name = "race/" + name, op = "shell/run", config = {
        "command": "echo $STEP >> %s; sleep 1; echo ok > $MARIN_OUTPUT_PATH/out",
        "env": env,
    })
a = step("a", {})
b = step("b", {"A": a})
c = step("c", {"A": a})
d = step("d", {"B": b, "C": c})
executor_main(d)
`, log))
	return p
}

// TestSlurmHostsRace starts three marin processes on one prefix at once:
// every step runs exactly once, as one job.
func TestSlurmHostsRace(t *testing.T) {
	slurmtest.Require(t)
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "ran.log")
	script := raceScript(t, dir, log)
	prefix := filepath.Join(dir, "out")
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < 3; i++ {
		cmd := exec.Command(marinBin, append([]string{script, "--prefix", prefix}, slurmFlags...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "MARIN_PREFIX=", "MARIN_PLUGIN_PATH=")
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		cmds, outs = append(cmds, cmd), append(outs, &b)
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("host %d: %v:\n%s", i, err, outs[i])
		}
	}
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	ran := strings.Fields(string(raw))
	counts := map[string]int{}
	for _, s := range ran {
		counts[s]++
	}
	for _, s := range []string{"a", "b", "c", "d"} {
		if counts[s] != 1 {
			t.Errorf("step %s ran %d times (log %q)", s, counts[s], ran)
		}
	}
	for _, st := range planned(t, script, "file://"+prefix).Steps {
		h, err := executor.ReadStatus(context.Background(), st.OutputPath)
		if err != nil || len(h) != 2 || h[1].Status != executor.StatusSuccess {
			t.Errorf("step %s: history %+v (%v)", st.RelPath, h, err)
		}
		jobs, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(st.OutputPath, "file://"), executor.JobsDir, "*"))
		if len(jobs) != 1 {
			t.Errorf("step %s: %d job attempts %v", st.RelPath, len(jobs), jobs)
		}
	}
}

// slowScript is one step that writes started and then waits for fast to
// exist before finishing.
func slowScript(t *testing.T, dir, name string) (script, started, fast string) {
	t.Helper()
	started, fast = filepath.Join(dir, "started"), filepath.Join(dir, "fast")
	script = filepath.Join(dir, "slow.star")
	write(t, script, fmt.Sprintf(`
executor_main(ExecutorStep(name = %q, op = "shell/run", config = {
    "command": "touch %s; while ! test -f %s; do sleep 0.2; done; echo ok > $MARIN_OUTPUT_PATH/out",
}))
`, name, started, fast))
	return script, started, fast
}

// startSlowHost starts marin on a slowScript and waits until its step runs.
func startSlowHost(t *testing.T, dir, script, prefix, started string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	host := exec.Command(marinBin, append([]string{script, "--prefix", prefix}, slurmFlags...)...)
	host.Dir = dir
	var out bytes.Buffer
	host.Stdout, host.Stderr = &out, &out
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	waitFile(t, started, host, &out)
	return host, &out
}

func waitFile(t *testing.T, path string, host *exec.Cmd, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			host.Process.Kill()
			t.Fatalf("%s never appeared; host output:\n%s", path, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jobOf returns the Slurm job id of a step's job, from squeue.
func jobOf(t *testing.T, step string) string {
	t.Helper()
	out, err := exec.Command("squeue", "--noheader", "--states=all", "--name=marin:"+step, "--format=%i").Output()
	if err != nil {
		t.Fatalf("squeue: %v", err)
	}
	ids := strings.Fields(string(out))
	if len(ids) != 1 {
		t.Fatalf("squeue lists jobs %v for step %s", ids, step)
	}
	return ids[0]
}

func jobState(t *testing.T, id string) string {
	t.Helper()
	out, err := exec.Command("squeue", "--noheader", "--states=all", "--jobs="+id, "--format=%T").CombinedOutput()
	if err != nil {
		t.Fatalf("squeue: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestSlurmScancelFailsTheStepAndTheRerunFinishesIt kills a step's job
// with scancel: the step becomes FAILED with Slurm's reason, and the next
// run retries it to SUCCESS.
func TestSlurmScancelFailsTheStepAndTheRerunFinishesIt(t *testing.T) {
	slurmtest.Require(t)
	t.Parallel()
	dir := t.TempDir()
	step := fmt.Sprintf("scancel/%d", time.Now().UnixNano())
	script, started, fast := slowScript(t, dir, step)
	prefix := filepath.Join(dir, "out")
	host, out := startSlowHost(t, dir, script, prefix, started)
	id := jobOf(t, step)
	if b, err := exec.Command("scancel", id).CombinedOutput(); err != nil {
		t.Fatalf("scancel %s: %v: %s", id, err, b)
	}
	if code := exitCode(host.Wait()); code != exitFailed {
		t.Fatalf("host exit %d, want %d:\n%s", code, exitFailed, out)
	}
	st := planned(t, script, "file://"+prefix).Steps[0]
	h, err := executor.ReadStatus(context.Background(), st.OutputPath)
	if err != nil || len(h) != 2 || h[1].Status != executor.StatusFailed {
		t.Fatalf("history %+v (%v)", h, err)
	}
	for _, want := range []string{"slurm job " + id, "CANCELLED", "scancel"} {
		if !strings.Contains(h[1].Message, want) {
			t.Errorf("FAILED message %q lacks %q", h[1].Message, want)
		}
	}
	mustContain(t, out.String(), "end of the job's output")

	write(t, fast, "")
	r := marin(t, dir, nil, append([]string{script, "--prefix", prefix}, slurmFlags...)...)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	h, _ = executor.ReadStatus(context.Background(), st.OutputPath)
	var got []string
	for _, e := range h {
		got = append(got, string(e.Status))
	}
	if strings.Join(got, ",") != "RUNNING,FAILED,RUNNING,SUCCESS" || h[2].Message != "attempt 2 on slurm" {
		t.Errorf("history after the rerun: %+v", h)
	}
}

// TestSlurmInterruptCancelsTheJobs sends Ctrl-C to a host whose step runs
// as a job: the job is cancelled and the step recorded FAILED (interrupted).
func TestSlurmInterruptCancelsTheJobs(t *testing.T) {
	slurmtest.Require(t)
	t.Parallel()
	dir := t.TempDir()
	step := fmt.Sprintf("interrupt/%d", time.Now().UnixNano())
	script, started, _ := slowScript(t, dir, step)
	prefix := filepath.Join(dir, "out")
	host, out := startSlowHost(t, dir, script, prefix, started)
	id := jobOf(t, step)
	if err := host.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(host.Wait()); code != exitInterrupted {
		t.Fatalf("host exit %d, want %d:\n%s", code, exitInterrupted, out)
	}
	if s := jobState(t, id); s != "CANCELLED" {
		t.Errorf("slurm job %s is %q after the host's Ctrl-C, want CANCELLED", id, s)
	}
	st := planned(t, script, "file://"+prefix).Steps[0]
	h, err := executor.ReadStatus(context.Background(), st.OutputPath)
	if err != nil || len(h) != 2 || h[1].Status != executor.StatusFailed || !strings.Contains(h[1].Message, "interrupted; cancelled slurm job "+id) {
		t.Errorf("history %+v (%v)", h, err)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimPrefix(st.OutputPath, "file://"), executor.LockFile)); !os.IsNotExist(err) {
		t.Errorf("lock left behind: %v", err)
	}
}
