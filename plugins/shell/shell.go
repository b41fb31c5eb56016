// Package shell is the built-in "shell" plugin: its op shell/run runs a
// command as a step, the Go counterpart of a Python Marin step whose fn is an
// arbitrary function (an eval script, a conversion tool). The command writes
// its results under $MARIN_OUTPUT_PATH, a local directory; its output is
// kept in command.log there and streamed to the host's log. When the step's
// output is in a bucket (gs://, s3://, …), $MARIN_OUTPUT_PATH is a scratch
// directory that is uploaded to the output URL ($MARIN_OUTPUT_URL) once the
// command succeeds. Env values that are file:// URLs (such as
// output_path_of(step)) reach the command as local paths; bucket URLs stay
// URLs.
package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// Version is the plugin's version; it is recorded in .executor_info.
const Version = "1.0.0"

// ProgressMarker starts an output line that reports progress:
// "MARIN_PROGRESS <done> <total> <unit> [message]".
const ProgressMarker = "MARIN_PROGRESS"

// Plugin returns the built-in shell plugin.
func Plugin() *sdk.Plugin {
	return &sdk.Plugin{
		Name: "shell", Kind: sdk.KindGeneric, Version: Version,
		Ops: map[string]sdk.Op{
			"shell/run": {
				Description: "run a command; it writes its results under $MARIN_OUTPUT_PATH",
				Schema:      schema.MustFromStruct(config{}),
				Run:         run,
			},
		},
	}
}

// config is shell/run's config.
type config struct {
	Command any               `json:"command" schema:"required" doc:"a string for /bin/sh -c, or a list of argv strings"`
	Env     map[string]string `json:"env" doc:"variables added to the command's environment"`
	Workdir string            `json:"workdir" doc:"the command's working directory"`
}

func run(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	var cfg config
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	argv, err := argvOf(cfg.Command)
	if err != nil {
		return &sdk.Diagnostic{Summary: err.Error(), Attribute: "command"}
	}
	stage, err := storage.NewStage(req.OutputPath)
	if err != nil {
		return fmt.Errorf("shell/run output %s: %w", req.OutputPath, err)
	}
	defer stage.Close()
	out := stage.Dir
	logFile, err := os.Create(filepath.Join(out, "command.log"))
	if err != nil {
		return fmt.Errorf("create command.log: %w", err)
	}
	defer logFile.Close()
	runErr := command(ctx, cfg, argv, req, out, logFile, r)
	if err := logFile.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("write command.log: %w", err)
	}
	if stage.Remote() {
		// What the command wrote becomes the output when it succeeded;
		// after a failure only its log is kept, to read why.
		if runErr != nil {
			if err := stage.Publish(ctx, "command.log"); err != nil {
				r.Log("warn", "could not publish command.log", "error", err.Error())
			}
			return runErr
		}
		r.Log("info", "publishing the command's output", "url", stage.URL)
		if err := stage.Publish(ctx, "."); err != nil {
			return fmt.Errorf("publish %s: %w", stage.URL, err)
		}
	}
	return runErr
}

// command runs argv with out as its local output directory.
func command(ctx context.Context, cfg config, argv []string, req *sdk.Request, out string, logFile *os.File, r sdk.Reporter) error {

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cfg.Workdir
	cmd.Env = append(os.Environ(),
		"MARIN_OUTPUT_PATH="+out,
		"MARIN_OUTPUT_URL="+req.OutputPath,
		"MARIN_PREFIX="+req.Prefix,
		"MARIN_STEP="+req.StepName,
		"MARIN_ATTEMPT="+strconv.Itoa(req.Attempt),
	)
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := cfg.Env[k]
		if strings.HasPrefix(v, "file://") {
			// Paths of other steps' outputs arrive as URLs; commands want
			// paths. Bucket URLs stay URLs (for gsutil, aws s3, …).
			if p, err := sdk.LocalPath(v); err == nil {
				v = p
			}
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = procAttr()
	// The command's output goes through a pipe we own (an *os.File, so
	// Wait returns when the command exits rather than when every process
	// holding the pipe has closed it): a command that leaves a background
	// process behind must not hang its step.
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start %q: %w", argv[0], err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("start %q: %w", argv[0], err)
	}
	pw.Close() // the command and its children hold the write end now
	pgid := cmd.Process.Pid
	tail := &tailLines{max: 20}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if reportProgress(line, r) {
				continue
			}
			tail.add(line)
			r.Log("info", line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waitErr:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		werr = <-waitErr
	}
	// The command is done: whatever it left running in its process group
	// goes with it (and closes the pipe, ending the reader).
	if syscall.Kill(-pgid, 0) == nil {
		if ctx.Err() == nil {
			r.Log("warn", "the command left processes running in its process group; killing them")
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	wg.Wait()
	pr.Close()
	if ctx.Err() != nil {
		return fmt.Errorf("command %q cancelled: %w", argv[0], ctx.Err())
	}
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			return &sdk.Diagnostic{
				Summary: fmt.Sprintf("command %q %s", strings.Join(argv, " "), exitDescription(ee.ProcessState)),
				Detail:  "last output:\n" + tail.String(),
			}
		}
		return fmt.Errorf("run %q: %w", argv[0], werr)
	}
	return nil
}

// exitDescription says how a command ended: "exited with status 3", or
// "was killed by signal SIGKILL (killed)" rather than Go's "status -1".
func exitDescription(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := ws.Signal()
		name := unix.SignalName(sig)
		if name == "" {
			name = fmt.Sprintf("signal %d", int(sig))
		}
		d := fmt.Sprintf("was killed by signal %s (%s)", name, sig)
		if ws.CoreDump() {
			d += ", core dumped"
		}
		return d
	}
	return fmt.Sprintf("exited with status %d", ps.ExitCode())
}

func argvOf(c any) ([]string, error) {
	switch v := c.(type) {
	case string:
		if strings.TrimSpace(v) == "" {
			return nil, errors.New("command is empty")
		}
		return []string{"/bin/sh", "-c", v}, nil
	case []any:
		if len(v) == 0 {
			return nil, errors.New("command is an empty list")
		}
		argv := make([]string, len(v))
		for i, a := range v {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("command[%d] must be a string, got %T", i, a)
			}
			argv[i] = s
		}
		return argv, nil
	case nil:
		return nil, errors.New(`config needs "command": a shell string or a list of arguments`)
	}
	return nil, fmt.Errorf("command must be a string or a list of strings, got %T", c)
}

// reportProgress handles a MARIN_PROGRESS line.
func reportProgress(line string, r sdk.Reporter) bool {
	if !strings.HasPrefix(line, ProgressMarker+" ") {
		return false
	}
	f := strings.Fields(line)
	if len(f) < 4 {
		return false
	}
	done, err1 := strconv.ParseFloat(f[1], 64)
	total, err2 := strconv.ParseFloat(f[2], 64)
	if err1 != nil || err2 != nil {
		return false
	}
	r.Progress(done, total, f[3], strings.Join(f[4:], " "))
	return true
}

type tailLines struct {
	max   int
	lines []string
}

func (t *tailLines) add(s string) {
	t.lines = append(t.lines, s)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *tailLines) String() string { return strings.Join(t.lines, "\n") }
