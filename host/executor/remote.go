package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/logging"
	"github.com/marin-go/marin/host/runner"
	"github.com/marin-go/marin/plugins/redact"
	"github.com/marin-go/marin/plugins/storage"
)

// A remote runner (Options.Remote) runs each step as a job on a cluster
// scheduler. The protocol, all of it through the step's output directory:
//
//  1. This process takes the step's lease, writes .executor_info and a
//     RUNNING status exactly as for a local step, then writes the job file
//     {output}/.executor_jobs/attempt-N/job.json (the resolved request and
//     the lease) and submits a job that runs `marin run-step --job URL`.
//  2. While the job is queued, this process heartbeats the lease. The job,
//     once started, adopts the lease: it checks that the lock still carries
//     the lease id of the job file and rewrites it under its own holder
//     name; from then on the job heartbeats it and this process only
//     watches. A job that finds another lease id (its submitter died and a
//     new holder took over) runs nothing.
//  3. The job runs the op in its node's plugins, writes progress and log
//     events into the attempt directory (jobevents.go), records SUCCESS or
//     FAILED, and releases the lease.
//  4. This process polls the scheduler, the status and the lock, forwards
//     the events to its log and display, and ends the step when the job's
//     status is final. A job that ends without a final status (cancelled,
//     preempted, killed at its time limit, its node lost) becomes FAILED
//     here with the scheduler's reason; the next run retries it. A job that
//     stops heartbeating while the scheduler still runs it is cancelled and
//     failed the same way. On interruption this process cancels its jobs.
//
// If this process dies, the job carries on and records its outcome; if both
// die, the lease goes stale and the next run takes the step over.

// Names inside a step's output directory used by remote runners.
const (
	// JobsDir holds one directory per attempt run as a job: attempt-N/.
	JobsDir = ".executor_jobs"
	// JobFileName is the job file inside an attempt directory.
	JobFileName = "job.json"
)

// JobFile is what `marin run-step` reads: one step to run under a lease
// handed over by the process that submitted it.
type JobFile struct {
	// Format is 1.
	Format int `json:"format"`
	// Runner is the scheduler that runs the job ("slurm").
	Runner string `json:"runner"`
	// Request is the op to run, as for a local step.
	Request JobRequest `json:"request"`
	// Lease is the lease the submitter took; the job adopts it.
	Lease Lease `json:"lease"`
	// Heartbeat and StaleAfter are the submitter's lease timings.
	Heartbeat  Duration `json:"heartbeat"`
	StaleAfter Duration `json:"stale_after"`
	// SubmittedBy is the submitter's holder name.
	SubmittedBy  string    `json:"submitted_by"`
	Submitted    time.Time `json:"submitted"`
	MarinVersion string    `json:"marin_version"`
}

// JobRequest is RunRequest in the job file.
type JobRequest struct {
	StepName   string         `json:"step_name"`
	Op         string         `json:"op"`
	Config     map[string]any `json:"config"`
	OutputPath string         `json:"output_path"`
	Prefix     string         `json:"prefix"`
	Attempt    int            `json:"attempt"`
	Deadline   Duration       `json:"deadline,omitempty"`
}

// Duration is a time.Duration written as "1m30s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ReadJobFile reads and checks a job file.
func ReadJobFile(ctx context.Context, url string) (*JobFile, error) {
	raw, err := storage.ReadAll(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("read job file %s: %w", url, err)
	}
	var jf JobFile
	if err := json.Unmarshal(raw, &jf); err != nil {
		return nil, fmt.Errorf("parse job file %s: %w", url, err)
	}
	switch {
	case jf.Format != 1:
		return nil, fmt.Errorf("job file %s: format %d; this marin reads format 1", url, jf.Format)
	case jf.Request.OutputPath == "" || jf.Request.Op == "" || jf.Lease.LeaseID == "":
		return nil, fmt.Errorf("job file %s: no output path, op or lease", url)
	case jf.StaleAfter <= jf.Heartbeat || jf.Heartbeat <= 0:
		return nil, fmt.Errorf("job file %s: stale_after (%s) must be longer than heartbeat (%s)", url, time.Duration(jf.StaleAfter), time.Duration(jf.Heartbeat))
	}
	return &jf, nil
}

