package shell

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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
