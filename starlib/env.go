// Package starlib evaluates experiment scripts: the Starlark builtins that
// mirror Python Marin's SFT API (get_instruction_dataset, default_tokenize,
// lm_mixture_data_config, SimpleSFTConfig, default_sft, executor_main, …),
// their config types, and load() resolution for scripts relative to each
// other and for `@marin//…` standard modules.
//
// Builtins live in small files by concern (executor.go, data.go, sft.go),
// each contributing to one predeclared environment. Per-run state lives in
// the Starlark thread, never in package globals, so scripts can be evaluated
// concurrently.
package starlib

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/marin-go/marin/host/graph"
)

//go:embed std/*.star
var stdFS embed.FS

// StdPrefix introduces a standard module in load(): load("@marin//sft.star", …).
const StdPrefix = "@marin//"

// Result is what evaluating an experiment script produced.
type Result struct {
	// Script is the path of the evaluated script.
	Script string
	// Roots are the steps passed to executor_main, in order.
	Roots []*graph.Step
	// Description is executor_main's description, if any.
	Description string
	// Globals are the main script's top-level bindings.
	Globals starlark.StringDict
}

// Error is a script failure with its Starlark backtrace.
type Error struct {
	Msg       string // the message with the innermost script position
	Backtrace string // full backtrace as Starlark prints it
	err       error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.err }

// threadState is the per-run state kept in the thread.
type threadState struct {
	roots       []*graph.Step
	description string
	mainCalled  bool
	mainPos     syntax.Position
}

const stateKey = "marin.state"

func state(thread *starlark.Thread) *threadState {
	return thread.Local(stateKey).(*threadState)
}

var fileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true, // `if __name__ == "__main__":` as in the tutorial
	GlobalReassign:  true,
	Recursion:       false,
}

type loadEntry struct {
	globals starlark.StringDict
	err     error
}

// ExecFile evaluates the script at path and returns the steps it hands to
// executor_main. src may be nil to read the file.
func ExecFile(filename string, src []byte) (*Result, error) {
	return ExecFileContext(context.Background(), filename, src, Limits{})
}

// ExecFileContext is ExecFile under ctx and lim: cancelling ctx stops the
// evaluation (the error then matches ctx's error, e.g. context.Canceled),
// and a script that exceeds a limit stops with a *LimitError.
func ExecFileContext(ctx context.Context, filename string, src []byte, lim Limits) (*Result, error) {
	if src == nil {
		b, err := readScript(filename)
		if err != nil {
			return nil, err
		}
		src = b
	}
	st := &threadState{}
	files := newSourceFiles()
	files.add(filename, src)
	cache := map[string]*loadEntry{}
	var loading []string

	var load func(thread *starlark.Thread, module string) (starlark.StringDict, error)
	thread := &starlark.Thread{
		Name:  filename,
		Print: func(_ *starlark.Thread, msg string) { fmt.Fprintln(os.Stderr, msg) },
	}
	thread.SetLocal(stateKey, st)
	thread.SetLocal(sourcesKey, files)
	g := newGuard(ctx, lim)
	defer g.close()
	g.add(thread)
	load = func(t *starlark.Thread, module string) (starlark.StringDict, error) {
		from := t.CallFrame(0).Pos.Filename()
		key, data, err := resolveLoad(from, module)
		if err != nil {
			return nil, err
		}
		if e, ok := cache[key]; ok {
			if e == nil {
				return nil, fmt.Errorf("load cycle: %s -> %s", strings.Join(loading, " -> "), key)
			}
			return e.globals, e.err
		}
		cache[key] = nil
		loading = append(loading, key)
		defer func() { loading = loading[:len(loading)-1] }()
		child := &starlark.Thread{Name: key, Print: t.Print, Load: t.Load}
		child.SetLocal(stateKey, &threadState{mainCalled: true}) // executor_main only in the main script
		child.SetLocal(sourcesKey, files)
		files.add(key, data)
		pre := predeclared(modName(key))
		g.add(child)
		globals, err := starlark.ExecFileOptions(fileOptions, child, key, data, pre)
		g.remove(child)
		cache[key] = &loadEntry{globals, err}
		return globals, err
	}
	thread.Load = load

	globals, err := starlark.ExecFileOptions(fileOptions, thread, filename, src, predeclared("__main__"))
	if reason := g.stopped(); reason != nil {
		return nil, stoppedError(filename, err, reason)
	}
	if err != nil {
		return nil, scriptError(err)
	}
	if !st.mainCalled {
		return nil, fmt.Errorf("%s: the script never calls executor_main(...), so it defines no steps to run", filename)
	}
	return &Result{Script: filename, Roots: st.roots, Description: st.description, Globals: globals}, nil
}

