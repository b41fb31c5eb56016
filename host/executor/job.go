package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/plugins/redact"
	"github.com/marin-go/marin/plugins/storage"
)

// ErrNotHolder is RunJob's error when the step's lease no longer carries
// the job's lease id: the submitter died and another holder took the step
// over, so this job must not run it.
var ErrNotHolder = errors.New("the step's lease is not this job's")

// JobOptions configures RunJob, the job side of a remote runner.
type JobOptions struct {
	// Runner dispatches the op to this node's plugins.
	Runner Runner
	// Logger receives the job's own messages (the plugins' log events are
	// logged by Runner).
	Logger zerolog.Logger
	// Holder names this process in the lease and the status; default
	// DefaultHolder().
	Holder string
	// Where says where the job runs ("slurm job 12 on node7"), for the
	// status and the submitter's log.
	Where string
	// Rank is this process's node rank in a multi-node job. Rank 0 holds
	// the lease and records the status; the others only run the op.
	Rank int
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
}

// RunJob runs the step of the job file at jobURL (`marin run-step`): it
// adopts the lease the submitter handed over, heartbeats it, runs the op,
// sends progress and log events to the submitter through the attempt
// directory, records SUCCESS or FAILED and releases the lease.
//
// It returns nil when the step succeeded (or had already), ErrNotHolder
// when the lease went elsewhere before the job started or while it ran
// (nothing recorded), the context's error when the job was stopped (the
// submitter records the scheduler's reason), and otherwise the op's error,
// which is also recorded as FAILED.
func RunJob(ctx context.Context, jobURL string, o JobOptions) error {
	if !strings.HasSuffix(jobURL, "/"+JobFileName) {
		return fmt.Errorf("job file %s: want a URL ending in /%s", jobURL, JobFileName)
	}
	jf, err := ReadJobFile(ctx, jobURL)
	if err != nil {
		return err
	}
	if o.Runner == nil {
		return errors.New("run job: no plugin runner")
	}
	e := &executor{
		opts: Options{Heartbeat: time.Duration(jf.Heartbeat), StaleAfter: time.Duration(jf.StaleAfter)},
		now:  time.Now, log: o.Logger, holder: o.Holder, self: currentProcess(),
	}
	if o.Clock != nil {
		e.now = o.Clock
	}
	if e.holder == "" {
		e.holder = DefaultHolder()
	}
	req := RunRequest{
		StepName: jf.Request.StepName, Op: jf.Request.Op, Config: jf.Request.Config, OutputPath: jf.Request.OutputPath,
		Prefix: jf.Request.Prefix, Attempt: jf.Request.Attempt, Deadline: time.Duration(jf.Request.Deadline),
	}
	out := req.OutputPath
	log := o.Logger.With().Str("step", req.StepName).Str("op", req.Op).Str("path", out).Logger()
	if o.Rank > 0 {
		// A worker of a multi-node step: the op on this node, nothing else.
		log.Info().Int("rank", o.Rank).Str("where", o.Where).Msg("running the op as a worker")
		return callPlugin(ctx, o.Runner, req, nil)
	}

	// Adopt the lease: only the lease the submitter handed over, never a
	// successor's. The lock is replaced only while it is the version just
	// read (storage.ReplaceIfVersion); the submitter refreshing it until it
	// sees the adoption changes it in between, and then it is read again.
	mine := e.newLease()
	mine.LeaseID = jf.Lease.LeaseID
	data, err := json.Marshal(mine)
	if err != nil {
		return err
	}
	for round := 0; ; round++ {
		cur, ver, err := readLeaseVersion(ctx, out)
		switch {
		case errors.Is(err, storage.ErrNotExist) || errors.Is(err, errCorruptLease):
			return fmt.Errorf("%w: step %s has no valid lease (its submitter gave it up); nothing run", ErrNotHolder, req.StepName)
		case err != nil:
			return fmt.Errorf("read lease of %s: %w", out, err)
		case cur.LeaseID != jf.Lease.LeaseID:
			return fmt.Errorf("%w: step %s is now held by %s; nothing run", ErrNotHolder, req.StepName, cur.Holder)
		}
		held.Store(mine.LeaseID, true) // this process holds it now (see holderGone)
		ok, err := storage.ReplaceIfVersion(ctx, storage.Join(out, LockFile), data, ver)
		if err != nil {
			return fmt.Errorf("adopt lease of %s: %w", out, err)
		}
		if ok {
			break
		}
		if round >= 8 {
			return fmt.Errorf("adopt lease of %s: the lock kept changing", out)
		}
	}

	wctx := func() (context.Context, context.CancelFunc) { return detached(ctx) }
	release := func() {
		c, cancel := wctx()
		defer cancel()
		if err := e.release(c, out, mine); err != nil {
			log.Error().Err(err).Msg("release lease")
		}
	}
	h, err := ReadStatus(ctx, out)
	if err != nil {
		return err
	}
	if c := last(h); c != nil && c.Status == StatusSuccess {
		log.Info().Str("holder", c.Holder).Msg("step already succeeded; nothing to run")
		release()
		return nil
	}

	jobDir := strings.TrimSuffix(jobURL, "/"+JobFileName)
	events := newEventWriter(jobDir, e.now)
	evCtx, stopEvents := context.WithCancel(ctx)
	flushCtx, cancelFlush := detached(ctx)
	defer cancelFlush()
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		events.run(evCtx, flushCtx, func(err error) { log.Warn().Err(err).Msg("write events for the submitter") })
	}()
	stop := func() {
		stopEvents()
		<-evDone
	}
	events.add(Event{Kind: EventLog, Level: "info", Message: "job started", Fields: map[string]string{"where": o.Where, "holder": e.holder}})

	stepCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopHB := e.startHeartbeat(ctx, out, mine, func() { cancel(errLeaseLost) })
	log.Info().Int("attempt", req.Attempt).Str("where", o.Where).Msg("step started")
	start := time.Now()
	runErr := callPlugin(stepCtx, o.Runner, req, events.add)
	dur := time.Since(start)
	stopHB()

	switch {
	case errors.Is(context.Cause(stepCtx), errLeaseLost) && ctx.Err() == nil:
		events.add(Event{Kind: EventLog, Level: "error", Message: "lease lost to another holder; step stopped"})
		stop()
		return fmt.Errorf("%w: lost while running step %s", ErrNotHolder, req.StepName)
	case ctx.Err() != nil:
		// Stopped by the scheduler (cancelled, preempted, time limit): the
		// submitter records the scheduler's reason; if it is gone too, the
		// lease goes stale and the next run takes the step over.
		events.add(Event{Kind: EventLog, Level: "warn", Message: "job stopped: " + context.Cause(ctx).Error()})
		stop()
		return fmt.Errorf("job stopped before step %s finished: %w", req.StepName, ctx.Err())
	}

	c, cancelW := wctx()
	defer cancelW()
	if runErr == nil {
		if ok, err := e.holds(c, out, mine); err != nil || !ok {
			stop()
			if err != nil {
				return fmt.Errorf("check lease before recording SUCCESS: %w", err)
			}
			return fmt.Errorf("%w: lost just before recording SUCCESS of %s", ErrNotHolder, req.StepName)
		}
	}
	events.add(Event{Kind: EventLog, Level: "info", Message: "job finished", Fields: map[string]string{"duration": dur.Round(time.Millisecond).String()}})
	stop()
	entry := StatusEntry{Status: StatusSuccess, Time: e.now().UTC(), Holder: e.holder, Message: o.Where}
	if runErr != nil {
		// The op's error may carry a request or response: redacted, as
		// for local steps.
		entry.Status, entry.Message = StatusFailed, redact.String(runErr.Error())
		if cause := context.Cause(stepCtx); cause != nil && stepCtx.Err() != nil {
			entry.Message = cause.Error() + ": " + entry.Message
		}
	}
	if err := appendStatus(c, out, entry); err != nil {
		return fmt.Errorf("record %s: %w", entry.Status, err)
	}
	release()
	if runErr != nil {
		log.Error().Dur("duration", dur).Str("status", string(StatusFailed)).Str("error", entry.Message).Msg("step finished")
		return runErr
	}
	log.Info().Dur("duration", dur).Str("status", string(StatusSuccess)).Msg("step finished")
	return nil
}

// callPlugin runs the op, turning a panic in the runner into an error.
func callPlugin(ctx context.Context, r Runner, req RunRequest, report func(Event)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("runner panicked: %v", p)
		}
	}()
	if report == nil {
		report = func(Event) {}
	}
	return r.Run(ctx, req, report)
}
