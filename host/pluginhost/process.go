package pluginhost

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"

	pluginpb "github.com/marin-go/marin/plugins/proto"
	"github.com/marin-go/marin/plugins/sdk"
)

// exitWait is how long the host waits, after a plugin connection breaks, for
// the process to be seen exiting, so a crash is told apart from a network
// problem and its stderr has been read in full.
const exitWait = 2 * time.Second

// process is one running plugin process.
type process struct {
	client *sdk.Client
	rpc    pluginpb.PluginClient
	cmd    *exec.Cmd
	stderr *tailBuffer
}

// start launches the command and connects to the marin service in it,
// through the SDK's launcher (sdk.Start).
func (m *Manager) start(command func() (*exec.Cmd, error), log zerolog.Logger) (*process, error) {
	cmd, err := command()
	if err != nil {
		return nil, err
	}
	// go-plugin adds the host environment only when told to, and then after
	// ours, where it would override the log level; we build it ourselves.
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, sdk.LogLevelEnv+"="+levelName(log))
	tail := &tailBuffer{}
	client, err := sdk.Start(cmd, sdk.ClientConfig{
		Logger:       newHCLogger(log),
		Stderr:       tail.writer(), // the process's real stderr: crash output
		SyncStderr:   tail.writer(), // os.Stderr writes forwarded over gRPC
		SyncStdout:   &lineWriter{emit: func(line string) { log.Debug().Str("stream", "stdout").Msg(line) }},
		StartTimeout: m.cfg.StartTimeout,
	})
	proc := &process{client: client, cmd: cmd, stderr: tail}
	if err != nil {
		return nil, proc.explain(err)
	}
	proc.rpc = client.RPC()
	return proc, nil
}

// stop ends the process (asking nicely first, killing after go-plugin's grace
// period) and waits until its output has been read. It is safe to call twice.
func (p *process) stop() {
	p.client.Kill()
}

// waitExit reports whether the process exits within d.
func (p *process) waitExit(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !p.client.Exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// exitStatus describes how the process ended, e.g. "exit status 3" or
// "signal: killed"; call it after stop.
func (p *process) exitStatus() string { return p.client.ExitStatus() }

// explain stops the process and adds what it said on stderr to err.
func (p *process) explain(err error) error {
	p.stop()
	return &processError{err: err, exit: p.exitStatus(), stderr: p.stderr.excerpt()}
}

// processError is a failure to start or talk to a plugin process, with the
// end of what the process wrote on stderr.
type processError struct {
	err    error
	exit   string // how the process ended
	stderr string
}

func (e *processError) Error() string {
	msg := fmt.Sprintf("%v\nplugin process ended: %s", e.err, e.exit)
	if e.stderr != "" {
		msg += "; its stderr:\n" + indent(e.stderr)
	}
	return msg
}

func (e *processError) Unwrap() error { return e.err }

// tailBuffer keeps the end of a plugin's stderr for error messages, and the
// start of a Go panic or fatal error, which the stack trace after it would
// otherwise push out. Writes come from several goroutines.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
	panic []string // "panic: …" and the lines after it
}

const (
	tailLines    = 20
	panicLines   = 12
	maxLineBytes = 2000
)

func (b *tailBuffer) writer() io.Writer {
	return &lineWriter{emit: b.add}
}

func (b *tailBuffer) add(line string) {
	// go-plugin's own JSON log lines from the plugin are logged by the
	// go-plugin client; they are not the plugin's words.
	if strings.HasPrefix(line, `{"@`) {
		return
	}
	if len(line) > maxLineBytes {
		line = line[:maxLineBytes] + "…"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.panic) == 0 && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		b.panic = append(b.panic, line)
	} else if len(b.panic) > 0 && len(b.panic) < panicLines {
		b.panic = append(b.panic, line)
	}
	b.lines = append(b.lines, line)
	if len(b.lines) > 2*tailLines {
		b.lines = append(b.lines[:0], b.lines[len(b.lines)-tailLines:]...)
	}
}

// excerpt returns the panic, if there was one, else the last lines.
func (b *tailBuffer) excerpt() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := b.panic
	if len(lines) == 0 {
		lines = b.lines
		if len(lines) > tailLines {
			lines = lines[len(lines)-tailLines:]
		}
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// lineWriter splits writes into lines; go-plugin writes stderr a line and
// its newline in separate calls.
type lineWriter struct {
	mu      sync.Mutex
	partial []byte
	emit    func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.partial[:i]), "\r")
		w.partial = w.partial[i+1:]
		w.emit(line)
	}
	if len(w.partial) > 64<<10 { // a very long line without newline: flush it
		w.emit(string(w.partial))
		w.partial = nil
	}
	return len(p), nil
}

// newHCLogger routes go-plugin's hclog messages to log at debug level, or
// nowhere when debug is off.
func newHCLogger(log zerolog.Logger) hclog.Logger {
	level := hclog.Off
	if enabled(log, zerolog.DebugLevel) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        "go-plugin",
		Level:       level,
		DisableTime: true,
		Output: &lineWriter{emit: func(line string) {
			log.Debug().Str("component", "go-plugin").Msg(line)
		}},
	})
}

func enabled(log zerolog.Logger, level zerolog.Level) bool {
	e := log.WithLevel(level)
	ok := e.Enabled()
	e.Discard()
	return ok
}

// levelName is the most verbose level log writes at, as the level name the
// plugin SDK understands, so plugins send only lines the host will keep.
func levelName(log zerolog.Logger) string {
	for _, l := range []zerolog.Level{zerolog.TraceLevel, zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel} {
		if enabled(log, l) {
			return l.String()
		}
	}
	return zerolog.ErrorLevel.String()
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
