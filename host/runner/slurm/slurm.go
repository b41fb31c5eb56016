// Package slurm runs marin steps as Slurm batch jobs, through the standard
// commands found on PATH and configured the way the user's own sbatch is
// (/etc/slurm/slurm.conf or $SLURM_CONF): sbatch submits, squeue (and sacct
// where accounting keeps finished jobs) reports, scancel cancels.
//
// A step becomes one job named "marin:{step name}" that runs
// `marin run-step --job URL` in the submitting directory. Its resources map
// to --nodes (with one task per node), --cpus-per-task, --mem,
// --gpus-per-node (or --gres), --time, --partition, --account and --qos; its
// stdout and stderr land in the step's attempt directory when the prefix is
// a shared file system, else in Config.LogDir. Every node of a multi-node
// job gets the node list and its rank in the environment:
//
//	MARIN_NODE_RANK            0 … MARIN_NUM_NODES-1 (rank 0 holds the lease)
//	MARIN_NUM_NODES            the job's node count
//	MARIN_NODE_LIST            host names, comma separated, rank order
//	MARIN_COORDINATOR_ADDRESS  first node:port, for a distributed backend
//
// Jobs are never requeued by Slurm: a job that is preempted or loses a node
// fails, and the next marin run retries the step.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/marin-go/marin/host/runner"
)

// DefaultCoordinatorPort is the port of MARIN_COORDINATOR_ADDRESS.
const DefaultCoordinatorPort = 29500

// commandTimeout bounds one Slurm command.
const commandTimeout = 60 * time.Second

// Config configures the runner.
type Config struct {
	// Binary is the marin executable the jobs run; it must exist at this
	// path on every node. Default: this process's own executable.
	Binary string
	// WorkDir is the jobs' working directory (--chdir), so that relative
	// paths in a script mean the same on the nodes. Default: the current
	// directory.
	WorkDir string
	// LogDir receives the jobs' stdout and stderr when the prefix is not a
	// file:// directory. Default: WorkDir/marin-slurm-logs.
	LogDir string
	// CoordinatorPort is the port of MARIN_COORDINATOR_ADDRESS; default
	// DefaultCoordinatorPort.
	CoordinatorPort int
}

// Runner submits steps to Slurm.
type Runner struct {
	cfg                     Config
	sbatch, squeue, scancel string
	sacct                   string // "" when not installed
}

// New finds the Slurm commands on PATH.
func New(cfg Config) (*Runner, error) {
	r := &Runner{cfg: cfg}
	for _, c := range []struct {
		name string
		dst  *string
	}{{"sbatch", &r.sbatch}, {"squeue", &r.squeue}, {"scancel", &r.scancel}} {
		p, err := exec.LookPath(c.name)
		if err != nil {
			return nil, fmt.Errorf("slurm runner: %s not found on PATH; run marin on a machine that can submit Slurm jobs (a login node)", c.name)
		}
		*c.dst = p
	}
	r.sacct, _ = exec.LookPath("sacct")
	if r.cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("slurm runner: find the marin executable for the jobs: %w", err)
		}
		r.cfg.Binary = exe
	}
	if !filepath.IsAbs(r.cfg.Binary) {
		abs, err := filepath.Abs(r.cfg.Binary)
		if err != nil {
			return nil, err
		}
		r.cfg.Binary = abs
	}
	if r.cfg.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("slurm runner: %w", err)
		}
		r.cfg.WorkDir = wd
	}
	if r.cfg.LogDir == "" {
		r.cfg.LogDir = filepath.Join(r.cfg.WorkDir, "marin-slurm-logs")
	}
	if r.cfg.CoordinatorPort == 0 {
		r.cfg.CoordinatorPort = DefaultCoordinatorPort
	}
	return r, nil
}

// Name is "slurm".
func (r *Runner) Name() string { return runner.Slurm }

// resourceArgs are the sbatch options for a step's resources.
func resourceArgs(res runner.Resources) []string {
	args := []string{fmt.Sprintf("--nodes=%d", res.Nodes), "--ntasks-per-node=1"}
	if res.CPUs > 0 {
		args = append(args, fmt.Sprintf("--cpus-per-task=%d", res.CPUs))
	}
	if res.MemoryMiB > 0 {
		args = append(args, "--mem="+slurmMemory(res.MemoryMiB))
	}
	switch {
	case res.Gres != "":
		args = append(args, "--gres="+res.Gres)
	case res.Device == "cuda" && res.DevicesPerNode > 0:
		args = append(args, fmt.Sprintf("--gpus-per-node=%d", res.DevicesPerNode))
	case res.Device == "tpu" && res.DevicesPerNode > 0:
		args = append(args, fmt.Sprintf("--gres=tpu:%d", res.DevicesPerNode))
	}
	if res.TimeLimit > 0 {
		args = append(args, "--time="+slurmTime(res.TimeLimit))
	}
	for _, o := range []struct{ flag, v string }{{"--partition", res.Partition}, {"--account", res.Account}, {"--qos", res.QOS}} {
		if o.v != "" {
			args = append(args, o.flag+"="+o.v)
		}
	}
	return args
}

