package executor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/redact"
	"github.com/marin-go/marin/plugins/storage"
)

// StepResult is one step's outcome in a run.
type StepResult struct {
	Name       string       `json:"name"`
	Op         string       `json:"op"`
	RelPath    string       `json:"rel_path"`
	OutputPath string       `json:"output_path"`
	Decision   DecisionKind `json:"decision"`
	Status     Status       `json:"status"`
	// Ran is true when this process executed the op (false for skipped
	// steps and steps that another process completed).
	Ran      bool          `json:"ran"`
	Message  string        `json:"message,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
}

// Report is what a run did.
type Report struct {
	Holder    string       `json:"holder"`
	Decisions []Decision   `json:"decisions"`
	Steps     []StepResult `json:"steps"`
	// Experiment is the URL of the run's experiment record.
	Experiment string `json:"experiment,omitempty"`
}

// RunError is Run's error when steps did not all end in SUCCESS.
type RunError struct {
	// Failed lists the relative output paths of steps that FAILED (in this
	// run, or before and not retried).
	Failed []string
	// DepFailed lists steps not run because a dependency failed or is blocked.
	DepFailed []string
	// NotRun lists steps an interruption kept from starting.
	NotRun []string
	// Interrupted is the context error when the run was cancelled.
	Interrupted error
}

func (e *RunError) Error() string {
	var parts []string
	if e.Interrupted != nil {
		parts = append(parts, "interrupted ("+e.Interrupted.Error()+")")
	}
	if len(e.Failed) > 0 {
		parts = append(parts, fmt.Sprintf("%d step(s) failed: [%s]", len(e.Failed), strings.Join(e.Failed, ", ")))
	}
	if len(e.DepFailed) > 0 {
		parts = append(parts, fmt.Sprintf("%d step(s) not run because a dependency failed: [%s]", len(e.DepFailed), strings.Join(e.DepFailed, ", ")))
	}
	if len(e.NotRun) > 0 {
		parts = append(parts, fmt.Sprintf("%d step(s) not started: [%s]", len(e.NotRun), strings.Join(e.NotRun, ", ")))
	}
	return strings.Join(parts, "; ")
}

// Unwrap gives the interruption cause, so errors.Is(err, context.Canceled) works.
func (e *RunError) Unwrap() error { return e.Interrupted }

// UnservedOpsError is Run's error when no plugin serves some op; nothing
// has run or been written.
type UnservedOpsError struct {
	// Ops maps each unserved op to the names of the steps that use it.
	Ops map[string][]string
	// Errs are the Runner's Resolve errors, one per op.
	Errs []error
}

func (e *UnservedOpsError) Error() string {
	ops := make([]string, 0, len(e.Ops))
	for op := range e.Ops {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("op %q (step %s)", op, strings.Join(e.Ops[op], ", "))
	}
	msg := fmt.Sprintf("no plugin serves %d op(s): %s", len(ops), strings.Join(parts, "; "))
	if len(e.Errs) > 0 {
		msg += ": " + errors.Join(e.Errs...).Error()
	}
	return strings.ReplaceAll(msg, "\n", "; ")
}

func (e *UnservedOpsError) Unwrap() []error { return e.Errs }

// Run executes the plan: steps already done are skipped, the others run in
// dependency order, up to MaxConcurrent at once, each under its lease. It
// returns a *RunError when any step did not succeed (the report is complete
// then too), and an *UnservedOpsError, before anything runs, when no plugin
// serves an op that would run.
func Run(ctx context.Context, plan *graph.Plan, opts Options) (*Report, error) {
	e, err := newExecutor(plan, opts)
	if err != nil {
		return nil, err
	}
	decisions, err := e.decide(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.place(decisions); err != nil {
		return nil, err
	}
	rep := &Report{Holder: e.holder, Decisions: decisions}
	if opts.DryRun {
		for i, d := range decisions {
			rep.Steps = append(rep.Steps, e.result(i, d, outcome{}))
		}
		return rep, nil
	}
	plugins, err := e.resolve(decisions)
	if err != nil {
		return rep, err
	}
	if err := ctx.Err(); err != nil {
		return rep, &RunError{Interrupted: err}
	}

	exp := e.newExperiment(ctx, decisions)
	rep.Experiment = exp.url
	if err := exp.write(ctx, nil); err != nil {
		return rep, err
	}

	s := &scheduler{
		e:         e,
		decisions: decisions,
		plugins:   plugins,
		done:      make([]chan struct{}, len(e.steps)),
		res:       make([]outcome, len(e.steps)),
		slots:     make(chan struct{}, e.maxc),
	}
	s.run(ctx)

	runErr := &RunError{}
	if ctx.Err() != nil {
		runErr.Interrupted = ctx.Err()
	}
	for i, d := range decisions {
		r := e.result(i, d, s.res[i])
		rep.Steps = append(rep.Steps, r)
		switch {
		case r.Status == StatusFailed || r.Status == StatusBlocked && d.failedBefore:
			runErr.Failed = append(runErr.Failed, r.RelPath)
		case r.Status == StatusDepFailed || r.Status == StatusBlocked:
			runErr.DepFailed = append(runErr.DepFailed, r.RelPath)
		case r.Status == StatusNotRun:
			runErr.NotRun = append(runErr.NotRun, r.RelPath)
		}
	}
	werr := exp.write(ctx, s.res)
	if runErr.Interrupted != nil || len(runErr.Failed)+len(runErr.DepFailed)+len(runErr.NotRun) > 0 {
		if werr != nil {
			e.log.Error().Err(werr).Msg("write experiment record")
		}
		return rep, runErr
	}
	return rep, werr
}

// result assembles a StepResult from a decision and its outcome.
func (e *executor) result(i int, d Decision, o outcome) StepResult {
	r := StepResult{
		Name: d.Name, Op: d.Op, RelPath: d.RelPath, OutputPath: d.OutputPath, Decision: d.Decision,
		Status: o.status, Ran: o.ran, Message: o.msg, Duration: o.dur,
	}
	if o.status == "" {
		r.Message = d.Reason
		switch d.Decision {
		case DecisionSkip:
			r.Status = StatusSuccess
		case DecisionBlocked:
			r.Status = StatusBlocked
		}
	}
	return r
}

// resolve asks the Runner for the plugin of every op that may run (steps to
// run and steps held elsewhere, which this process may have to take over),
// and fails, naming every unserved op, before anything runs.
func (e *executor) resolve(decisions []Decision) (map[string]PluginRef, error) {
	users := map[string][]string{}
	var ops []string
	for i, d := range decisions {
		if d.Decision != DecisionRun && d.Decision != DecisionRunningElsewhere {
			continue
		}
		op := e.dispatchOp(e.steps[i].Step)
		if _, ok := users[op]; !ok {
			ops = append(ops, op)
		}
		users[op] = append(users[op], d.Name)
	}
	plugins := map[string]PluginRef{}
	if len(ops) == 0 {
		return plugins, nil
	}
	if e.opts.Runner == nil {
		return nil, &UnservedOpsError{Ops: users, Errs: []error{errors.New("no plugin runner configured")}}
	}
	bad := &UnservedOpsError{Ops: map[string][]string{}}
	for _, op := range ops {
		ref, err := e.opts.Runner.Resolve(op)
		if err != nil {
			bad.Ops[op] = users[op]
			bad.Errs = append(bad.Errs, err)
			continue
		}
		plugins[op] = ref
	}
	if len(bad.Ops) > 0 {
		return nil, bad
	}
	return plugins, nil
}

// outcome is a step's end state in this run.
type outcome struct {
	status Status
	msg    string
	ran    bool
	dur    time.Duration
}

// scheduler runs one goroutine per step that may run; each waits for its
// dependencies' outcomes, then for a slot and the step's lease.
type scheduler struct {
	e         *executor
	decisions []Decision
	plugins   map[string]PluginRef
	done      []chan struct{} // closed when res[i] is final
	res       []outcome
	slots     chan struct{}
}

func (s *scheduler) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.e.steps {
		s.done[i] = make(chan struct{})
		switch s.decisions[i].Decision {
		case DecisionSkip:
			s.res[i] = outcome{status: StatusSuccess, msg: s.decisions[i].Reason}
			close(s.done[i])
			continue
		case DecisionBlocked:
			s.res[i] = outcome{status: StatusBlocked, msg: s.decisions[i].Reason}
			close(s.done[i])
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(s.done[i])
			o := s.step(ctx, i)
			s.res[i] = o
			if p := s.e.opts.Progress; p != nil {
				p.StepFinished(s.e.steps[i].Step.Name, o.status)
			}
		}()
	}
	wg.Wait()
}

// step drives one step to its outcome.
func (s *scheduler) step(ctx context.Context, i int) outcome {
	st := s.e.steps[i]
	var failed, blocked, notRun []string
	for _, dep := range st.Deps {
		j, ok := s.e.index[dep]
		if !ok {
			continue
		}
		select {
		case <-s.done[j]:
		case <-ctx.Done():
			return outcome{status: StatusNotRun, msg: "interrupted"}
		}
		switch s.res[j].status {
		case StatusSuccess:
		case StatusBlocked:
			blocked = append(blocked, dep.RelPath)
		case StatusNotRun:
			notRun = append(notRun, dep.RelPath)
		default:
			failed = append(failed, dep.RelPath)
		}
	}
	switch {
	case ctx.Err() != nil:
		return outcome{status: StatusNotRun, msg: "interrupted"}
	case len(notRun) > 0:
		return outcome{status: StatusNotRun, msg: "dependency not run: " + strings.Join(notRun, ", ")}
	case len(blocked) > 0:
		return outcome{status: StatusBlocked, msg: "dependency blocked: " + strings.Join(blocked, ", ")}
	case len(failed) > 0:
		return s.markDepFailed(ctx, i, failed)
	}
	return s.execute(ctx, i)
}

// markDepFailed records DEP_FAILED for a step whose dependency failed. Like
// every status write it needs the lease; a step held elsewhere is left to
// its holder.
func (s *scheduler) markDepFailed(ctx context.Context, i int, failed []string) outcome {
	e, st := s.e, s.e.steps[i]
	msg := "dependency failed: " + strings.Join(failed, ", ")
	o := outcome{status: StatusDepFailed, msg: msg}
	mine, other, err := e.acquire(ctx, st.OutputPath)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{status: StatusNotRun, msg: "interrupted"}
		}
		e.log.Error().Err(err).Str("step", st.Step.Name).Msg("cannot record DEP_FAILED")
		return o
	}
	if mine == nil {
		o.msg += "; not recorded: step is held by " + other.Holder
		return o
	}
	wctx, cancel := detached(ctx)
	defer cancel()
	defer func() {
		if err := e.release(wctx, st.OutputPath, *mine); err != nil {
			e.log.Error().Err(err).Str("step", st.Step.Name).Msg("release lease")
		}
	}()
	h, err := ReadStatus(wctx, st.OutputPath)
	if err != nil {
		e.log.Error().Err(err).Str("step", st.Step.Name).Msg("cannot record DEP_FAILED")
		return o
	}
	if c := last(h); c != nil && c.Status == StatusSuccess {
		// Completed elsewhere from that dependency's earlier output.
		return outcome{status: StatusSuccess, msg: "completed by " + c.Holder}
	}
	if err := writeInfo(wctx, st.OutputPath, e.info(st, s.plugins[e.dispatchOp(st.Step)])); err != nil {
		e.log.Error().Err(err).Str("step", st.Step.Name).Msg("write step info")
	}
	if err := appendStatus(wctx, st.OutputPath, StatusEntry{Status: StatusDepFailed, Time: e.now().UTC(), Holder: e.holder, Message: msg}); err != nil {
		e.log.Error().Err(err).Str("step", st.Step.Name).Msg("cannot record DEP_FAILED")
	}
	e.log.Warn().Str("step", st.Step.Name).Str("op", st.Step.Op).Str("path", st.OutputPath).Str("status", string(StatusDepFailed)).Msg(msg)
	return o
}

// execute takes the step's lease and runs it, or waits while another
// process holds it, until the step reaches an outcome.
func (s *scheduler) execute(ctx context.Context, i int) outcome {
	e, st := s.e, s.e.steps[i]
	waitedOn := map[string]bool{}
	var waitStart time.Time
	for {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return outcome{status: StatusNotRun, msg: "interrupted"}
		}
		mine, other, err := e.acquire(ctx, st.OutputPath)
		if err != nil {
			<-s.slots
			if ctx.Err() != nil {
				return outcome{status: StatusNotRun, msg: "interrupted"}
			}
			e.log.Error().Err(err).Str("step", st.Step.Name).Msg("lease")
			return outcome{status: StatusFailed, msg: err.Error()}
		}
		if mine != nil {
			o, lost := s.runHeld(ctx, i, *mine, waitedOn, waitStart)
			<-s.slots
			if !lost {
				return o
			}
			// Someone took the lease over (this process stalled past
			// StaleAfter); the new holder runs the step and we wait on it.
			continue
		}
		<-s.slots
		if waitStart.IsZero() {
			waitStart = e.now()
		}
		if !waitedOn[other.Holder] {
			waitedOn[other.Holder] = true
			e.log.Info().Str("step", st.Step.Name).Str("path", st.OutputPath).Str("holder", other.Holder).Msg("step is running elsewhere; waiting")
		}
		if o, done := s.waitElsewhere(ctx, i, other); done {
			return o
		}
	}
}

// waitElsewhere polls a step held by another process. It returns done when
// the step succeeded or the run was interrupted, and not done when the lease
// was released, replaced or went stale, so the caller tries to take it.
func (s *scheduler) waitElsewhere(ctx context.Context, i int, other *Lease) (outcome, bool) {
	e, st := s.e, s.e.steps[i]
	t := time.NewTicker(e.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return outcome{status: StatusNotRun, msg: "interrupted while waiting for " + other.Holder}, true
		case <-t.C:
		}
		h, err := ReadStatus(ctx, st.OutputPath)
		if err == nil {
			if c := last(h); c != nil && c.Status == StatusSuccess {
				return outcome{status: StatusSuccess, msg: "completed by " + c.Holder}, true
			}
		} else if ctx.Err() == nil {
			e.log.Warn().Err(err).Str("step", st.Step.Name).Msg("poll status")
		}
		cur, err := readLease(ctx, st.OutputPath)
		if err == nil && cur.LeaseID == other.LeaseID {
			if gone, _ := e.expired(cur); !gone {
				continue
			}
		}
		switch {
		case err != nil && !errors.Is(err, storage.ErrNotExist) && !errors.Is(err, errCorruptLease):
			if ctx.Err() == nil {
				e.log.Warn().Err(err).Str("step", st.Step.Name).Msg("poll lease")
			}
			continue
		}
		return outcome{}, false
	}
}

// runHeld runs a step whose lease this process holds. lost reports that the
// lease was taken over meanwhile: nothing was recorded and the caller must
// wait on the new holder.
func (s *scheduler) runHeld(ctx context.Context, i int, mine Lease, waitedOn map[string]bool, waitStart time.Time) (o outcome, lost bool) {
	e, st := s.e, s.e.steps[i]
	name := st.Step.Name
	log := e.log.With().Str("step", name).Str("op", st.Step.Op).Str("path", st.OutputPath).Logger()

	// Each bookkeeping write gets its own deadline: the step between the
	// first and the last may run for hours.
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	wctx := func() context.Context {
		c, cancel := detached(ctx)
		cancels = append(cancels, cancel)
		return c
	}
	released := false
	releaseLease := func() {
		if released {
			return
		}
		released = true
		if err := e.release(wctx(), st.OutputPath, mine); err != nil {
			log.Error().Err(err).Msg("release lease")
		}
	}
	defer releaseLease()
	record := func(status Status, msg string) error {
		return appendStatus(wctx(), st.OutputPath, StatusEntry{Status: status, Time: e.now().UTC(), Holder: e.holder, Message: msg})
	}

	// The double check: between deciding and getting the lease, another
	// process may have finished (or failed) the step.
	h, err := ReadStatus(wctx(), st.OutputPath)
	if err != nil {
		return outcome{status: StatusFailed, msg: err.Error()}, false
	}
	if c := last(h); c != nil {
		if c.Status == StatusSuccess {
			return outcome{status: StatusSuccess, msg: "completed by " + c.Holder}, false
		}
		if (c.Status == StatusFailed || c.Status == StatusDepFailed) && waitedOn[c.Holder] && !c.Time.Before(waitStart) {
			// The holder we waited on failed it; do not retry within a run.
			return outcome{status: c.Status, msg: "failed on " + c.Holder + message(c.Message)}, false
		}
	}
	attempt := 1
	for _, en := range h {
		if en.Status == StatusRunning {
			attempt++
		}
	}
	if err := writeInfo(wctx(), st.OutputPath, e.info(st, s.plugins[e.dispatchOp(st.Step)])); err != nil {
		return outcome{status: StatusFailed, msg: err.Error()}, false
	}
	if err := record(StatusRunning, fmt.Sprintf("attempt %d%s", attempt, e.where())); err != nil {
		return outcome{status: StatusFailed, msg: err.Error()}, false
	}
	if e.opts.Remote != nil {
		// A remote runner's job runs the op and heartbeats the lease.
		o, lost := s.runRemote(ctx, i, mine, attempt, log)
		released = released || lost
		return o, lost
	}

	stepCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if st.Step.Timeout > 0 {
		var c context.CancelFunc
		stepCtx, c = context.WithTimeoutCause(stepCtx, st.Step.Timeout, fmt.Errorf("step timed out after %s", st.Step.Timeout))
		defer c()
	}
	stopHB := e.startHeartbeat(ctx, st.OutputPath, mine, func() { cancel(errLeaseLost) })

	if p := e.opts.Progress; p != nil {
		p.StepStarted(name)
	}
	log.Info().Int("attempt", attempt).Msg("step started")
	start := time.Now()
	runErr := s.callRunner(stepCtx, RunRequest{
		StepName:   name,
		Op:         e.dispatchOp(st.Step),
		Config:     st.Config,
		OutputPath: st.OutputPath,
		Prefix:     e.plan.Prefix,
		Attempt:    attempt,
		Deadline:   st.Step.Timeout,
	}, log)
	dur := time.Since(start)
	stopHB()

	if errors.Is(context.Cause(stepCtx), errLeaseLost) && ctx.Err() == nil {
		released = true // the lock is someone else's now
		log.Warn().Dur("duration", dur).Msg("lease lost; waiting on the new holder")
		return outcome{}, true
	}
	if runErr == nil {
		// Confirm the lease before declaring success: a holder that lost it
		// must leave the status to the new one.
		if ok, err := e.holds(wctx(), st.OutputPath, mine); err != nil || !ok {
			if err != nil {
				log.Error().Err(err).Msg("check lease")
				return outcome{status: StatusFailed, msg: err.Error(), ran: true, dur: dur}, false
			}
			released = true
			log.Warn().Msg("lease lost just before recording SUCCESS; waiting on the new holder")
			return outcome{}, true
		}
		if err := record(StatusSuccess, ""); err != nil {
			log.Error().Err(err).Msg("record SUCCESS")
			return outcome{status: StatusFailed, msg: err.Error(), ran: true, dur: dur}, false
		}
		log.Info().Dur("duration", dur).Str("status", string(StatusSuccess)).Msg("step finished")
		return outcome{status: StatusSuccess, ran: true, dur: dur}, false
	}
	// The op's error may carry a request or response (a hub reply that
	// echoes the token): it goes to the status file, the log and the
	// report only redacted.
	msg := redact.String(runErr.Error())
	if ctx.Err() != nil {
		msg = "interrupted"
	} else if cause := context.Cause(stepCtx); cause != nil && stepCtx.Err() != nil {
		msg = cause.Error() + ": " + msg
	}
	if err := record(StatusFailed, msg); err != nil {
		log.Error().Err(err).Msg("record FAILED")
	}
	log.Error().Dur("duration", dur).Str("status", string(StatusFailed)).Str("error", msg).Msg("step finished")
	return outcome{status: StatusFailed, msg: msg, ran: true, dur: dur}, false
}

// callRunner runs the op, turning a panic in the runner into an error so a
// broken plugin host fails the step, not the process.
func (s *scheduler) callRunner(ctx context.Context, req RunRequest, log zerolog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("runner panicked: %v", r)
		}
	}()
	p := s.e.opts.Progress
	return s.e.opts.Runner.Run(ctx, req, func(ev Event) {
		if p != nil {
			p.StepEvent(req.StepName, ev)
		}
		// Plugin log events are logged by the Runner (see Runner.Run).
	})
}

// info is the .executor_info record of a step.
func (e *executor) info(st *graph.Planned, plugin PluginRef) *Info {
	deps := make([]string, len(st.Deps))
	for i, d := range st.Deps {
		deps[i] = d.OutputPath
	}
	return &Info{
		Name:         st.Step.Name,
		Op:           st.Step.Op,
		Plugin:       plugin,
		Config:       st.Config,
		Version:      st.Version,
		Dependencies: deps,
		OutputPath:   st.OutputPath,
		Description:  st.Step.Description,
		Pos:          st.Step.Pos,
		MarinVersion: e.opts.MarinVersion,
	}
}