// where is the suffix of a RUNNING status message naming the runner.
func (e *executor) where() string {
	if e.opts.Remote == nil {
		return ""
	}
	return " on " + e.opts.Remote.Name()
}

// resources parses step i's scheduler resources.
func (e *executor) resources(i int) (runner.Resources, error) {
	return runner.ParseResources(e.steps[i].Config["resources"], e.opts.Resources)
}

// spec is the runner.Spec of step i's attempt.
func (e *executor) spec(i, attempt int) (runner.Spec, error) {
	st := e.steps[i]
	res, err := e.resources(i)
	if err != nil {
		return runner.Spec{}, err
	}
	dir := storage.Join(st.OutputPath, JobsDir, fmt.Sprintf("attempt-%d", attempt))
	env := map[string]string{}
	if lvl := os.Getenv("MARIN_LOG_LEVEL"); lvl != "" {
		env["MARIN_LOG_LEVEL"] = lvl
	}
	return runner.Spec{
		StepName: st.Step.Name, Op: e.dispatchOp(st.Step), OutputPath: st.OutputPath, Prefix: e.plan.Prefix,
		Attempt: attempt, JobDir: dir, JobURL: storage.Join(dir, JobFileName), Resources: res, Env: env,
	}, nil
}

// place fills in where each step that may run would run, and with a remote
// runner checks every such step's resources, so that a step the scheduler
// cannot take is refused at plan time with all the others.
func (e *executor) place(ds []Decision) error {
	var errs []string
	for i := range ds {
		d := &ds[i]
		if d.Decision != DecisionRun && d.Decision != DecisionRunningElsewhere {
			continue
		}
		if e.opts.Remote == nil {
			d.Runner = runner.Local
			continue
		}
		d.Runner = e.opts.Remote.Name()
		spec, err := e.spec(i, 1)
		if err == nil {
			d.Resources, err = e.opts.Remote.Describe(spec)
		}
		if err != nil {
			pos := ""
			if p := e.steps[i].Step.Pos; p != "" {
				pos = " (" + p + ")"
			}
			errs = append(errs, fmt.Sprintf("step %s%s: %v", d.Name, pos, err))
		}
	}
	if len(errs) > 0 {
		return &PlacementError{Runner: e.opts.Remote.Name(), Steps: errs}
	}
	return nil
}

// PlacementError is Plan's and Run's error, before anything runs, when the
// remote runner cannot take some steps as their resources say.
type PlacementError struct {
	Runner string
	// Steps has one line per step: its name, script position and problem.
	Steps []string
}

func (e *PlacementError) Error() string {
	return fmt.Sprintf("runner %s cannot run %d step(s):\n  %s", e.Runner, len(e.Steps), strings.Join(e.Steps, "\n  "))
}

// jobTailLines is how much of a failed job's output is shown.
const jobTailLines = 20