// Describe lists the sbatch options of spec's job.
func (r *Runner) Describe(spec runner.Spec) (string, error) {
	return strings.Join(resourceArgs(spec.Resources), " "), nil
}

// outputPaths are the directory and the file names (before the job id) of
// the job's stdout and stderr.
func (r *Runner) outputPaths(spec runner.Spec) (dir, base string) {
	if p, ok := strings.CutPrefix(spec.JobDir, "file://"); ok {
		return filepath.FromSlash(p), "slurm-"
	}
	return r.cfg.LogDir, fmt.Sprintf("%s-attempt-%d-", sanitize(spec.StepName), spec.Attempt)
}

// outputFiles are the job's stdout and stderr files; id "%j" gives the
// patterns sbatch reads (with a literal % doubled).
func (r *Runner) outputFiles(spec runner.Spec, id string) (out, errf string) {
	dir, base := r.outputPaths(spec)
	if id == "%j" {
		dir, base = strings.ReplaceAll(dir, "%", "%%"), strings.ReplaceAll(base, "%", "%%")
	}
	return filepath.Join(dir, base+id+".out"), filepath.Join(dir, base+id+".err")
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(name string) string { return unsafeChars.ReplaceAllString(name, "_") }

// Args are the sbatch arguments of spec's job (the script goes on stdin).
func (r *Runner) Args(spec runner.Spec) []string {
	out, errf := r.outputFiles(spec, "%j")
	args := []string{
		"--parsable",
		"--job-name=marin:" + spec.StepName,
		"--output=" + out,
		"--error=" + errf,
		"--chdir=" + r.cfg.WorkDir,
		"--no-requeue",
	}
	return append(args, resourceArgs(spec.Resources)...)
}

// Script is the batch script of spec's job.
func (r *Runner) Script(spec runner.Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/bash\n")
	fmt.Fprintf(&b, "# marin step %s, attempt %d, op %s\n# output %s\n", oneLine(spec.StepName), spec.Attempt, oneLine(spec.Op), oneLine(spec.OutputPath))
	b.WriteString("set -eu\n")
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, quote(spec.Env[k]))
	}
	b.WriteString("export MARIN_NUM_NODES=\"$SLURM_JOB_NUM_NODES\"\n")
	b.WriteString("export MARIN_NODE_LIST=\"$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | paste -sd, -)\"\n")
	fmt.Fprintf(&b, "export MARIN_COORDINATOR_ADDRESS=\"${MARIN_NODE_LIST%%%%,*}:%d\"\n", r.cfg.CoordinatorPort)
	cmd := quote(r.cfg.Binary) + " run-step --job " + quote(spec.JobURL)
	if spec.Resources.Nodes > 1 {
		// One task per node; each learns its rank from srun.
		b.WriteString("exec srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c 'export MARIN_NODE_RANK=\"$SLURM_PROCID\"; exec \"$@\"' marin-rank " + cmd + "\n")
	} else {
		b.WriteString("export MARIN_NODE_RANK=0\n")
		b.WriteString("exec " + cmd + "\n")
	}
	return b.String()
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

// quote makes s one shell word.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Submit runs sbatch.
func (r *Runner) Submit(ctx context.Context, spec runner.Spec) (runner.Job, error) {
	dir, _ := r.outputPaths(spec)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the job's log directory: %w", err)
	}
	// sbatch runs to completion even when the run is being interrupted:
	// a job submitted without its id known could not be cancelled.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commandTimeout)
	defer cancel()
	stdout, err := r.run(sctx, strings.NewReader(r.Script(spec)), r.sbatch, r.Args(spec)...)
	if err != nil {
		return nil, err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(stdout), ";")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return nil, fmt.Errorf("sbatch printed %q, not a job id", strings.TrimSpace(stdout))
	}
	out, errf := r.outputFiles(spec, id)
	return &job{r: r, id: id, out: out, err: errf}, nil
}

// run executes a Slurm command, returning its stdout, or an error with its
// stderr.
func (r *Runner) run(ctx context.Context, stdin *strings.Reader, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), &commandError{cmd: filepath.Base(name), msg: msg, err: err}
	}
	return out.String(), nil
}

type commandError struct {
	cmd, msg string
	err      error
}

func (e *commandError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("%s: %v", e.cmd, e.err)
	}
	return fmt.Sprintf("%s: %v: %s", e.cmd, e.err, e.msg)
}

func (e *commandError) Unwrap() error { return e.err }

// job is a submitted batch job.
type job struct {
	r        *Runner
	id       string
	out, err string // stdout and stderr files
}

func (j *job) ID() string { return "slurm job " + j.id }

