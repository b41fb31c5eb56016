package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marin-go/marin/plugins/sdk"
)

type recorder struct {
	mu       sync.Mutex
	logs     []string
	progress []float64
}

func (r *recorder) Progress(done, total float64, unit, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress = append(r.progress, done)
}
func (r *recorder) Log(level, msg string, kv ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, msg)
}

func request(t *testing.T, cfg map[string]any) (*sdk.Request, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	raw, _ := json.Marshal(cfg)
	return &sdk.Request{Op: "shell/run", StepName: "s", ConfigJSON: raw, OutputPath: "file://" + out, Attempt: 1}, out
}

func TestRunWritesOutputAndStreamsLogs(t *testing.T) {
	req, out := request(t, map[string]any{
		"command": `echo hello; echo "MARIN_PROGRESS 1 2 files half"; echo "$GREETING $MARIN_STEP" > "$MARIN_OUTPUT_PATH/result.txt"`,
		"env":     map[string]string{"GREETING": "hi"},
	})
	rec := &recorder{}
	if err := run(context.Background(), req, rec); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "result.txt"))
	if err != nil || string(b) != "hi s\n" {
		t.Fatalf("result.txt = %q, %v", b, err)
	}
	logb, _ := os.ReadFile(filepath.Join(out, "command.log"))
	if !strings.Contains(string(logb), "hello") {
		t.Errorf("command.log = %q", logb)
	}
	if len(rec.logs) != 1 || rec.logs[0] != "hello" || len(rec.progress) != 1 || rec.progress[0] != 1 {
		t.Errorf("logs %v progress %v", rec.logs, rec.progress)
	}
}

func TestRunFailureCarriesExitStatusAndOutput(t *testing.T) {
	req, _ := request(t, map[string]any{"command": []any{"/bin/sh", "-c", "echo boom >&2; exit 7"}})
	err := run(context.Background(), req, &recorder{})
	var d *sdk.Diagnostic
	if !errors.As(err, &d) || !strings.Contains(d.Summary, "exited with status 7") || !strings.Contains(d.Detail, "boom") {
		t.Fatalf("got %v (%+v)", err, d)
	}
}

func TestRunCancelKillsCommand(t *testing.T) {
	req, _ := request(t, map[string]any{"command": "sleep 30"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := run(ctx, req, &recorder{})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func TestBadCommandConfig(t *testing.T) {
	for _, c := range []any{nil, "", []any{}, []any{1}, 3} {
		req, _ := request(t, map[string]any{"command": c})
		if err := run(context.Background(), req, &recorder{}); err == nil {
			t.Errorf("command %v accepted", c)
		}
	}
}

// gone waits until pid no longer runs (or is a zombie awaiting its reaper).
func gone(pid int) bool {
	for i := 0; i < 100; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func pidFrom(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestBackgroundProcessDoesNotHangTheStep reproduces defect 6 of issue 16:
// a command that left a process behind holding its output hung the step
// until that process exited. The command's process group is killed when it
// exits.
func TestBackgroundProcessDoesNotHangTheStep(t *testing.T) {
	req, out := request(t, map[string]any{"command": `(sleep 300 & echo $! > "$MARIN_OUTPUT_PATH/bg.pid"); echo started`})
	rec := &recorder{}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), req, rec) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the step hangs on the background process")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	if pid := pidFrom(t, filepath.Join(out, "bg.pid")); !gone(pid) {
		t.Errorf("background process %d still runs", pid)
	}
	found := false
	for _, l := range rec.logs {
		found = found || strings.Contains(l, "left processes running")
	}
	if !found {
		t.Errorf("no warning about the processes left behind: %v", rec.logs)
	}
}

func TestCancelKillsTheWholeProcessGroup(t *testing.T) {
	req, out := request(t, map[string]any{"command": `sleep 300 & echo $! > "$MARIN_OUTPUT_PATH/bg.pid"; wait`})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, req, &recorder{}) }()
	pidFile := filepath.Join(out, "bg.pid")
	for i := 0; ; i++ {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			break
		}
		if i == 500 {
			t.Fatal("the command never started its child")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cancelled") {
			t.Errorf("err %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancel did not end the step")
	}
	if pid := pidFrom(t, pidFile); !gone(pid) {
		t.Errorf("child %d of a cancelled command still runs", pid)
	}
}

// TestSignalNamedInFailure: a command killed by a signal was reported as
// "status -1" (defect 6 of issue 16).
func TestSignalNamedInFailure(t *testing.T) {
	for sig, want := range map[string]string{"KILL": "killed by signal SIGKILL (killed)", "TERM": "killed by signal SIGTERM (terminated)", "SEGV": "SIGSEGV"} {
		req, _ := request(t, map[string]any{"command": []any{"/bin/sh", "-c", "echo going; kill -" + sig + " $$"}})
		err := run(context.Background(), req, &recorder{})
		var d *sdk.Diagnostic
		if !errors.As(err, &d) || !strings.Contains(d.Summary, want) || strings.Contains(d.Summary, "-1") || !strings.Contains(d.Detail, "going") {
			t.Errorf("SIG%s: got %v (%+v), want %q", sig, err, d, want)
		}
	}
}
