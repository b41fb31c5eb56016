package slurm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/marin-go/marin/plugins/golden"

	"github.com/marin-go/marin/host/runner"
	"github.com/marin-go/marin/host/runner/slurm/slurmtest"
)

// goldenRunner has fixed paths, so the goldens do not depend on the machine.
func goldenRunner() *Runner {
	return &Runner{cfg: Config{
		Binary: "/opt/marin/bin/marin", WorkDir: "/home/ada/exp",
		LogDir: "/home/ada/exp/marin-slurm-logs", CoordinatorPort: DefaultCoordinatorPort,
	}}
}

func mustResources(t *testing.T, raw map[string]any) runner.Resources {
	t.Helper()
	r, err := runner.ParseResources(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestJobGolden checks the sbatch arguments and batch scripts of typical
// steps against testdata/*.golden; regenerate them with
//
//	go test ./host/runner/slurm -run TestJobGolden -update
func TestJobGolden(t *testing.T) {
	cases := []struct {
		name      string
		prefix    string
		step      string
		resources map[string]any
	}{
		{"cpu_shared_file_prefix", "file:///shared/marin", "tokenized/quickstart_chat", nil},
		{"gpu_multinode_object_store", "gs://bucket/marin", "checkpoints/tulu3_sft", map[string]any{
			"node_count": int64(2), "device": "cuda", "num_devices": int64(8), "cpus": int64(32), "memory": "480G",
			"time_limit": "1-12:00:00", "partition": "gpu", "account": "nlp", "qos": "high",
		}},
		{"gres_and_go_duration", "file:///shared/marin", "eval/it's \"quoted\" 100%", map[string]any{
			"device": "cuda", "gres": "gpu:h100:4", "time_limit": "90m", "memory": "1536M",
		}},
		{"tpu", "s3://bucket/marin", "checkpoints/tpu", map[string]any{"device": "tpu", "num_devices": int64(4)}},
	}
	r := goldenRunner()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := c.prefix + "/" + c.step + "-abc123"
			dir := out + "/.executor_jobs/attempt-2"
			spec := runner.Spec{
				StepName: c.step, Op: "train", OutputPath: out, Prefix: c.prefix, Attempt: 2,
				JobDir: dir, JobURL: dir + "/job.json", Resources: mustResources(t, c.resources),
				Env: map[string]string{"MARIN_LOG_LEVEL": "debug"},
			}
			desc, err := r.Describe(spec)
			if err != nil {
				t.Fatal(err)
			}
			got := "# Describe\n" + desc + "\n# sbatch arguments\n" + strings.Join(r.Args(spec), "\n") + "\n# script (stdin)\n" + r.Script(spec)
			path := filepath.Join("testdata", c.name+".golden")
			golden.Compare(t, path, []byte(got))
		})
	}
}

// The batch scripts are valid bash.
func TestScriptsParse(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	r := goldenRunner()
	for _, n := range []int{1, 3} {
		spec := runner.Spec{StepName: "a'b", JobURL: "file:///x/it's/job.json", JobDir: "file:///x", Resources: runner.Resources{Nodes: n}}
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(r.Script(spec))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%d node(s): bash -n: %v: %s", n, err, out)
		}
	}
}

