// Package shell is the built-in "shell" plugin: its op shell/run runs a
// command as a step, the Go counterpart of a Python Marin step whose fn is an
// arbitrary function (an eval script, a conversion tool). The command writes
// its results under $MARIN_OUTPUT_PATH; its output is kept in command.log
// there and streamed to the host's log. Env values that are file:// URLs
// (such as output_path_of(step)) reach the command as local paths.
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

	"github.com/marin-go/marin/plugins/sdk"
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
				Run:         run,
			},
		},
	}
}

// config is shell/run's config.
type config struct {
	Command any               `json:"command"` // a string for /bin/sh -c, or a list of argv strings
	Env     map[string]string `json:"env"`
	Workdir string            `json:"workdir"`
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
	out, err := sdk.LocalPath(req.OutputPath)
	if err != nil {
		return fmt.Errorf("shell/run writes to local outputs only: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	logFile, err := os.Create(filepath.Join(out, "command.log"))
	if err != nil {
		return fmt.Errorf("create command.log: %w", err)
	}
	defer logFile.Close()

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
			// Paths of other steps' outputs arrive as URLs; commands want paths.
			if p, err := sdk.LocalPath(v); err == nil {
				v = p
			}
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = procAttr()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %q: %w", argv[0], err)
	}
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
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-waitErr
	}
	pw.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("command %q cancelled: %w", argv[0], ctx.Err())
	}
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			return &sdk.Diagnostic{
				Summary: fmt.Sprintf("command %q exited with status %d", strings.Join(argv, " "), ee.ExitCode()),
				Detail:  "last output:\n" + tail.String(),
			}
		}
		return fmt.Errorf("run %q: %w", argv[0], werr)
	}
	return nil
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