// runRemote runs step i, whose lease this process holds and whose RUNNING
// status it has written, as a job of Options.Remote. lost reports that the
// lease went to another holder: nothing more was recorded, and the caller
// waits on that holder.
func (s *scheduler) runRemote(ctx context.Context, i int, mine Lease, attempt int, log zerolog.Logger) (o outcome, lost bool) {
	e, st := s.e, s.e.steps[i]
	name := st.Step.Name
	rn := e.opts.Remote.Name()
	start := time.Now()
	wctx, cancel := detached(ctx)
	defer cancel()
	fail := func(msg string) outcome {
		if err := appendStatus(wctx, st.OutputPath, StatusEntry{Status: StatusFailed, Time: e.now().UTC(), Holder: e.holder, Message: msg}); err != nil {
			log.Error().Err(err).Msg("record FAILED")
		}
		log.Error().Dur("duration", time.Since(start)).Str("status", string(StatusFailed)).Str("error", msg).Msg("step finished")
		return outcome{status: StatusFailed, msg: msg, ran: true, dur: time.Since(start)}
	}

	h, err := ReadStatus(wctx, st.OutputPath)
	if err != nil {
		return fail(err.Error()), false
	}
	mark := len(h) // entries from here on are the job's
	spec, err := e.spec(i, attempt)
	if err != nil {
		return fail(err.Error()), false
	}
	jf := JobFile{
		Format: 1, Runner: rn,
		Request: JobRequest{
			StepName: name, Op: spec.Op, Config: st.Config, OutputPath: st.OutputPath,
			Prefix: e.plan.Prefix, Attempt: attempt, Deadline: Duration(st.Step.Timeout),
		},
		Lease: mine, Heartbeat: Duration(e.opts.Heartbeat), StaleAfter: Duration(e.opts.StaleAfter),
		SubmittedBy: e.holder, Submitted: e.now().UTC(), MarinVersion: e.opts.MarinVersion,
	}
	raw, err := json.MarshalIndent(jf, "", "  ")
	if err != nil {
		return fail(fmt.Sprintf("encode job file %s: %v", spec.JobURL, err)), false
	}
	if err := storage.WriteAtomic(wctx, spec.JobURL, append(raw, '\n')); err != nil {
		return fail(fmt.Sprintf("write job file: %v", err)), false
	}
	if ctx.Err() != nil {
		return fail("interrupted"), false
	}
	job, err := e.opts.Remote.Submit(ctx, spec)
	if err != nil {
		return fail(fmt.Sprintf("submit to %s: %v", rn, err)), false
	}
	log = log.With().Str("job", job.ID()).Logger()
	log.Info().Int("attempt", attempt).Msg("step submitted")
	if p := e.opts.Progress; p != nil {
		p.StepStarted(name)
	}
	w := &jobWatch{s: s, i: i, job: job, mine: mine, mark: mark, log: log, events: newEventReader(spec.JobDir), start: start}
	return w.run(ctx)
}

// jobWatch follows one submitted job to the step's outcome.
type jobWatch struct {
	s      *scheduler
	i      int
	job    runner.Job
	mine   Lease
	mark   int
	log    zerolog.Logger
	events *eventReader
	start  time.Time

	state     runner.State
	lastBeat  time.Time
	endedSeen int // polls that saw the job ended without a final status
}

func (w *jobWatch) run(ctx context.Context) (outcome, bool) {
	e := w.s.e
	tick := min(e.opts.Poll, e.opts.Heartbeat)
	t := time.NewTicker(tick)
	defer t.Stop()
	w.lastBeat = e.now()
	for {
		if o, lost, done := w.poll(ctx); done {
			return o, lost
		}
		select {
		case <-ctx.Done():
			return w.interrupted()
		case <-t.C:
		}
	}
}

