package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/logging"
	pluginpb "github.com/marin-go/marin/plugins/proto"
)

// FailureKind says how a plugin failed a step.
type FailureKind int

const (
	// OpFailed: the op ran and reported an error (a diagnostic).
	OpFailed FailureKind = iota + 1
	// StartFailed: the plugin process could not be started or connected to.
	StartFailed
	// Crashed: the process died, or the connection broke, before a result.
	Crashed
	// DeadlineExceeded: no result within RunRequest.Deadline.
	DeadlineExceeded
	// Cancelled: the caller's context ended first.
	Cancelled
	// Malformed: the plugin broke the protocol (no result, empty events, an
	// RPC error instead of a result).
	Malformed
)

func (k FailureKind) String() string {
	switch k {
	case OpFailed:
		return "op failed"
	case StartFailed:
		return "start failed"
	case Crashed:
		return "crashed"
	case DeadlineExceeded:
		return "deadline exceeded"
	case Cancelled:
		return "cancelled"
	case Malformed:
		return "malformed reply"
	}
	return fmt.Sprintf("FailureKind(%d)", int(k))
}

// RunError is the error Run returns when a plugin fails a step. Its message
// is the plugin's own (the op's diagnostic, or its stderr for a crash).
type RunError struct {
	Plugin    string      // plugin name
	Op        string      // the op that was run
	Step      string      // the step's name
	Kind      FailureKind // how it failed
	Summary   string      // one line
	Detail    string      // the diagnostic's detail, or the end of the plugin's stderr
	Attribute string      // the config key at fault, when the plugin named one
	Err       error       // underlying cause, if any (context.DeadlineExceeded, …)
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("plugin %q op %q: %s", e.Plugin, e.Op, e.Summary)
	if e.Detail != "" {
		msg += "\n" + indent(e.Detail)
	}
	return msg
}

func (e *RunError) Unwrap() error { return e.Err }

// errStepDeadline is the cause of a run context that hit RunRequest.Deadline,
// telling it apart from a deadline on the caller's context.
var errStepDeadline = errors.New("step deadline")

// Run executes one step in a fresh process of the plugin that serves req.Op,
// forwarding its progress and log events to report (which may be nil). Plugin
// log events are also written to the Manager's logger with the step and
// plugin names. Run returns nil on success and a *RunError when the plugin
// fails the step in any way.
func (m *Manager) Run(ctx context.Context, req executor.RunRequest, report func(executor.Event)) error {
	p, err := m.resolve(req.Op)
	if err != nil {
		return err
	}
	if report == nil {
		report = func(executor.Event) {}
	}
	fail := func(kind FailureKind, summary, detail string, cause error) error {
		return &RunError{Plugin: p.info.Name, Op: req.Op, Step: req.StepName, Kind: kind, Summary: summary, Detail: detail, Err: cause}
	}
	cfg, err := json.Marshal(orEmpty(req.Config))
	if err != nil {
		return fmt.Errorf("plugin %q op %q: encode config of step %q: %w", p.info.Name, req.Op, req.StepName, err)
	}

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if req.Deadline > 0 {
		runCtx, cancel = context.WithTimeoutCause(ctx, req.Deadline, errStepDeadline)
	}
	defer cancel()
	ctxErr := func() error {
		if errors.Is(context.Cause(runCtx), errStepDeadline) {
			return fail(DeadlineExceeded, fmt.Sprintf("no result after %s deadline", req.Deadline), "", context.DeadlineExceeded)
		}
		return fail(Cancelled, "cancelled: "+context.Cause(ctx).Error(), "", context.Cause(ctx))
	}

	log := m.log.With().Str("step", req.StepName).Str("plugin", p.info.Name).Logger()
	proc, err := m.start(p.command, log)
	if err != nil {
		return fail(StartFailed, err.Error(), "", err)
	}
	defer proc.stop()
	if runCtx.Err() != nil {
		return ctxErr()
	}

	stream, err := proc.rpc.Run(runCtx, &pluginpb.RunRequest{
		Op:         req.Op,
		StepName:   req.StepName,
		ConfigJson: cfg,
		OutputPath: req.OutputPath,
		Prefix:     req.Prefix,
		Attempt:    int32(req.Attempt),
		LogLevel:   levelName(log),
		Plugins:    m.formatEndpoints(),
	})
	if err != nil {
		if runCtx.Err() != nil {
			return ctxErr()
		}
		return fail(Crashed, fmt.Sprintf("call Run: %v", err), "", err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			switch {
			case runCtx.Err() != nil:
				return ctxErr()
			case errors.Is(err, io.EOF):
				return fail(Malformed, "plugin ended the Run stream without sending a result", "", nil)
			case status.Code(err) == codes.Unavailable:
				// The connection broke: most likely the process died. Wait for
				// it so the exit status and all of its stderr are known.
				if proc.waitExit(exitWait) {
					proc.stop()
					return fail(Crashed, fmt.Sprintf("plugin process exited (%s) before sending a result", proc.exitStatus()), stderrDetail(proc), err)
				}
				proc.stop()
				return fail(Crashed, fmt.Sprintf("lost the connection to the plugin: %v", err), stderrDetail(proc), err)
			default:
				return fail(Malformed, fmt.Sprintf("plugin failed the Run call instead of sending a result: %v", err), "", err)
			}
		}
		switch e := ev.GetEvent().(type) {
		case *pluginpb.RunEvent_Progress:
			report(executor.Event{
				Kind: executor.EventProgress, Done: e.Progress.GetDone(), Total: e.Progress.GetTotal(),
				Unit: e.Progress.GetUnit(), Message: e.Progress.GetMessage(),
			})
		case *pluginpb.RunEvent_Log:
			logEvent(log, e.Log)
			report(executor.Event{
				Kind: executor.EventLog, Level: e.Log.GetLevel(), Message: e.Log.GetMessage(), Fields: e.Log.GetFields(),
			})
		case *pluginpb.RunEvent_Result:
			switch o := e.Result.GetOutcome().(type) {
			case *pluginpb.Result_Ok:
				return nil
			case *pluginpb.Result_Error:
				d := o.Error
				summary := d.GetSummary()
				if summary == "" {
					summary = "op failed without a message"
				}
				return &RunError{
					Plugin: p.info.Name, Op: req.Op, Step: req.StepName, Kind: OpFailed,
					Summary: summary, Detail: d.GetDetail(), Attribute: d.GetAttribute(),
				}
			default:
				return fail(Malformed, "plugin sent a result that is neither ok nor an error", "", nil)
			}
		default:
			return fail(Malformed, fmt.Sprintf("plugin sent an empty or unknown event (%T)", ev.GetEvent()), "", nil)
		}
	}
}

func stderrDetail(p *process) string {
	if s := p.stderr.excerpt(); s != "" {
		return "plugin stderr:\n" + s
	}
	return "the plugin wrote nothing on stderr"
}

func orEmpty(cfg map[string]any) map[string]any {
	if cfg == nil {
		return map[string]any{}
	}
	return cfg
}

// logEvent writes a plugin's log event to log at the plugin's level.
func logEvent(log zerolog.Logger, l *pluginpb.Log) {
	logging.Forward(log, l.GetLevel(), l.GetMessage(), l.GetFields())
}