func TestState(t *testing.T) {
	cases := []struct {
		state, reason, exit, nodes string
		phase                      runner.Phase
		want                       string
	}{
		{"PENDING", "Priority", "", "", runner.Pending, "Priority"},
		{"PENDING", "None", "", "", runner.Pending, ""},
		{"REQUEUE_HOLD", "JobHeldAdmin", "", "", runner.Pending, "REQUEUE_HOLD JobHeldAdmin"},
		{"RUNNING", "None", "", "n1", runner.Running, ""},
		{"COMPLETING", "None", "", "n1", runner.Running, ""},
		{"COMPLETED", "None", "0:0", "n1", runner.Succeeded, ""},
		{"CANCELLED", "None", "", "n1", runner.Failed, "CANCELLED (cancelled by scancel or an administrator)"},
		{"CANCELLED by 1000", "None", "0:15", "n1", runner.Failed, "CANCELLED by 1000 (cancelled by scancel or an administrator; exit code 0:15)"},
		{"NODE_FAIL", "NodeDown", "", "n1", runner.Failed, "NODE_FAIL (a node of the job failed; reason NodeDown)"},
		{"TIMEOUT", "TimeLimit", "0:0", "n1", runner.Failed, "TIMEOUT (killed at its time limit (resources.time_limit); reason TimeLimit)"},
		{"PREEMPTED", "None", "", "", runner.Failed, "PREEMPTED (preempted by another job)"},
		{"OUT_OF_MEMORY", "OutOfMemory", "0:125", "n1", runner.Failed, "OUT_OF_MEMORY (ran out of memory (resources.memory); reason OutOfMemory; exit code 0:125)"},
		{"FAILED", "NonZeroExitCode", "3:0", "n1", runner.Failed, "FAILED (the batch script failed; reason NonZeroExitCode; exit code 3:0)"},
		{"WEIRD_NEW_STATE", "", "", "", runner.Failed, "WEIRD_NEW_STATE"},
	}
	for _, c := range cases {
		s := state(c.state, c.reason, c.exit, c.nodes)
		if s.Phase != c.phase || s.Reason != c.want || s.Nodes != c.nodes {
			t.Errorf("state(%q, %q, %q): %v %q %q, want %v %q", c.state, c.reason, c.exit, s.Phase, s.Reason, s.Nodes, c.phase, c.want)
		}
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out")
	var b strings.Builder
	for i := 0; i < 20000; i++ {
		b.WriteString("line ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("\n")
	}
	b.WriteString("the end\n")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := tail(p, 3)
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || lines[2] != "the end" {
		t.Errorf("tail: %q", got)
	}
	if tail(filepath.Join(t.TempDir(), "missing"), 3) != "" {
		t.Error("missing file: want nothing")
	}
}

func TestMemoryAndTime(t *testing.T) {
	for mib, want := range map[int64]string{512: "512M", 1024: "1G", 1536: "1536M", 480 * 1024: "480G", 2 * 1024 * 1024: "2T"} {
		if got := slurmMemory(mib); got != want {
			t.Errorf("slurmMemory(%d) = %s, want %s", mib, got, want)
		}
	}
	for d, want := range map[time.Duration]string{90 * time.Minute: "01:30:00", 36 * time.Hour: "1-12:00:00", 1500 * time.Millisecond: "00:00:02"} {
		if got := slurmTime(d); got != want {
			t.Errorf("slurmTime(%s) = %s, want %s", d, got, want)
		}
	}
}

// fakeMarin writes an executable standing in for marin run-step.
func fakeMarin(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "fake-marin")
	if err := os.WriteFile(p, []byte("#!/bin/bash\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitPhase(t *testing.T, j runner.Job, want runner.Phase) runner.State {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := j.State(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if s.Phase == want || s.Phase.Done() {
			if s.Phase != want {
				t.Fatalf("%s: %v, want %v", j.ID(), s, want)
			}
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after a minute", j.ID(), s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func clusterSpec(dir, step string) runner.Spec {
	jobDir := "file://" + filepath.Join(dir, "out", ".executor_jobs", "attempt-1")
	return runner.Spec{StepName: step, Op: "shell/run", OutputPath: "file://" + filepath.Join(dir, "out"), Attempt: 1,
		JobDir: jobDir, JobURL: jobDir + "/job.json", Resources: runner.Resources{Nodes: 1, Device: "cpu"},
		Env: map[string]string{"MARIN_LOG_LEVEL": "debug"}}
}

// On the test cluster: a job runs the binary with the job URL and the rank
// environment, in the working directory, and its output is kept.
func TestClusterJobRuns(t *testing.T) {
	slurmtest.Require(t)
	dir := t.TempDir()
	bin := fakeMarin(t, dir, `echo "args=$*"; echo "cwd=$PWD"; env | grep '^MARIN_' | sort; echo oops >&2; exit 0`)
	r, err := New(Config{Binary: bin, WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	spec := clusterSpec(dir, "tests/it works")
	j, err := r.Submit(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(j.ID(), "slurm job ") {
		t.Errorf("id %q", j.ID())
	}
	s := waitPhase(t, j, runner.Succeeded)
	if s.Nodes == "" {
		t.Errorf("state %+v names no node", s)
	}
	logs := j.Logs(context.Background(), 50)
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	for _, want := range []string{
		"args=run-step --job " + spec.JobURL, "cwd=" + dir, "MARIN_LOG_LEVEL=debug", "MARIN_NODE_RANK=0", "MARIN_NUM_NODES=1",
		"MARIN_NODE_LIST=" + host, "MARIN_COORDINATOR_ADDRESS=" + host + ":29500", "oops",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("job output lacks %q:\n%s", want, logs)
		}
	}
	if !strings.Contains(logs, filepath.Join(dir, "out", ".executor_jobs", "attempt-1", "slurm-")) {
		t.Errorf("job output is not under the step's attempt directory:\n%s", logs)
	}
	id := strings.TrimPrefix(j.ID(), "slurm job ")
	out, err := exec.Command("squeue", "--noheader", "--states=all", "--jobs="+id, "--format=%j").Output()
	if err != nil || strings.TrimSpace(string(out)) != "marin:tests/it works" {
		t.Errorf("job name %q (%v), want marin:tests/it works", out, err)
	}
}

func TestClusterJobFailsAndIsCancelled(t *testing.T) {
	slurmtest.Require(t)
	dir := t.TempDir()
	r, err := New(Config{Binary: fakeMarin(t, dir, `echo dying >&2; exit 3`), WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	j, err := r.Submit(context.Background(), clusterSpec(dir, "tests/fails"))
	if err != nil {
		t.Fatal(err)
	}
	s := waitPhase(t, j, runner.Failed)
	if !strings.Contains(s.Reason, "FAILED") || !strings.Contains(s.Reason, "exit code 3:0") && !strings.Contains(s.Reason, "NonZeroExitCode") {
		t.Errorf("reason %q", s.Reason)
	}
	if !strings.Contains(j.Logs(context.Background(), 5), "dying") {
		t.Errorf("logs %q", j.Logs(context.Background(), 5))
	}

	dir2 := t.TempDir()
	r, err = New(Config{Binary: fakeMarin(t, dir2, `sleep 300`), WorkDir: dir2})
	if err != nil {
		t.Fatal(err)
	}
	j, err = r.Submit(context.Background(), clusterSpec(dir2, "tests/sleeps"))
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, j, runner.Running)
	if err := j.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = waitPhase(t, j, runner.Failed)
	if !strings.HasPrefix(s.Reason, "CANCELLED") || !strings.Contains(s.Reason, "scancel") {
		t.Errorf("reason %q", s.Reason)
	}
	if err := j.Cancel(context.Background()); err != nil {
		t.Errorf("cancelling an ended job: %v", err)
	}
}
