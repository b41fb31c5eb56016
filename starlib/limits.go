package starlib

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
)

// Limits bound the evaluation of a script, so a script that loops or
// allocates without end stops with a clear error instead of hanging or
// exhausting the machine.
type Limits struct {
	// MaxSteps bounds the Starlark execution steps of the whole evaluation
	// (the script and every module it loads): 0 means DefaultMaxSteps, a
	// negative value no limit.
	MaxSteps int64
	// MaxMemory bounds how much the Go heap may grow while the script is
	// evaluated, in bytes: 0 means DefaultMaxMemory, a negative value no
	// limit. It is sampled every MemoryPoll, and Starlark refuses single
	// allocations above 1 GiB itself.
	MaxMemory int64
}

// Defaults of Limits. Planning the thousand-step experiment of the
// benchmarks takes about a million steps and a few MiB.
const (
	DefaultMaxSteps  = 200_000_000
	DefaultMaxMemory = 2 << 30
	MemoryPoll       = 10 * time.Millisecond
)

// Environment variables LimitsFromEnv reads.
const (
	MaxStepsEnv  = "MARIN_SCRIPT_MAX_STEPS"
	MaxMemoryEnv = "MARIN_SCRIPT_MAX_MEMORY"
)

// LimitsFromEnv reads Limits from $MARIN_SCRIPT_MAX_STEPS (a count) and
// $MARIN_SCRIPT_MAX_MEMORY (bytes, or with a KiB, MiB or GiB suffix);
// unset means the default, 0 or a negative value no limit.
func LimitsFromEnv() (Limits, error) {
	var l Limits
	if s := strings.TrimSpace(os.Getenv(MaxStepsEnv)); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return l, fmt.Errorf("$%s=%q: want a number of steps", MaxStepsEnv, s)
		}
		l.MaxSteps = n
		if n == 0 {
			l.MaxSteps = -1
		}
	}
	if s := strings.TrimSpace(os.Getenv(MaxMemoryEnv)); s != "" {
		n, err := parseBytes(s)
		if err != nil {
			return l, fmt.Errorf("$%s=%q: %w", MaxMemoryEnv, s, err)
		}
		l.MaxMemory = n
		if n == 0 {
			l.MaxMemory = -1
		}
	}
	return l, nil
}

func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suf); ok {
			s, mult = strings.TrimSpace(v), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return 0, errors.New("want bytes, optionally with a KiB, MiB or GiB suffix")
	}
	return n * mult, nil
}

// LimitError is evaluation stopped by a Limit.
type LimitError struct {
	What  string // "steps" or "memory"
	Limit int64
}

func (e *LimitError) Error() string {
	switch e.What {
	case "memory":
		return fmt.Sprintf("the script used more than %d MiB of memory while being evaluated and was stopped (raise the limit with $%s)", e.Limit>>20, MaxMemoryEnv)
	default:
		return fmt.Sprintf("the script ran for more than %d Starlark steps and was stopped: does it loop without end? (raise the limit with $%s)", e.Limit, MaxStepsEnv)
	}
}

// guard enforces a context and Limits on the threads of one evaluation.
type guard struct {
	lim     Limits
	mu      sync.Mutex
	threads map[*starlark.Thread]bool
	used    uint64 // steps of threads that finished
	reason  error  // why evaluation was stopped; nil while it runs
	done    chan struct{}
}

func newGuard(ctx context.Context, lim Limits) *guard {
	if lim.MaxSteps == 0 {
		lim.MaxSteps = DefaultMaxSteps
	}
	if lim.MaxMemory == 0 {
		lim.MaxMemory = DefaultMaxMemory
	}
	g := &guard{lim: lim, threads: map[*starlark.Thread]bool{}, done: make(chan struct{})}
	var (
		ticker *time.Ticker
		tick   <-chan time.Time
		base   uint64
	)
	if lim.MaxMemory > 0 {
		ticker = time.NewTicker(MemoryPoll)
		tick, base = ticker.C, heapBytes()
	}
	go func() {
		if ticker != nil {
			defer ticker.Stop()
		}
		for {
			select {
			case <-g.done:
				return
			case <-ctx.Done():
				g.stop(fmt.Errorf("interrupted: %w", context.Cause(ctx)))
				return
			case <-tick:
				if h := heapBytes(); h > base && h-base > uint64(lim.MaxMemory) {
					g.stop(&LimitError{What: "memory", Limit: lim.MaxMemory})
					return
				}
			}
		}
	}()
	return g
}

// heapBytes is the memory occupied by heap objects, live or not yet swept.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// stop cancels every thread of the evaluation, once.
func (g *guard) stop(reason error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reason != nil {
		return
	}
	g.reason = reason
	for t := range g.threads {
		t.Cancel(reason.Error())
	}
}

// add puts a thread under the guard with what is left of the step budget.
func (g *guard) add(t *starlark.Thread) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reason != nil {
		t.Cancel(g.reason.Error())
	}
	if g.lim.MaxSteps > 0 {
		spent := g.used
		for o := range g.threads {
			spent += o.ExecutionSteps()
		}
		left := uint64(0)
		if uint64(g.lim.MaxSteps) > spent {
			left = uint64(g.lim.MaxSteps) - spent
		}
		t.SetMaxExecutionSteps(max(left, 1))
		t.OnMaxSteps = func(*starlark.Thread) { g.stop(&LimitError{What: "steps", Limit: g.lim.MaxSteps}) }
	}
	g.threads[t] = true
}

// remove takes a finished thread off the guard, keeping its steps.
func (g *guard) remove(t *starlark.Thread) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.threads, t)
	g.used += t.ExecutionSteps()
}

func (g *guard) close() { close(g.done) }

// stopped returns why evaluation was stopped, or nil.
func (g *guard) stopped() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reason
}

// stoppedError explains an evaluation stopped by the guard: an interrupt
// (matching the context's error) or a limit, at the position the script
// had reached.
func stoppedError(filename string, evalErr, reason error) error {
	if evalErr == nil {
		// Stopped just as the script finished: the result stands refused.
		return fmt.Errorf("%s: %w", filename, reason)
	}
	se, ok := scriptError(evalErr).(*Error)
	if !ok {
		return fmt.Errorf("%s: %w", filename, reason)
	}
	var ee *starlark.EvalError
	msg := se.Msg
	if errors.As(evalErr, &ee) {
		msg = strings.Replace(msg, ee.Msg, reason.Error(), 1)
	}
	return &Error{Msg: msg, Backtrace: se.Backtrace, err: reason}
}
