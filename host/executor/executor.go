// Package executor runs a planned step graph (host/graph) against a storage
// prefix: it decides which steps are already done, claims the rest with
// leases so that any number of marin processes on any number of machines run
// each step exactly once, dispatches them to plugins through a Runner, and
// records what happened next to the outputs.
//
// Every step's state lives in its output directory (see files.go):
//
//	.executor_info          what produced the output (config, version, plugin)
//	.executor_status        JSON lines, one per transition; the last is current
//	.executor_status.lock   the lease: holder, lease id, heartbeat
//
// A lease is taken by an atomic create of the lock, kept fresh by a heartbeat
// and taken over once its heartbeat is older than StaleAfter, or at once when
// it names a process on this machine that is gone (holder.go). Whoever gets a
// lease re-reads the status before running, which is what makes a step that
// finished elsewhere in the meantime never run twice. Status files are read
// leniently: a torn or damaged line is left out with a warning, and a step
// whose files cannot be read at all is planned as unknown and reruns.
//
// Plan computes the decisions of a dry run (skip, run, running elsewhere,
// blocked), explaining every rerun with the config values that changed; Run
// executes the graph.
package executor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/host/runner"
	"github.com/marin-go/marin/plugins/storage"
)

// Defaults for Options fields left zero.
const (
	DefaultHeartbeat     = 30 * time.Second
	DefaultStaleAfter    = 90 * time.Second
	DefaultPoll          = 5 * time.Second
	DefaultMaxConcurrent = 8
)

// Progress receives step lifecycle events as they happen, for a live display.
// Calls come from many goroutines at once.
type Progress interface {
	// StepStarted: this process took the step's lease and starts its op.
	StepStarted(name string)
	// StepEvent: the plugin reported progress or a log line.
	StepEvent(name string, ev Event)
	// StepFinished: the step reached its outcome in this run (every step
	// that was not skipped or blocked from the start gets exactly one call).
	StepFinished(name string, status Status)
}

// Options configures Plan and Run.
type Options struct {
	// Prefix is the storage URL the plan was built for. Empty means the
	// plan's own prefix; a different one is an error (a guard against
	// planning for one prefix and running against another).
	Prefix string
	// DryRun makes Run only compute decisions.
	DryRun bool
	// RunOnly selects the steps whose name or relative output path matches
	// any of these, plus everything they depend on. Empty selects all.
	RunOnly []*regexp.Regexp
	// ForceRunFailed reruns steps whose last status is FAILED. nil means
	// true (the default, as in current Marin); false blocks them and their
	// dependents.
	ForceRunFailed *bool
	// MaxConcurrent bounds the steps this process runs at once: 0 means
	// DefaultMaxConcurrent, a negative value means no bound (every step
	// whose dependencies are done may run).
	MaxConcurrent int
	// Heartbeat is how often a lease holder refreshes its lease.
	Heartbeat time.Duration
	// StaleAfter is the heartbeat age after which a lease is taken over.
	StaleAfter time.Duration
	// Poll is how often a step held elsewhere is checked on. Default:
	// DefaultPoll, or Heartbeat when that is shorter.
	Poll time.Duration
	// Holder names this process in leases and status history. Default:
	// hostname:pid:random.
	Holder string
	// Logger receives step start/finish and plugin log lines. The zero
	// value discards.
	Logger zerolog.Logger
	// Runner dispatches ops to plugins. Needed by Run unless nothing runs.
	Runner Runner
	// Remote, when set, runs each step as a job on a cluster scheduler
	// (host/runner/slurm, host/runner/kubernetes) that runs `marin run-step`
	// against the same prefix, instead of calling Runner here (remote.go).
	// nil is the local runner.
	Remote runner.Runner
	// SharedPrefix declares a file:// prefix to be on a file system that
	// every node of Remote mounts at the same path; without it Remote
	// refuses file:// prefixes at plan time.
	SharedPrefix bool
	// Resources overrides ResourceConfig fields of every step for Remote
	// (--resource FIELD=VALUE).
	Resources map[string]string
	// ScriptName is the experiment script's path; its stem names the
	// experiment record and its directory is asked for the git commit.
	ScriptName string
	// MarinVersion is recorded in .executor_info and the experiment record.
	MarinVersion string
	// Progress, if set, receives live step events.
	Progress Progress
	// Backend overrides the backend of every step that names one (the
	// --backend flag); empty keeps each step's own.
	Backend string
	// DefaultBackend is the backend that serves bare op names ("train"
	// rather than "cpu/train"); default "cpu".
	DefaultBackend string
	// Clock returns the current time; default time.Now. Tests move it.
	Clock func() time.Time
}

