package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/redact"
	"github.com/marin-go/marin/plugins/storage"
)

// DecisionKind says what a run will do with a step.
type DecisionKind string

const (
	// DecisionSkip: the output is complete (SUCCESS on disk).
	DecisionSkip DecisionKind = "skip"
	// DecisionRun: the step will run (new output, retry, or takeover).
	DecisionRun DecisionKind = "run"
	// DecisionRunningElsewhere: another process holds a fresh lease on it;
	// a run waits for it (and takes over should its lease go stale).
	DecisionRunningElsewhere DecisionKind = "running-elsewhere"
	// DecisionBlocked: it or a dependency FAILED and ForceRunFailed is off.
	DecisionBlocked DecisionKind = "blocked"
)

// Decision is what a run will do with one step, and why.
type Decision struct {
	Name       string       `json:"name"`
	Op         string       `json:"op"`
	OutputPath string       `json:"output_path"`
	RelPath    string       `json:"rel_path"`
	Decision   DecisionKind `json:"decision"`
	Reason     string       `json:"reason"`
	// Diff lists the versioned values that differ from Previous, for a step
	// that has never run at its path.
	Diff []ConfigDiff `json:"diff,omitempty"`
	// Previous is the most recent earlier output of the same step name
	// (another hash) that Diff compares against.
	Previous string `json:"previous,omitempty"`
	// Runner says where a step that will run would run: "local" (this
	// process's plugins), "slurm" or "kubernetes" (see place in remote.go).
	Runner string `json:"runner,omitempty"`
	// Resources is what its job would ask the scheduler for, in the
	// scheduler's terms (remote runners only).
	Resources string `json:"resources,omitempty"`

	// failedBefore marks a step blocked by its own FAILED status, which a
	// run reports among the failed steps.
	failedBefore bool
}

// Change kinds of a ConfigDiff.
const (
	ChangeChanged           = "changed"
	ChangeAdded             = "added"
	ChangeRemoved           = "removed"
	ChangeOp                = "op-changed"
	ChangeDependencyAdded   = "dependency-added"
	ChangeDependencyRemoved = "dependency-removed"
)

// ConfigDiff is one versioned value that differs between an earlier output
// and the current plan. Key is the dotted config path ("optimizer.lr",
// "components.0.weight"), or "op" / "dependencies" for those changes.
type ConfigDiff struct {
	Key    string `json:"key"`
	Change string `json:"change"`
	Old    any    `json:"old,omitempty"`
	New    any    `json:"new,omitempty"`
}

func (d ConfigDiff) String() string {
	switch d.Change {
	case ChangeAdded:
		return fmt.Sprintf("%s added (%s)", d.Key, show(d.New))
	case ChangeRemoved:
		return fmt.Sprintf("%s removed (was %s)", d.Key, show(d.Old))
	case ChangeDependencyAdded:
		return fmt.Sprintf("new dependency %s", show(d.New))
	case ChangeDependencyRemoved:
		return fmt.Sprintf("dropped dependency %s", show(d.Old))
	default:
		return fmt.Sprintf("%s %s → %s", d.Key, show(d.Old), show(d.New))
	}
}

func show(v any) string {
	switch f := v.(type) {
	case float64:
		// 1e-05 reads better than JSON's 0.00001 for hyper-parameters.
		return strconv.FormatFloat(f, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(f), 'g', -1, 32)
	}
	b, err := graph.CanonicalJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 80 {
		return string(b[:77]) + "…"
	}
	return string(b)
}

// Plan computes, without writing anything, what Run would do with each
// selected step, in topological order.
func Plan(ctx context.Context, plan *graph.Plan, opts Options) ([]Decision, error) {
	e, err := newExecutor(plan, opts)
	if err != nil {
		return nil, err
	}
	ds, err := e.decide(ctx)
	if err != nil {
		return nil, err
	}
	return ds, e.place(ds)
}

// observed is what is on disk for one step.
type observed struct {
	history  []StatusEntry
	lease    *Lease // nil: no lock
	leaseBad bool   // the lock exists but cannot be parsed
	// unreadable is why the step's files could not be read at all (an I/O
	// error): its state is unknown, so it reruns, and the other steps are
	// decided as usual.
	unreadable error
	// For a step never run at its path: the nearest earlier output.
	previous string
	diff     []ConfigDiff
	explain  string
}

