package starlib

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const loopForever = `
def spin():
    n = 0
    for i in range(1000000000):
        n += i
    return n

spin()
executor_main()
`

// TestCancelStopsEvaluation is defect 5 of issue 16 at its root: a script
// looping at top level ran to its end whatever the context said.
func TestCancelStopsEvaluation(t *testing.T) {
	f := newFixture(t)
	p := f.file("loop.star", loopForever)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := ExecFileContext(ctx, p, nil, Limits{MaxSteps: -1})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cancel took %s to stop the script", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one matching context.Canceled", err)
	}
	var se *Error
	// The interrupt lands on the loop's header (line 4) or its body (line 5),
	// whichever the thread is executing when the context ends.
	if !errors.As(err, &se) || !(strings.Contains(se.Msg, "loop.star:4:") || strings.Contains(se.Msg, "loop.star:5:")) || !strings.Contains(se.Msg, "interrupted") {
		t.Errorf("err %q does not say where the script was interrupted", err)
	}
}

func TestCancelStopsALoadedModule(t *testing.T) {
	f := newFixture(t)
	f.file("lib.star", loopForever[:strings.Index(loopForever, "executor_main")])
	p := f.file("main.star", "load(\"lib.star\", \"spin\")\nexecutor_main()\n")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := ExecFileContext(ctx, p, nil, Limits{MaxSteps: -1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestStepLimit(t *testing.T) {
	f := newFixture(t)
	p := f.file("loop.star", loopForever)
	_, err := ExecFileContext(context.Background(), p, nil, Limits{MaxSteps: 100_000})
	var le *LimitError
	if !errors.As(err, &le) || le.What != "steps" {
		t.Fatalf("err = %v, want a step LimitError", err)
	}
	for _, want := range []string{"loop.star:5:", "more than 100000 Starlark steps", MaxStepsEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The budget is shared with loaded modules.
	f.file("lib.star", "x = [i for i in range(60000)]\n")
	p = f.file("main.star", "load(\"lib.star\", \"x\")\ny = [i for i in range(60000)]\nexecutor_main(ExecutorStep(name = \"a\", op = \"shell/run\", config = {\"n\": len(x) + len(y)}))\n")
	if _, err := ExecFileContext(context.Background(), p, nil, Limits{MaxSteps: 100_000}); !errors.As(err, &le) {
		t.Errorf("a script and its module together over the budget: %v", err)
	}
	if _, err := ExecFileContext(context.Background(), p, nil, Limits{MaxSteps: 1_000_000}); err != nil {
		t.Errorf("within the budget: %v", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	f := newFixture(t)
	p := f.file("grow.star", `
def grow():
    chunks = []
    for i in range(100000):
        chunks.append("x" * 1048576)
    return chunks

grow()
executor_main()
`)
	start := time.Now()
	_, err := ExecFileContext(context.Background(), p, nil, Limits{MaxSteps: -1, MaxMemory: 64 << 20})
	var le *LimitError
	if !errors.As(err, &le) || le.What != "memory" || !strings.Contains(err.Error(), "more than 64 MiB") {
		t.Fatalf("err = %v, want a memory LimitError", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
}

func TestLimitsFromEnv(t *testing.T) {
	t.Setenv(MaxStepsEnv, "5000")
	t.Setenv(MaxMemoryEnv, "3 GiB")
	l, err := LimitsFromEnv()
	if err != nil || l.MaxSteps != 5000 || l.MaxMemory != 3<<30 {
		t.Errorf("LimitsFromEnv = %+v, %v", l, err)
	}
	t.Setenv(MaxStepsEnv, "0")
	t.Setenv(MaxMemoryEnv, "")
	if l, _ := LimitsFromEnv(); l.MaxSteps >= 0 || l.MaxMemory != 0 {
		t.Errorf("0 steps should mean no limit: %+v", l)
	}
	t.Setenv(MaxMemoryEnv, "lots")
	if _, err := LimitsFromEnv(); err == nil || !strings.Contains(err.Error(), MaxMemoryEnv) {
		t.Errorf("bad memory value: %v", err)
	}
}