// Bool returns a pointer to b, for Options.ForceRunFailed.
func Bool(b bool) *bool { return &b }

// executor is one Plan or Run call: the options with defaults filled in and
// the selected steps.
type executor struct {
	opts   Options
	plan   *graph.Plan
	steps  []*graph.Planned // selected steps, topological order
	index  map[*graph.Planned]int
	force  bool
	maxc   int
	now    func() time.Time
	log    zerolog.Logger
	holder string
	self   processID // this process, as its leases name it
}

func newExecutor(plan *graph.Plan, opts Options) (*executor, error) {
	if plan == nil {
		return nil, fmt.Errorf("executor: no plan")
	}
	if opts.Prefix != "" {
		p, err := storage.NormalizeURL(opts.Prefix)
		if err != nil {
			return nil, err
		}
		if p != strings.TrimRight(plan.Prefix, "/") {
			return nil, fmt.Errorf("executor: plan was built for prefix %s, options name %s", plan.Prefix, p)
		}
	}
	e := &executor{opts: opts, plan: plan, force: true, now: time.Now, log: opts.Logger, holder: opts.Holder, self: currentProcess()}
	if opts.ForceRunFailed != nil {
		e.force = *opts.ForceRunFailed
	}
	if opts.Clock != nil {
		e.now = opts.Clock
	}
	if e.opts.Heartbeat <= 0 {
		e.opts.Heartbeat = DefaultHeartbeat
	}
	if e.opts.StaleAfter <= 0 {
		e.opts.StaleAfter = DefaultStaleAfter
	}
	if e.opts.StaleAfter <= e.opts.Heartbeat {
		return nil, fmt.Errorf("executor: StaleAfter (%s) must be longer than Heartbeat (%s)", e.opts.StaleAfter, e.opts.Heartbeat)
	}
	if e.opts.Poll <= 0 {
		e.opts.Poll = min(DefaultPoll, e.opts.Heartbeat)
	}
	if e.holder == "" {
		e.holder = DefaultHolder()
	}
	if opts.Remote != nil {
		if err := runner.CheckPrefix(opts.Remote.Name(), plan.Prefix, opts.SharedPrefix); err != nil {
			return nil, err
		}
	}
	steps, err := selectSteps(plan, opts.RunOnly)
	if err != nil {
		return nil, err
	}
	e.steps = steps
	e.index = make(map[*graph.Planned]int, len(steps))
	for i, s := range steps {
		e.index[s] = i
	}
	switch {
	case opts.MaxConcurrent > 0:
		e.maxc = opts.MaxConcurrent
	case opts.MaxConcurrent == 0:
		e.maxc = DefaultMaxConcurrent
	default:
		e.maxc = max(len(steps), 1)
	}
	return e, nil
}

// DefaultHolder returns hostname:pid:random, unique per process.
func DefaultHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), randomID(4))
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// selectSteps applies RunOnly: matching steps plus their dependencies, in
// the plan's topological order.
func selectSteps(plan *graph.Plan, runOnly []*regexp.Regexp) ([]*graph.Planned, error) {
	if len(runOnly) == 0 {
		return plan.Steps, nil
	}
	keep := map[*graph.Planned]bool{}
	var mark func(p *graph.Planned)
	mark = func(p *graph.Planned) {
		if keep[p] {
			return
		}
		keep[p] = true
		for _, d := range p.Deps {
			mark(d)
		}
	}
	for _, p := range plan.Steps {
		for _, re := range runOnly {
			if re.MatchString(p.Step.Name) || re.MatchString(p.RelPath) {
				mark(p)
				break
			}
		}
	}
	if len(keep) == 0 {
		pats := make([]string, len(runOnly))
		for i, re := range runOnly {
			pats[i] = re.String()
		}
		return nil, fmt.Errorf("run-only %s matches no step", strings.Join(pats, ", "))
	}
	var out []*graph.Planned
	for _, p := range plan.Steps {
		if keep[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// cleanupTimeout bounds one bookkeeping write (a variable for tests).
var cleanupTimeout = 30 * time.Second

// detached returns a context for cleanup writes (final status, lease
// release) that must happen even after the run was interrupted.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// dispatchOp is the op the Runner serves for st (see DispatchOp).
func (e *executor) dispatchOp(st *graph.Step) string {
	return DispatchOp(st.Op, st.Backend, e.opts.Backend, e.opts.DefaultBackend)
}
