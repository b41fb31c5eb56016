// Package runner says where a step's op runs. The local runner, the default,
// is the executor's own plugin call in this process. A remote Runner submits
// each step that is ready to run as a job on a cluster scheduler: the job runs
// `marin run-step --job URL` on a node, against the same storage prefix, while
// the marin that submitted it keeps planning, leasing, status, progress, logs
// and cancellation (host/executor, remote.go).
//
// This package holds what every scheduler shares: the Runner and Job
// interfaces, a step's scheduler resources (Resources, read from the step's
// ResourceConfig and the --resource overrides), and the rule that a remote
// runner needs a prefix every node can reach (CheckPrefix). The schedulers
// live in host/runner/slurm and host/runner/kubernetes.
package runner

import (
	"context"
	"fmt"
	"strings"
)

// Names of the runners (--runner, $MARIN_RUNNER).
const (
	Local      = "local"
	Slurm      = "slurm"
	Kubernetes = "kubernetes"
)

// Spec is one step to submit as a job.
type Spec struct {
	// StepName is the step's name ("checkpoints/quickstart_sft"); job names
	// carry it.
	StepName string
	// Op is the op the job runs (after backend routing).
	Op string
	// OutputPath is the step's output URL; Prefix the run's prefix URL.
	OutputPath string
	Prefix     string
	// Attempt counts runs of this output, from 1.
	Attempt int
	// JobDir is the storage URL of this attempt's directory under the
	// output (the job file, the job's events, scheduler logs where the
	// scheduler can write there).
	JobDir string
	// JobURL is the job file the job reads: `marin run-step --job JobURL`.
	JobURL string
	// Resources are the scheduler resources of the step.
	Resources Resources
	// Env is extra environment for the job (MARIN_LOG_LEVEL, …).
	Env map[string]string
}

// Runner submits steps as jobs to one scheduler.
type Runner interface {
	// Name is the runner's name: "slurm", "kubernetes".
	Name() string
	// Describe says, in the scheduler's own terms, what a job for spec
	// asks for ("--nodes=1 --gpus-per-node=8 …"), for --dry-run. An error
	// means the step cannot be submitted as configured; it is reported at
	// plan time.
	Describe(spec Spec) (string, error)
	// Submit queues a job for spec and returns once the scheduler has
	// accepted it.
	Submit(ctx context.Context, spec Spec) (Job, error)
}

// Job is a submitted job.
type Job interface {
	// ID names the job for people: "slurm job 1234", "Job ns/marin-…".
	ID() string
	// State asks the scheduler where the job is.
	State(ctx context.Context) (State, error)
	// Cancel asks the scheduler to stop the job (scancel, delete). A job
	// that already ended is not an error.
	Cancel(ctx context.Context) error
	// Logs returns the end of the job's output (at most about lines lines
	// per stream), for a failure message; empty when there is none.
	Logs(ctx context.Context, lines int) string
	// Finish is called once the step has reached its outcome; succeeded
	// says whether it succeeded. Schedulers clean up there (Kubernetes
	// deletes a succeeded Job unless asked to keep it).
	Finish(ctx context.Context, succeeded bool) error
}

// Phase is where a job is in its life.
type Phase int

const (
	// Pending: queued, not started (or suspended by a queueing system).
	Pending Phase = iota + 1
	// Running: started on its nodes.
	Running
	// Succeeded: ended with exit status 0.
	Succeeded
	// Failed: ended any other way: an error exit, cancelled, preempted,
	// killed at its time limit, out of memory, its node lost, or gone from
	// the scheduler without a trace.
	Failed
)

func (p Phase) String() string {
	switch p {
	case Pending:
		return "pending"
	case Running:
		return "running"
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Done reports whether the job has ended.
func (p Phase) Done() bool { return p == Succeeded || p == Failed }

// State is a job's phase with the scheduler's words for it.
type State struct {
	Phase Phase
	// Reason is the scheduler's explanation: why a job is pending
	// ("Resources", "Unschedulable: 0/3 nodes have nvidia.com/gpu") or
	// how it ended ("CANCELLED", "NODE_FAIL", "Evicted: …"), in a phrase a
	// person can act on.
	Reason string
	// Nodes names where it runs or ran, when known.
	Nodes string
}

func (s State) String() string {
	out := s.Phase.String()
	if s.Reason != "" {
		out += ": " + s.Reason
	}
	if s.Nodes != "" {
		out += " (on " + s.Nodes + ")"
	}
	return out
}

// CheckPrefix refuses a prefix that the nodes of a remote runner cannot
// reach: they need an object store URL, or a file:// prefix the user
// declares shared (a cluster file system mounted at the same path on every
// node and on this machine).
func CheckPrefix(runnerName, prefix string, shared bool) error {
	if runnerName == "" || runnerName == Local {
		return nil
	}
	scheme := ""
	if i := strings.Index(prefix, "://"); i > 0 {
		scheme = prefix[:i]
	}
	switch scheme {
	case "file":
		if shared {
			return nil
		}
		return fmt.Errorf("runner %s: prefix %s is a directory on this machine, which the %s nodes may not see; "+
			"use an object store prefix (gs://…, s3://…) or, if the directory is on a file system every node mounts at the same path, say so with --shared-prefix",
			runnerName, prefix, runnerName)
	case "mem":
		return fmt.Errorf("runner %s: prefix %s lives in this process's memory; jobs on other nodes cannot reach it", runnerName, prefix)
	case "":
		return fmt.Errorf("runner %s: prefix %q is not a storage URL", runnerName, prefix)
	}
	return nil
}