// State asks squeue, then sacct for a job squeue no longer knows.
func (j *job) State(ctx context.Context) (runner.State, error) {
	out, err := j.r.run(ctx, nil, j.r.squeue, "--noheader", "--jobs="+j.id, "--states=all", "--format=%T|%r|%N")
	if err == nil {
		if line := firstLine(out); line != "" {
			f := strings.Split(line, "|")
			for len(f) < 3 {
				f = append(f, "")
			}
			return state(f[0], f[1], "", f[2]), nil
		}
	}
	var ce *commandError
	if err != nil && !(errors.As(err, &ce) && strings.Contains(ce.msg, "Invalid job id")) {
		return runner.State{}, err
	}
	// Gone from the controller's memory (finished more than MinJobAge ago).
	if j.r.sacct == "" {
		return runner.State{Phase: runner.Failed, Reason: "no longer known to squeue, and sacct is not installed"}, nil
	}
	out, err = j.r.run(ctx, nil, j.r.sacct, "--noheader", "--parsable2", "--allocations", "--jobs="+j.id, "--format=State,Reason,ExitCode,NodeList")
	if err != nil {
		return runner.State{Phase: runner.Failed, Reason: "no longer known to squeue, and sacct has no record of it (" + err.Error() + ")"}, nil
	}
	line := firstLine(out)
	if line == "" {
		return runner.State{Phase: runner.Failed, Reason: "no longer known to squeue or sacct"}, nil
	}
	f := strings.Split(line, "|")
	for len(f) < 4 {
		f = append(f, "")
	}
	return state(f[0], f[1], f[2], f[3]), nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// state maps a Slurm job state (squeue %T, sacct State: "CANCELLED by 0"),
// its reason and exit code to a runner.State.
func state(slurmState, reason, exitCode, nodes string) runner.State {
	full := strings.TrimSpace(slurmState)
	base := full
	if i := strings.IndexByte(base, ' '); i >= 0 {
		base = base[:i]
	}
	base = strings.TrimSuffix(base, "+")
	if reason == "None" || reason == "(null)" {
		reason = ""
	}
	if nodes == "None assigned" || nodes == "(null)" {
		nodes = ""
	}
	s := runner.State{Nodes: nodes}
	switch base {
	case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED":
		s.Phase = runner.Pending
		s.Reason = reason // Priority, Resources, QOSMaxJobsPerUserLimit, …
		if base != "PENDING" {
			s.Reason = strings.TrimSpace(base + " " + reason)
		}
		return s
	case "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING":
		s.Phase = runner.Running
		return s
	case "COMPLETED":
		s.Phase = runner.Succeeded
		return s
	}
	s.Phase = runner.Failed
	var parts []string
	if why, ok := endings[base]; ok {
		parts = append(parts, why)
	}
	if reason != "" {
		parts = append(parts, "reason "+reason)
	}
	if exitCode != "" && exitCode != "0:0" {
		parts = append(parts, "exit code "+exitCode)
	}
	s.Reason = full
	if len(parts) > 0 {
		s.Reason += " (" + strings.Join(parts, "; ") + ")"
	}
	return s
}

// endings explain the Slurm states of a job that did not complete.
var endings = map[string]string{
	"CANCELLED":     "cancelled by scancel or an administrator",
	"TIMEOUT":       "killed at its time limit (resources.time_limit)",
	"NODE_FAIL":     "a node of the job failed",
	"PREEMPTED":     "preempted by another job",
	"OUT_OF_MEMORY": "ran out of memory (resources.memory)",
	"BOOT_FAIL":     "its nodes failed to boot",
	"DEADLINE":      "missed its deadline",
	"FAILED":        "the batch script failed",
	"REVOKED":       "revoked by a sibling cluster",
	"SPECIAL_EXIT":  "held after a special exit",
}

// Cancel runs scancel.
func (j *job) Cancel(ctx context.Context) error {
	_, err := j.r.run(ctx, nil, j.r.scancel, j.id)
	var ce *commandError
	if errors.As(err, &ce) && (strings.Contains(ce.msg, "already completing or completed") || strings.Contains(ce.msg, "Invalid job id")) {
		return nil
	}
	return err
}

// Logs returns the ends of the job's stdout and stderr files.
func (j *job) Logs(_ context.Context, lines int) string {
	var parts []string
	for _, f := range []struct{ name, path string }{{"stdout", j.out}, {"stderr", j.err}} {
		t := tail(f.path, lines)
		if t != "" {
			parts = append(parts, fmt.Sprintf("%s (%s):\n%s", f.name, f.path, t))
		}
	}
	return strings.Join(parts, "\n")
}

// Finish leaves the job's output files in place.
func (j *job) Finish(context.Context, bool) error { return nil }

// tail returns the last n lines of a file (reading at most its last 64 KiB).
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // cut mid-line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// slurmMemory formats MiB as sbatch --mem reads it.
func slurmMemory(mib int64) string {
	if mib%(1024*1024) == 0 {
		return fmt.Sprintf("%dT", mib/(1024*1024))
	}
	if mib%1024 == 0 {
		return fmt.Sprintf("%dG", mib/1024)
	}
	return fmt.Sprintf("%dM", mib)
}

// slurmTime formats d as sbatch --time reads it: [D-]HH:MM:SS, rounded up
// to whole seconds.
func slurmTime(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	days := s / 86400
	s %= 86400
	out := fmt.Sprintf("%02d:%02d:%02d", s/3600, s%3600/60, s%60)
	if days > 0 {
		out = fmt.Sprintf("%d-%s", days, out)
	}
	return out
}
