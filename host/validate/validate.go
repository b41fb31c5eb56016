// Package validate checks an experiment's steps while it is planned, before
// anything runs, in the style of Terraform's plan-time diagnostics: every
// step is routed to the op that will serve it (its backend included), its
// resolved config is checked against the schema that op's plugin declared,
// and ops that plan (sdk.Op.Plan) look at what a schema cannot — files that
// must exist, a model's positions against the sequence length — and pin
// values the version must include (a tokenizer's digest, a hub revision).
// Each problem becomes a Diagnostic carrying the script position and the
// attribute path of the value at fault, so `marin --dry-run` reports every
// mistake an op would hit, all at once.
package validate

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
)

// OpSpec is what the plugins declared about one op.
type OpSpec struct {
	Plugin executor.PluginRef
	// Schema is the op's config schema (nil: it declares none).
	Schema *schema.Field
	// Plans says the op answers Plan.
	Plans bool
}

// Catalog is what the checks need from the plugins (host/pluginhost's
// Manager implements it).
type Catalog interface {
	// Spec describes the op, or returns an error when no plugin serves it.
	Spec(op string) (OpSpec, error)
	// Backends names the plugins of kind backend.
	Backends() []string
	// Plan calls the op's Plan for one step.
	Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error)
}

// Options are the run's routing settings (see executor.Options).
type Options struct {
	// Backend is --backend: it overrides the backend of steps that name one.
	Backend string
	// DefaultBackend serves bare op names ("cpu").
	DefaultBackend string
	// LogLevel is passed to Plan.
	LogLevel string
}

// Kind classifies a diagnostic.
type Kind int

const (
	// Invalid is a config mistake (exit 3).
	Invalid Kind = iota
	// Unserved is an op no plugin serves (exit 4).
	Unserved
)

// Diagnostic is one problem, placed in the script.
type Diagnostic struct {
	Kind Kind
	Step string // the step's name
	Op   string // the op it is dispatched to
	// Path is the config path of the value at fault ("" for the step).
	Path string
	// Pos and Attr say where the script wrote the value:
	// "exp.star:12:7" and "SimpleSFTConfig.learning_rate".
	Pos, Attr string
	Message   string
}

func (d Diagnostic) String() string {
	var b strings.Builder
	if d.Pos != "" {
		b.WriteString(d.Pos)
		b.WriteString(": ")
	}
	if d.Attr != "" {
		b.WriteString(d.Attr)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	fmt.Fprintf(&b, " (step %s, op %s)", d.Step, d.Op)
	return b.String()
}

// Result is what Check found.
type Result struct {
	Diagnostics []Diagnostic
	// Pins are config keys ops asked to add to their steps before hashing.
	Pins map[*graph.Step]map[string]any
	// Notes are ops' lines for the plan display, by step name.
	Notes map[string][]string
	// Ops is the op each step is dispatched to, by step name.
	Ops map[string]string
}

// Err returns the diagnostics as one error, or nil when there are none.
func (r *Result) Err() error {
	if len(r.Diagnostics) == 0 {
		return nil
	}
	return &Error{Diagnostics: r.Diagnostics}
}

// Error is a plan with problems.
type Error struct{ Diagnostics []Diagnostic }

func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	noun := "problems"
	if len(lines) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("%d %s found while planning:\n  %s", len(lines), noun, strings.Join(lines, "\n  "))
}

// OnlyUnserved reports whether every diagnostic is an unserved op.
func (e *Error) OnlyUnserved() bool {
	for _, d := range e.Diagnostics {
		if d.Kind != Unserved {
			return false
		}
	}
	return len(e.Diagnostics) > 0
}

// Check validates every planned step.
func Check(ctx context.Context, plan *graph.Plan, cat Catalog, o Options) *Result {
	res := &Result{Pins: map[*graph.Step]map[string]any{}, Notes: map[string][]string{}, Ops: map[string]string{}}
	backends := cat.Backends()
	for _, n := range plan.Steps {
		st := n.Step
		op := executor.DispatchOp(st.Op, st.Backend, o.Backend, o.DefaultBackend)
		res.Ops[st.Name] = op
		add := func(kind Kind, path, msg string) {
			src := st.SourceOf(path)
			res.Diagnostics = append(res.Diagnostics, Diagnostic{Kind: kind, Step: st.Name, Op: op, Path: path, Pos: src.Pos, Attr: src.Attr, Message: msg})
		}
		spec, err := cat.Spec(op)
		if err != nil {
			backend := st.Backend
			if o.Backend != "" && backend != "" {
				backend = o.Backend
			}
			switch {
			case backend != "" && !contains(backends, backend):
				msg := fmt.Sprintf("%q is not a backend; backends: %s%s", backend, strings.Join(backends, ", "), schema.Suggest(backend, backends))
				if o.Backend != "" {
					add(Invalid, "resources.backend", "--backend "+msg)
				} else {
					add(Invalid, "resources.backend", msg)
				}
			case op != st.Op:
				add(Invalid, "resources.backend", fmt.Sprintf("backend %q does not serve op %q (no plugin serves %q)", backend, st.Op, op))
			default:
				add(Unserved, "", err.Error())
			}
			continue
		}
		issues := spec.Schema.Validate(n.Config)
		for _, is := range issues {
			add(Invalid, is.Path, is.Message)
		}
		if !spec.Plans || len(issues) > 0 {
			continue
		}
		pr, err := cat.Plan(ctx, &sdk.PlanRequest{Op: op, StepName: st.Name, Config: n.Config, Prefix: plan.Prefix, LogLevel: o.LogLevel})
		if err != nil {
			add(Invalid, "", fmt.Sprintf("plan: %v", err))
			continue
		}
		for _, d := range pr.Diagnostics {
			add(Invalid, d.Attribute, d.Summary)
		}
		if len(pr.Set) > 0 {
			res.Pins[st] = pr.Set
		}
		if len(pr.Notes) > 0 {
			res.Notes[st.Name] = pr.Notes
		}
	}
	sort.SliceStable(res.Diagnostics, func(i, j int) bool {
		a, b := res.Diagnostics[i], res.Diagnostics[j]
		if a.Pos != b.Pos {
			return lessPos(a.Pos, b.Pos)
		}
		return a.Path < b.Path
	})
	return res
}

// ApplyPins adds pinned keys to their steps' configs (before re-planning,
// so the pins count in the steps' versions). It reports whether any step
// changed.
func ApplyPins(pins map[*graph.Step]map[string]any) bool {
	changed := false
	for st, set := range pins {
		for k, v := range set {
			if old, ok := st.Config[k]; ok && fmt.Sprint(old) == fmt.Sprint(v) {
				continue
			}
			st.Config[k] = v
			changed = true
		}
	}
	return changed
}

// lessPos orders "file:line:col" positions by file, then numerically.
func lessPos(a, b string) bool {
	fa, la, ca := splitPos(a)
	fb, lb, cb := splitPos(b)
	if fa != fb {
		return fa < fb
	}
	if la != lb {
		return la < lb
	}
	return ca < cb
}

func splitPos(p string) (file string, line, col int) {
	parts := strings.Split(p, ":")
	if len(parts) < 3 {
		return p, 0, 0
	}
	fmt.Sscan(parts[len(parts)-2], &line)
	fmt.Sscan(parts[len(parts)-1], &col)
	return strings.Join(parts[:len(parts)-2], ":"), line, col
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