// decide reads every selected step's files (concurrently: on an object
// store each read is a round trip) and then decides in topological order,
// since a blocked dependency blocks its dependents.
func (e *executor) decide(ctx context.Context) ([]Decision, error) {
	obs := make([]observed, len(e.steps))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(16, len(e.steps)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				obs[i] = e.observe(ctx, e.steps[i])
			}
		}()
	}
	for i := range e.steps {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	out := make([]Decision, len(e.steps))
	for i, st := range e.steps {
		d := Decision{Name: st.Step.Name, Op: st.Step.Op, OutputPath: st.OutputPath, RelPath: st.RelPath}
		o := obs[i]
		cur := last(o.history)
		var blockedDep *graph.Planned
		for _, dep := range st.Deps {
			if j, ok := e.index[dep]; ok && out[j].Decision == DecisionBlocked {
				blockedDep = dep
				break
			}
		}
		switch {
		case cur != nil && cur.Status == StatusSuccess:
			d.Decision, d.Reason = DecisionSkip, "done"+when(cur.Time)
		case cur != nil && cur.Status == StatusFailed && !e.force:
			d.Decision, d.failedBefore = DecisionBlocked, true
			d.Reason = "FAILED" + when(cur.Time) + message(cur.Message) + "; not retried because force_run_failed is off"
		case blockedDep != nil:
			d.Decision, d.Reason = DecisionBlocked, "dependency "+blockedDep.RelPath+" is blocked"
		case o.unreadable != nil:
			d.Decision, d.Reason = DecisionRun, "state unknown ("+redact.String(o.unreadable.Error())+"); rerunning"
		case o.lease != nil && o.leaseBad:
			d.Decision, d.Reason = DecisionRun, "lease file is unreadable; will take it over"
		case o.lease != nil:
			if gone, why := e.expired(o.lease); gone {
				d.Decision, d.Reason = DecisionRun, why+"; will take over"
			} else {
				d.Decision = DecisionRunningElsewhere
				d.Reason = fmt.Sprintf("held by %s (heartbeat %s ago)", o.lease.Holder, age(e.now().Sub(o.lease.Heartbeat)))
			}
		case cur == nil:
			d.Decision, d.Reason = DecisionRun, o.explain
			d.Diff, d.Previous = o.diff, o.previous
		case cur.Status == StatusFailed:
			d.Decision, d.Reason = DecisionRun, "FAILED"+when(cur.Time)+message(cur.Message)+"; retrying"
		case cur.Status == StatusDepFailed:
			d.Decision, d.Reason = DecisionRun, "a dependency failed"+when(cur.Time)+"; retrying"
		case cur.Status == StatusRunning:
			d.Decision, d.Reason = DecisionRun, fmt.Sprintf("RUNNING by %s%s but nobody holds its lease; rerunning", cur.Holder, when(cur.Time))
		default:
			d.Decision, d.Reason = DecisionRun, fmt.Sprintf("unknown status %q; rerunning", cur.Status)
		}
		out[i] = d
	}
	return out, nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " at " + t.Local().Format("2006-01-02 15:04:05")
}

func message(m string) string {
	if m == "" {
		return ""
	}
	// Files written before redaction existed may still hold secrets.
	m = redact.String(m)
	if len(m) > 200 {
		m = truncate(m, 197) + "…"
	}
	return ": " + m
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// observe reads one step's status and lease, and for a step that never ran
// at its path, finds what changed since its most recent sibling output.
// Nothing it meets stops the plan: a torn or damaged status line is left
// out with a warning, and files that cannot be read at all make the step's
// state unknown (o.unreadable), which reruns it.
func (e *executor) observe(ctx context.Context, st *graph.Planned) observed {
	var o observed
	log := e.log.With().Str("step", st.Step.Name).Str("path", st.OutputPath).Logger()
	h, probs, err := ReadStatusChecked(ctx, st.OutputPath)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("cannot read the step's status; its state is unknown and it will rerun")
		}
		o.unreadable = fmt.Errorf("status: %w", err)
		return o
	}
	for _, p := range probs {
		log.Warn().Str("problem", p.String()).Msg("ignoring a line of the step's status")
	}
	o.history = h
	l, err := readLease(ctx, st.OutputPath)
	switch {
	case err == nil:
		o.lease = l
	case errors.Is(err, errCorruptLease):
		o.lease, o.leaseBad = l, true
	case !errors.Is(err, storage.ErrNotExist):
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("cannot read the step's lease; its state is unknown and it will rerun")
		}
		o.unreadable = fmt.Errorf("lease: %w", err)
		return o
	}
	if len(h) == 0 {
		if err := e.explain(ctx, st, &o); err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("cannot compare with earlier outputs")
			}
			o.explain, o.diff, o.previous = "not run before", nil, ""
		}
	}
	return o
}