// poll makes one round of checks; done reports that the step has its outcome.
func (w *jobWatch) poll(ctx context.Context) (o outcome, lost, done bool) {
	e, st := w.s.e, w.s.e.steps[w.i]
	w.forward(ctx)
	state, err := w.job.State(ctx)
	if ctx.Err() != nil {
		return outcome{}, false, false
	}
	if err != nil {
		w.log.Warn().Err(err).Msg("ask the scheduler about the job")
	} else if state != w.state {
		w.stateChanged(state)
	}

	if o, ok := w.final(ctx); ok {
		return o, false, true
	}
	cur, ver, lerr := readLeaseVersion(ctx, st.OutputPath)
	switch {
	case ctx.Err() != nil:
		return outcome{}, false, false
	case lerr == nil && cur.LeaseID != w.mine.LeaseID, errors.Is(lerr, errCorruptLease):
		holder := "someone else"
		if cur != nil && cur.Holder != "" {
			holder = cur.Holder
		}
		w.log.Warn().Str("new_holder", holder).Msg("lease was taken over; cancelling the job")
		w.cancelJob()
		return outcome{}, true, true
	case errors.Is(lerr, storage.ErrNotExist):
		// The job releases the lease right after recording its outcome.
		if o, ok := w.final(ctx); ok {
			return o, false, true
		}
		w.log.Warn().Msg("the step's lock vanished; cancelling the job")
		w.cancelJob()
		return outcome{}, true, true
	case lerr != nil:
		w.log.Warn().Err(lerr).Msg("read lease")
	case cur.Holder == w.mine.Holder:
		// Not adopted yet: the job is queued or starting.
		if e.now().Sub(w.lastBeat) >= e.opts.Heartbeat {
			w.beat(ctx, ver)
		}
	case e.stale(cur) && w.state.Phase == runner.Running:
		msg := fmt.Sprintf("%s stopped heartbeating the step's lease (last heartbeat %s ago, holder %s); cancelled it",
			w.job.ID(), age(e.now().Sub(cur.Heartbeat)), cur.Holder)
		w.cancelJob()
		return w.failed(msg), false, true
	}

	if err == nil && state.Phase.Done() {
		// Give a status written just before the job ended one more poll to
		// become visible (network file systems cache), then call it lost.
		w.endedSeen++
		if w.endedSeen >= 2 {
			why := state.Reason
			if why == "" {
				why = state.Phase.String()
			}
			msg := fmt.Sprintf("%s ended without recording a result: %s", w.job.ID(), why)
			return w.failed(msg), false, true
		}
	}
	return outcome{}, false, false
}

func (w *jobWatch) stateChanged(state runner.State) {
	w.state = state
	ev := w.log.Info()
	if state.Phase == runner.Failed {
		ev = w.log.Warn()
	}
	if state.Nodes != "" {
		ev = ev.Str("nodes", state.Nodes)
	}
	if state.Reason != "" {
		ev = ev.Str("reason", state.Reason)
	}
	ev.Msg("job " + state.Phase.String())
	if p := w.s.e.opts.Progress; p != nil && !state.Phase.Done() {
		msg := w.job.ID() + " " + state.String()
		p.StepEvent(w.s.e.steps[w.i].Step.Name, Event{Kind: EventProgress, Message: msg})
	}
}

// beat refreshes the lease this process still holds for its queued job,
// only while the lock is still the version read as ours (ver): a job that
// adopted the lease in between is never overwritten.
func (w *jobWatch) beat(ctx context.Context, ver storage.Version) {
	e, st := w.s.e, w.s.e.steps[w.i]
	l := w.mine
	l.Heartbeat = e.now().UTC()
	data, err := json.Marshal(l)
	if err == nil {
		var ok bool
		ok, err = storage.ReplaceIfVersion(ctx, storage.Join(st.OutputPath, LockFile), data, ver)
		if err == nil && !ok {
			return // changed since it was read (adopted): the next poll sees it
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn().Err(err).Msg("lease heartbeat failed")
		}
		return
	}
	w.lastBeat = e.now()
}

// final returns the outcome the job recorded, if it has.
func (w *jobWatch) final(ctx context.Context) (outcome, bool) {
	st := w.s.e.steps[w.i]
	h, err := ReadStatus(ctx, st.OutputPath)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn().Err(err).Msg("poll status")
		}
		return outcome{}, false
	}
	if len(h) <= w.mark {
		return outcome{}, false
	}
	c := h[len(h)-1]
	if c.Status != StatusSuccess && c.Status != StatusFailed {
		return outcome{}, false
	}
	w.waitEnded(ctx)
	w.forward(ctx)
	dur := time.Since(w.start)
	wctx, cancel := detached(ctx)
	defer cancel()
	if err := w.job.Finish(wctx, c.Status == StatusSuccess); err != nil {
		w.log.Warn().Err(err).Msg("clean up the job")
	}
	if c.Status == StatusSuccess {
		w.log.Info().Dur("duration", dur).Str("status", string(StatusSuccess)).Str("holder", c.Holder).Msg("step finished")
		return outcome{status: StatusSuccess, ran: true, dur: dur}, true
	}
	msg := c.Message
	if tail := redact.String(w.job.Logs(wctx, jobTailLines)); tail != "" {
		w.log.Error().Msg("end of the job's output:\n" + tail)
	}
	w.log.Error().Dur("duration", dur).Str("status", string(StatusFailed)).Str("error", msg).Msg("step finished")
	return outcome{status: StatusFailed, msg: msg, ran: true, dur: dur}, true
}

