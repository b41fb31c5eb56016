package executor

import (
	"context"
	"time"
)

// PluginRef identifies the plugin that serves an op.
type PluginRef struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`    // "dataset", "format", "backend", "generic"
	Version string `json:"version"` // the plugin's own version string
	Path    string `json:"path"`    // executable ("builtin" for plugins inside the marin binary)
}

// RunRequest is what the executor asks a plugin to do for one step.
type RunRequest struct {
	StepName   string         // the step's name, e.g. "tokenized/tulu"
	Op         string         // the op to run
	Config     map[string]any // resolved config (absolute URLs, unversioned values unwrapped)
	OutputPath string         // absolute storage URL the plugin writes into
	Prefix     string         // the run's prefix URL
	Attempt    int            // 1 for the first attempt at this output, +1 per rerun
	Deadline   time.Duration  // 0: no deadline
}

// EventKind says what an Event carries.
type EventKind int

const (
	EventProgress EventKind = iota + 1 // Done/Total/Unit/Message
	EventLog                           // Level/Message/Fields
)

// Event is a report a plugin sends while it runs a step.
type Event struct {
	Kind    EventKind
	Done    float64 // units done so far
	Total   float64 // total units, 0 when unknown
	Unit    string  // "rows", "tokens", "bytes", "steps", …
	Message string
	Level   string            // zerolog level name for EventLog
	Fields  map[string]string // structured fields for EventLog
}

// Runner dispatches ops to plugins. host/pluginhost implements it over
// go-plugin; tests use in-process fakes.
type Runner interface {
	// Resolve says which plugin serves op, or returns an error naming the op
	// when none does.
	Resolve(op string) (PluginRef, error)
	// Run executes one step and blocks until the plugin reports the result.
	// It logs the plugin's log events itself and also passes them to report
	// (for display), so the executor does not log them again.
	// The returned error carries the plugin's own message on failure (crash,
	// deadline, malformed reply, or the op's error).
	Run(ctx context.Context, req RunRequest, report func(Event)) error
}

// DispatchOp is the op a step is sent to: its Op, or "{backend}/{Op}" when
// the step names a backend other than the default one. override (the
// --backend flag) replaces the step's own backend for steps that name one.
// Ops that take no backend are never rerouted.
func DispatchOp(op, stepBackend, override, defaultBackend string) string {
	if stepBackend == "" {
		return op
	}
	b := stepBackend
	if override != "" {
		b = override
	}
	if defaultBackend == "" {
		defaultBackend = "cpu"
	}
	if b == defaultBackend {
		return op
	}
	return b + "/" + op
}