// siblingDir matches the directory part after "{name}-" of a sibling output.
var siblingDir = regexp.MustCompile(`^[0-9a-f]{6}/$`)

// explain fills o.explain (and diff/previous) for a step with no status at
// its path: the most recent output of the same step name under another hash
// is the run it replaces, and the versioned values that differ are why.
func (e *executor) explain(ctx context.Context, st *graph.Planned, o *observed) error {
	if st.Step.OverrideOutputPath != "" || strings.Contains(st.RelPath, "://") {
		o.explain = "not run before"
		return nil
	}
	stem := storage.Join(e.plan.Prefix, st.Step.Name) + "-"
	ents, err := storage.List(ctx, stem, "/")
	if err != nil {
		return err
	}
	own := st.OutputPath + "/"
	var (
		best     string
		bestTime time.Time
	)
	for _, ent := range ents {
		if !ent.IsDir || ent.URL == own || !siblingDir.MatchString(strings.TrimPrefix(ent.URL, stem)) {
			continue
		}
		dir := strings.TrimSuffix(ent.URL, "/")
		a, err := storage.Stat(ctx, storage.Join(dir, InfoFile))
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if best == "" || a.ModTime.After(bestTime) {
			best, bestTime = dir, a.ModTime
		}
	}
	if best == "" {
		o.explain = "not run before (no earlier output of " + st.Step.Name + ")"
		return nil
	}
	info, err := ReadInfo(ctx, best)
	if err != nil {
		// A sibling with an unreadable record cannot explain anything,
		// but must not stop the plan either.
		e.log.Warn().Err(err).Str("step", st.Step.Name).Msg("cannot read earlier output's record")
		o.explain = "not run before"
		return nil
	}
	o.previous = best
	o.diff = diffVersions(info.Version, st.Version)
	prevRel := strings.TrimPrefix(best, e.plan.Prefix+"/")
	if len(o.diff) == 0 {
		o.explain = "not run before; " + prevRel + " has the same versioned config (hashing changed?)"
		return nil
	}
	parts := make([]string, 0, 3)
	for i, d := range o.diff {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(o.diff)-3))
			break
		}
		parts = append(parts, d.String())
	}
	o.explain = "config changed since " + prevRel + ": " + strings.Join(parts, ", ")
	return nil
}

// diffVersions compares two version maps ({"op", "config": {dotted: v},
// "dependencies": [...]}). Values are compared as canonical JSON, so an
// int64 in the plan equals the float64 read back from disk.
func diffVersions(old, cur map[string]any) []ConfigDiff {
	var out []ConfigDiff
	if oldOp, curOp := old["op"], cur["op"]; !sameJSON(oldOp, curOp) {
		out = append(out, ConfigDiff{Key: "op", Change: ChangeOp, Old: oldOp, New: curOp})
	}
	oc, _ := old["config"].(map[string]any)
	cc := asConfig(cur["config"])
	keys := map[string]bool{}
	for k := range oc {
		keys[k] = true
	}
	for k := range cc {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		ov, inOld := oc[k]
		nv, inNew := cc[k]
		switch {
		case !inOld:
			out = append(out, ConfigDiff{Key: k, Change: ChangeAdded, New: nv})
		case !inNew:
			out = append(out, ConfigDiff{Key: k, Change: ChangeRemoved, Old: ov})
		case !sameJSON(ov, nv):
			out = append(out, ConfigDiff{Key: k, Change: ChangeChanged, Old: ov, New: nv})
		}
	}
	od, nd := asStrings(old["dependencies"]), asStrings(cur["dependencies"])
	for _, d := range od {
		if !contains(nd, d) {
			out = append(out, ConfigDiff{Key: "dependencies", Change: ChangeDependencyRemoved, Old: d})
		}
	}
	for _, d := range nd {
		if !contains(od, d) {
			out = append(out, ConfigDiff{Key: "dependencies", Change: ChangeDependencyAdded, New: d})
		}
	}
	return out
}

func asConfig(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asStrings(v any) []string {
	var out []string
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = t
	}
	return out
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return false
	}
	// Round-trip both through any so number representations agree.
	var va, vb any
	if json.Unmarshal(ja, &va) != nil || json.Unmarshal(jb, &vb) != nil {
		return bytes.Equal(ja, jb)
	}
	ca, errA := graph.CanonicalJSON(va)
	cb, errB := graph.CanonicalJSON(vb)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}
