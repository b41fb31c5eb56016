package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/plugins/sdk"
)

// syncBuffer is a log sink safe for the concurrent writes of parallel runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newManager returns a Manager whose built-ins are the test plugins served by
// this test binary, with no plugin directories unless given.
func newManager(t *testing.T, log zerolog.Logger, dirs ...string) *Manager {
	t.Helper()
	if dirs == nil {
		dirs = []string{}
	}
	m, err := New(Config{Builtins: testPlugins(), BuiltinCommand: testCommand(t), PluginDirs: dirs, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// events records what Run reports.
type events struct {
	mu  sync.Mutex
	all []executor.Event
}

func (e *events) report(ev executor.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func runErr(t *testing.T, err error) *RunError {
	t.Helper()
	var re *RunError
	if !errors.As(err, &re) {
		t.Fatalf("got %v (%T), want a *RunError", err, err)
	}
	return re
}

func okRequest(t *testing.T, step string) (executor.RunRequest, string) {
	out := filepath.Join(t.TempDir(), "out")
	return executor.RunRequest{
		StepName: step, Op: "test/ok", OutputPath: "file://" + out, Prefix: "file:///prefix", Attempt: 2,
		Config: map[string]any{"message": "hello", "n": int64(9007199254740993)},
	}, out
}

func TestRunOK(t *testing.T) {
	var logs syncBuffer
	m := newManager(t, zerolog.New(&logs).Level(zerolog.InfoLevel))
	ref, err := m.Resolve("test/ok")
	if err != nil {
		t.Fatal(err)
	}
	if want := (executor.PluginRef{Name: "testplug", Kind: "generic", Version: "0.9.0", Path: "builtin"}); ref != want {
		t.Errorf("Resolve: got %+v, want %+v", ref, want)
	}
	req, out := okRequest(t, "steps/ok")
	var ev events
	if err := m.Run(context.Background(), req, ev.report); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "ok.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// n is beyond float64's exact range: it arrives exact through JSON.
	if want := "hello n=9007199254740993 step=steps/ok attempt=2 prefix=file:///prefix"; string(b) != want {
		t.Errorf("ok.txt: got %q, want %q", b, want)
	}
	want := []executor.Event{
		{Kind: executor.EventProgress, Done: 1, Total: 2, Unit: "files", Message: "writing"},
		{Kind: executor.EventProgress, Done: 2, Total: 2, Unit: "files", Message: "done"},
		{Kind: executor.EventLog, Level: "info", Message: "wrote ok.txt", Fields: map[string]string{"file": "ok.txt"}},
	}
	if got, _ := json.Marshal(ev.all); string(got) != mustJSON(want) {
		t.Errorf("events:\n got %s\nwant %s", got, mustJSON(want))
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("want exactly one log line, got %q: %v", logs.String(), err)
	}
	if line["message"] != "wrote ok.txt" || line["step"] != "steps/ok" || line["plugin"] != "testplug" || line["file"] != "ok.txt" || line["level"] != "info" {
		t.Errorf("log line: got %v", line)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestRunOpErrors(t *testing.T) {
	m := newManager(t, zerolog.Nop())
	t.Run("diagnostic arrives verbatim", func(t *testing.T) {
		err := m.Run(context.Background(), executor.RunRequest{StepName: "s", Op: "test/fail"}, nil)
		re := runErr(t, err)
		if re.Kind != OpFailed || re.Summary != "cannot read shard 3: checksum mismatch" || re.Detail != "want abc, got def" || re.Attribute != "input" {
			t.Errorf("got %+v", re)
		}
		if want := "plugin \"testplug\" op \"test/fail\": cannot read shard 3: checksum mismatch\n  want abc, got def"; err.Error() != want {
			t.Errorf("message:\n got %q\nwant %q", err.Error(), want)
		}
	})
	t.Run("config error names the key", func(t *testing.T) {
		err := m.Run(context.Background(), executor.RunRequest{Op: "test/ok", Config: map[string]any{"n": 1}}, nil)
		re := runErr(t, err)
		if re.Kind != OpFailed || re.Summary != `config "message": missing` || re.Attribute != "message" {
			t.Errorf("got %+v", re)
		}
	})
	t.Run("panic inside the op is a diagnostic", func(t *testing.T) {
		re := runErr(t, m.Run(context.Background(), executor.RunRequest{Op: "test/panic-op"}, nil))
		if re.Kind != OpFailed || re.Summary != `op "test/panic-op" panicked: op-panic-value-91` || !strings.Contains(re.Detail, "testplugin_test.go") {
			t.Errorf("got %+v", re)
		}
	})
	t.Run("fatal log level does not reach the host as fatal", func(t *testing.T) {
		if err := m.Run(context.Background(), executor.RunRequest{Op: "test/levels"}, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("config that cannot be encoded", func(t *testing.T) {
		err := m.Run(context.Background(), executor.RunRequest{StepName: "s", Op: "test/ok", Config: map[string]any{"c": make(chan int)}}, nil)
		if err == nil || !strings.Contains(err.Error(), `encode config of step "s"`) {
			t.Errorf("got %v", err)
		}
	})
}

func TestRunUnknownOpInPlugin(t *testing.T) {
	// The manager believes testplug serves test/ghost; the process does not.
	believed := testPlug()
	believed.Ops["test/ghost"] = sdk.Op{Description: "not really", Run: believed.Ops["test/ok"].Run}
	m, err := New(Config{Builtins: []*sdk.Plugin{believed}, BuiltinCommand: testCommand(t), PluginDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	re := runErr(t, m.Run(context.Background(), executor.RunRequest{Op: "test/ghost"}, nil))
	if re.Kind != OpFailed || re.Summary != `plugin "testplug" does not serve op "test/ghost"` || !strings.Contains(re.Detail, "test/ok") {
		t.Errorf("got %+v", re)
	}
}

func TestRunCrash(t *testing.T) {
	m := newManager(t, zerolog.Nop())
	t.Run("panic on another goroutine", func(t *testing.T) {
		// The progress event sent just before the crash may or may not get
		// out of the dying process, so it is not checked.
		err := m.Run(context.Background(), executor.RunRequest{Op: "test/crash"}, nil)
		re := runErr(t, err)
		if re.Kind != Crashed || !strings.Contains(re.Summary, "exit status 2") || !strings.Contains(err.Error(), "panic: "+crashMessage) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("message on stderr then exit 3", func(t *testing.T) {
		err := m.Run(context.Background(), executor.RunRequest{Op: "test/exit"}, nil)
		re := runErr(t, err)
		if re.Kind != Crashed || !strings.Contains(re.Summary, "exit status 3") || !strings.Contains(re.Detail, exitMessage) {
			t.Errorf("got %v", err)
		}
	})
	// The host is unharmed: the next step runs.
	req, _ := okRequest(t, "after-crash")
	if err := m.Run(context.Background(), req, nil); err != nil {
		t.Errorf("run after crashes: %v", err)
	}
}

func TestRunDeadline(t *testing.T) {
	m := newManager(t, zerolog.Nop())
	start := time.Now()
	err := m.Run(context.Background(), executor.RunRequest{Op: "test/hang", Deadline: time.Second}, nil)
	elapsed := time.Since(start)
	re := runErr(t, err)
	if re.Kind != DeadlineExceeded || err.Error() != `plugin "testplug" op "test/hang": no result after 1s deadline` || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v (%+v)", err, re)
	}
	// Start-up, the deadline, and go-plugin's 2s grace before a hard kill.
	if elapsed < time.Second || elapsed > 8*time.Second {
		t.Errorf("Run returned after %v, want about 1s", elapsed)
	}
}

func TestRunCancel(t *testing.T) {
	m := newManager(t, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	// Cancel once the plugin is known to be running.
	report := func(executor.Event) { once.Do(cancel) }
	err := m.Run(ctx, executor.RunRequest{Op: "test/hang"}, report)
	re := runErr(t, err)
	if re.Kind != Cancelled || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("got %v (%+v)", err, re)
	}
}

func TestRunMalformedReplies(t *testing.T) {
	dir := t.TempDir()
	writeWrapper(t, dir, "nonsense", "nonsense")
	m := newManager(t, zerolog.Nop(), dir)
	cases := map[string]string{
		"nonsense/no-result":   `plugin "nonsense" op "nonsense/no-result": plugin ended the Run stream without sending a result`,
		"nonsense/empty-event": `plugin "nonsense" op "nonsense/empty-event": plugin sent an empty or unknown event (<nil>)`,
		"nonsense/grpc-error":  `plugin "nonsense" op "nonsense/grpc-error": plugin failed the Run call instead of sending a result: rpc error: code = Internal desc = nonsense-internal-error`,
		"nonsense/bad-outcome": `plugin "nonsense" op "nonsense/bad-outcome": plugin sent a result that is neither ok nor an error`,
	}
	for op, want := range cases {
		err := m.Run(context.Background(), executor.RunRequest{Op: op}, nil)
		if re := runErr(t, err); re.Kind != Malformed || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", op, err, want)
		}
	}
}

func TestConcurrentRuns(t *testing.T) {
	var logs syncBuffer
	m := newManager(t, zerolog.New(&logs))
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	outs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%3 == 2 {
				errs[i] = m.Run(context.Background(), executor.RunRequest{StepName: fmt.Sprint("s", i), Op: "test/fail"}, nil)
				return
			}
			req, out := okRequest(t, fmt.Sprint("s", i))
			outs[i] = out
			var ev events
			errs[i] = m.Run(context.Background(), req, ev.report)
			if len(ev.all) != 3 {
				errs[i] = fmt.Errorf("got %d events, want 3", len(ev.all))
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%3 == 2 {
			if re := runErr(t, err); re.Kind != OpFailed {
				t.Errorf("run %d: %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("run %d: %v", i, err)
			continue
		}
		b, err := os.ReadFile(filepath.Join(outs[i], "ok.txt"))
		if err != nil || !strings.Contains(string(b), fmt.Sprintf("step=s%d ", i)) {
			t.Errorf("run %d: ok.txt %q, %v", i, b, err)
		}
	}
	if c := strings.Count(logs.String(), `"message":"wrote ok.txt"`); c != 4 {
		t.Errorf("got %d plugin log lines, want 4", c)
	}
}

func TestLogLevelInherited(t *testing.T) {
	var logs syncBuffer
	m := newManager(t, zerolog.New(&logs).Level(zerolog.DebugLevel))
	var ev events
	if err := m.Run(context.Background(), executor.RunRequest{StepName: "lv", Op: "test/levels"}, ev.report); err != nil {
		t.Fatal(err)
	}
	if len(ev.all) != 3 || ev.all[0].Fields["req_level"] != "debug" || ev.all[0].Fields["env_level"] != "debug" {
		t.Errorf("at debug: got %+v", ev.all)
	}
	if !strings.Contains(logs.String(), `"level":"error","step":"lv","plugin":"testplug","message":"fatal line must not kill the host"`) {
		t.Errorf("fatal plugin line should be logged at error:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"component":"go-plugin"`) {
		t.Errorf("go-plugin's own messages should be logged at debug:\n%s", logs.String())
	}

	logs = syncBuffer{}
	m = newManager(t, zerolog.New(&logs).Level(zerolog.WarnLevel))
	ev = events{}
	if err := m.Run(context.Background(), executor.RunRequest{Op: "test/levels"}, ev.report); err != nil {
		t.Fatal(err)
	}
	// Below warn, the plugin does not even send the lines.
	if len(ev.all) != 1 || ev.all[0].Message != "fatal line must not kill the host" {
		t.Errorf("at warn: got %+v", ev.all)
	}
	if strings.Contains(logs.String(), "go-plugin") {
		t.Errorf("go-plugin messages should be silent above debug:\n%s", logs.String())
	}
}

func TestDiscovery(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	writeWrapper(t, dirA, "marin-plugin-nonsense", "nonsense")
	writeWrapper(t, dirA, "marin-plugin-baddie", "bad-describe")
	// A second copy of "other" in each directory: their ops conflict.
	writeWrapper(t, dirA, "marin-plugin-other", "sdk", "plugin", "serve", "other")
	writeWrapper(t, dirB, "other-again", "sdk", "plugin", "serve", "other")
	// A third-party testplug shadows the built-in one's ops.
	writeWrapper(t, dirB, "shadow", "sdk", "plugin", "serve", "testplug")
	if err := os.WriteFile(filepath.Join(dirB, "not-a-plugin"), []byte("#!/bin/sh\necho hello from a script\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirB, "README"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dirB, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv(PluginPathEnv, dirA+string(os.PathListSeparator)+string(os.PathListSeparator)+dirB)
	if got, want := DefaultPluginDirs(), []string{dirA, dirB, filepath.Join(home, ".marin", "plugins")}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("DefaultPluginDirs: got %v, want %v", got, want)
	}

	// Only the "testplug" built-in, so that "other" comes from the path.
	m, err := New(Config{Builtins: []*sdk.Plugin{testPlug()}, BuiltinCommand: testCommand(t)})
	if err != nil {
		t.Fatal(err)
	}
	list := m.List()
	var got []string
	for _, p := range list {
		s := fmt.Sprintf("%s %s %s v%d %s", filepath.Base(p.Path), p.Name, p.Kind, p.ProtocolVersion, p.Version)
		if p.Err != nil {
			s = filepath.Base(p.Path) + " ERR " + p.Err.Error()
		}
		got = append(got, s)
	}
	want := []string{
		"builtin testplug generic v1 0.9.0",
		"marin-plugin-baddie ERR describe: plugin \"baddie\" says it speaks protocol version 7 but negotiated 1",
		"marin-plugin-nonsense nonsense generic v1 0.0.1",
		"marin-plugin-other other dataset v1 2.0.0",
		"not-a-plugin ERR start",
		"other-again other dataset v1 2.0.0",
		"shadow testplug generic v1 0.9.0",
	}
	if len(got) != len(want) {
		t.Fatalf("List:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("List[%d]:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
	if err := list[4].Err; err == nil || !strings.Contains(err.Error(), "hello from a script") {
		t.Errorf("a non-plugin's error should quote its output: %v", err)
	}
	if len(list[0].Conflicts) != len(list[0].Ops) || len(list[2].Conflicts) != 0 || len(list[3].Conflicts) != 1 {
		t.Errorf("conflicts: builtin %v, nonsense %v, other %v", list[0].Conflicts, list[2].Conflicts, list[3].Conflicts)
	}

	_, err = m.Resolve("other/noop")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dirA, "marin-plugin-other")) || !strings.Contains(err.Error(), filepath.Join(dirB, "other-again")) {
		t.Errorf("conflict between third-party plugins: %v", err)
	}
	_, err = m.Resolve("test/ok")
	if err == nil || !strings.Contains(err.Error(), `built-in plugin "testplug"`) || !strings.Contains(err.Error(), filepath.Join(dirB, "shadow")) ||
		!strings.Contains(err.Error(), "may not shadow a built-in op") {
		t.Errorf("third-party shadowing a built-in: %v", err)
	}
	if err := m.Run(context.Background(), executor.RunRequest{Op: "test/ok"}, nil); err == nil || !strings.Contains(err.Error(), "more than one plugin") {
		t.Errorf("Run of a conflicting op: %v", err)
	}
	_, err = m.Resolve("tokenize")
	wantPrefix := `no plugin serves op "tokenize" (known ops: nonsense/bad-outcome, nonsense/empty-event, nonsense/grpc-error, nonsense/no-result, other/noop, test/crash,`
	if err == nil || !strings.HasPrefix(err.Error(), wantPrefix) || !strings.Contains(err.Error(), "plugin path: "+dirA) ||
		!strings.HasSuffix(err.Error(), "2 plugin(s) could not be described, see `marin plugins`") {
		t.Errorf("unknown op:\n got %v\nwant prefix %s", err, wantPrefix)
	}
	ref, err := m.Resolve("nonsense/no-result")
	if err != nil || ref.Path != filepath.Join(dirA, "marin-plugin-nonsense") || ref.Name != "nonsense" {
		t.Errorf("third-party resolve: %+v, %v", ref, err)
	}
}

func TestNewRejectsBadBuiltins(t *testing.T) {
	if _, err := New(Config{Builtins: []*sdk.Plugin{testPlug(), testPlug()}}); err == nil || !strings.Contains(err.Error(), `two built-in plugins are named "testplug"`) {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := New(Config{Builtins: []*sdk.Plugin{{Name: "x", Kind: sdk.KindDataset}}}); err == nil || !strings.Contains(err.Error(), "serves no ops") {
		t.Errorf("invalid: %v", err)
	}
}

func TestStartFailure(t *testing.T) {
	m, err := New(Config{Builtins: testPlugins(), PluginDirs: []string{}, BuiltinCommand: func(name string) (*exec.Cmd, error) {
		return nil, fmt.Errorf("no binary for %s", name)
	}})
	if err != nil {
		t.Fatal(err)
	}
	re := runErr(t, m.Run(context.Background(), executor.RunRequest{Op: "other/noop"}, nil))
	if re.Kind != StartFailed || re.Summary != "no binary for other" {
		t.Errorf("got %+v", re)
	}
}

func TestTailBufferKeepsPanic(t *testing.T) {
	var b tailBuffer
	w := b.writer()
	fmt.Fprintln(w, "starting")
	fmt.Fprint(w, "panic: boom")
	fmt.Fprint(w, "\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(w, "\tframe %d\n", i)
	}
	fmt.Fprintln(w, `{"@level":"debug","@message":"go-plugin noise"}`)
	got := b.excerpt()
	if !strings.HasPrefix(got, "panic: boom\n\tframe 0") || strings.Count(got, "\n") != panicLines-1 || strings.Contains(got, "noise") {
		t.Errorf("excerpt:\n%s", got)
	}
	var plain tailBuffer
	for i := 0; i < 50; i++ {
		fmt.Fprintf(plain.writer(), "line %d\n", i)
	}
	if got := plain.excerpt(); !strings.HasPrefix(got, "line 30\n") || !strings.HasSuffix(got, "line 49") {
		t.Errorf("tail:\n%s", got)
	}
}

func TestPluginInfoJSON(t *testing.T) {
	b, err := json.Marshal([]PluginInfo{
		{Name: "a", Kind: "format", Version: "1", ProtocolVersion: 1, Ops: []OpInfo{{Name: "a/x", Description: "x"}}, Path: "builtin"},
		{Path: "/p/broken", Err: errors.New("start /p/broken: boom")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"a","kind":"format","version":"1","protocol_version":1,"ops":[{"name":"a/x","description":"x"}],"path":"builtin"},` +
		`{"name":"","kind":"","version":"","protocol_version":0,"ops":null,"path":"/p/broken","error":"start /p/broken: boom"}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}