func readScript(filename string) ([]byte, error) {
	if strings.HasPrefix(filename, StdPrefix) {
		_, data, err := resolveLoad("", filename)
		return data, err
	}
	b, err := os.ReadFile(filename)
	if err != nil {
		return nil, fmt.Errorf("read script: %w", err)
	}
	return b, nil
}

func modName(key string) string {
	base := path.Base(key)
	return strings.TrimSuffix(base, ".star")
}

// resolveLoad maps a load() argument to a cache key and its source.
func resolveLoad(from, module string) (string, []byte, error) {
	if strings.HasPrefix(module, StdPrefix) {
		name := strings.TrimPrefix(module, StdPrefix)
		data, err := stdFS.ReadFile("std/" + name)
		if err != nil {
			return "", nil, fmt.Errorf("no standard module %q (have: %s)", module, strings.Join(StdModules(), ", "))
		}
		return module, data, nil
	}
	if strings.HasPrefix(module, "@") {
		return "", nil, fmt.Errorf("unknown repository in load(%q): only %s… is known", module, StdPrefix)
	}
	p := module
	if !filepath.IsAbs(p) {
		if strings.HasPrefix(from, StdPrefix) {
			// Standard modules load siblings.
			return resolveLoad("", StdPrefix+path.Clean(path.Join(path.Dir(strings.TrimPrefix(from, StdPrefix)), module)))
		}
		p = filepath.Join(filepath.Dir(from), module)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil, fmt.Errorf("load(%q): no such file %s", module, p)
		}
		return "", nil, fmt.Errorf("load(%q): %w", module, err)
	}
	return filepath.Clean(p), data, nil
}

// StdModules lists the embedded standard modules as load() names.
func StdModules() []string {
	entries, _ := stdFS.ReadDir("std")
	var out []string
	for _, e := range entries {
		out = append(out, StdPrefix+e.Name())
	}
	return out
}

func scriptError(err error) error {
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		msg := ee.Msg
		if len(ee.CallStack) > 0 {
			// The innermost frame that is in a script (not a builtin).
			for i := len(ee.CallStack) - 1; i >= 0; i-- {
				fr := ee.CallStack[i]
				if fr.Pos.IsValid() && fr.Pos.Filename() != "<builtin>" {
					msg = fmt.Sprintf("%s: %s", fr.Pos, ee.Msg)
					break
				}
			}
		}
		return &Error{Msg: msg, Backtrace: ee.Backtrace(), err: err}
	}
	// Syntax and resolve errors already start with file:line:col.
	return &Error{Msg: err.Error(), Backtrace: err.Error(), err: err}
}

// predeclared is the environment every script and module sees.
func predeclared(name string) starlark.StringDict {
	env := starlark.StringDict{"__name__": starlark.String(name)}
	for _, add := range []func(starlark.StringDict){addExecutorBuiltins, addDataBuiltins, addSFTBuiltins, addEvalBuiltins} {
		add(env)
	}
	return env
}

// Builtins lists the predeclared names, for documentation and tests.
func Builtins() []string {
	var names []string
	for k := range predeclared("__main__") {
		names = append(names, k)
	}
	return names
}