// waitEnded gives a job that has recorded its outcome a little time to
// exit, so that cleanup finds it finished.
func (w *jobWatch) waitEnded(ctx context.Context) {
	deadline := time.Now().Add(min(10*time.Second, 2*w.s.e.opts.Poll))
	for time.Now().Before(deadline) && ctx.Err() == nil {
		st, err := w.job.State(ctx)
		if err != nil || st.Phase.Done() {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// failed records FAILED for a job that cannot record it any more, with the
// end of the job's output, and releases the lease.
func (w *jobWatch) failed(msg string) outcome {
	e, st := w.s.e, w.s.e.steps[w.i]
	wctx, cancel := detached(context.Background())
	defer cancel()
	w.forward(wctx)
	tail := redact.String(w.job.Logs(wctx, jobTailLines))
	if ok, err := e.holds(wctx, st.OutputPath, w.mine); err != nil || ok {
		if err := appendStatus(wctx, st.OutputPath, StatusEntry{Status: StatusFailed, Time: e.now().UTC(), Holder: e.holder, Message: msg}); err != nil {
			w.log.Error().Err(err).Msg("record FAILED")
		}
	}
	if err := w.job.Finish(wctx, false); err != nil {
		w.log.Warn().Err(err).Msg("clean up the job")
	}
	full := msg
	if tail != "" {
		w.log.Error().Msg("end of the job's output:\n" + tail)
		full += "\nend of the job's output:\n" + tail
	}
	dur := time.Since(w.start)
	w.log.Error().Dur("duration", dur).Str("status", string(StatusFailed)).Str("error", msg).Msg("step finished")
	return outcome{status: StatusFailed, msg: full, ran: true, dur: dur}
}

// interrupted cancels the job of an interrupted run and records the step
// FAILED (as a local step's interruption is), unless it finished meanwhile.
func (w *jobWatch) interrupted() (outcome, bool) {
	wctx, cancel := detached(context.Background())
	defer cancel()
	w.cancelJob()
	if o, ok := w.final(wctx); ok {
		return o, false
	}
	o := w.failed("interrupted; cancelled " + w.job.ID())
	o.msg = "interrupted"
	return o, false
}

// cancelJob asks the scheduler to stop the job and waits a little for it
// to end, so that the lease is not handed on while it still runs.
func (w *jobWatch) cancelJob() {
	wctx, cancel := detached(context.Background())
	defer cancel()
	if err := w.job.Cancel(wctx); err != nil {
		w.log.Error().Err(err).Msg("cancel the job")
		return
	}
	w.log.Warn().Msg("job cancelled")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, err := w.job.State(wctx)
		if err != nil || st.Phase.Done() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// forward passes the job's new events to the log and the display.
func (w *jobWatch) forward(ctx context.Context) {
	name := w.s.e.steps[w.i].Step.Name
	evs, err := w.events.read(ctx)
	if err != nil && ctx.Err() == nil {
		w.log.Warn().Err(err).Msg("read the job's events")
	}
	p := w.s.e.opts.Progress
	for _, ev := range evs {
		if ev.Kind == EventLog {
			logging.Forward(w.log, ev.Level, ev.Message, ev.Fields)
		}
		if p != nil {
			p.StepEvent(name, ev)
		}
	}
}
