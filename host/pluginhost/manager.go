// Package pluginhost is the host side of marin's plugin system: it finds
// plugins, says which one serves an op, and runs steps through them over
// gRPC (hashicorp/go-plugin), implementing executor.Runner.
//
// Two sorts of plugins are known. Built-in plugins are compiled into the
// marin binary; the Manager is given their sdk.Plugin values (so describing
// them costs nothing) and starts them as `marin plugin serve NAME` child
// processes. Third-party plugins are the executable files in the directories
// of $MARIN_PLUGIN_PATH and ~/.marin/plugins; the Manager starts each once to
// ask what it serves, on first use, and remembers the answer.
//
// Every step runs in a fresh plugin process, so a plugin that crashes, hangs
// or answers nonsense fails only that step: Run turns each of those into an
// error (a *RunError) carrying the plugin's own words, never a host crash.
package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/validate"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
)

// PluginPathEnv names the environment variable listing third-party plugin
// directories, separated by os.PathListSeparator.
const PluginPathEnv = "MARIN_PLUGIN_PATH"

// BuiltinPath is the PluginRef.Path and PluginInfo.Path of built-in plugins.
const BuiltinPath = "builtin"

// Config configures a Manager. The zero value is usable: no built-ins, the
// default plugin path, no logging.
type Config struct {
	// Builtins are the plugins compiled into this binary.
	Builtins []*sdk.Plugin
	// BuiltinCommand returns the command that serves the named built-in
	// plugin. Default: this executable with arguments `plugin serve NAME`.
	// Tests point it at a test binary.
	BuiltinCommand func(name string) (*exec.Cmd, error)
	// PluginDirs are the directories searched for third-party plugins, in
	// order. nil means DefaultPluginDirs(); an empty non-nil slice searches
	// nowhere.
	PluginDirs []string
	// Logger receives plugin log events (with fields step and plugin) and, at
	// debug level, go-plugin's own messages.
	Logger zerolog.Logger
	// StartTimeout bounds starting a plugin and describing it. Default 30s.
	StartTimeout time.Duration
}

// OpInfo is one op a plugin serves.
type OpInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Schema is the op's declared config schema (nil: none).
	Schema *schema.Field `json:"schema,omitempty"`
	// Plans says the op answers Plan.
	Plans bool `json:"plans,omitempty"`
}

// PluginInfo is what `marin plugins` shows about one plugin.
type PluginInfo struct {
	Name            string   `json:"name"`
	Kind            string   `json:"kind"`
	Version         string   `json:"version"`
	ProtocolVersion int      `json:"protocol_version"`
	Ops             []OpInfo `json:"ops"`
	// Path is the executable, or BuiltinPath.
	Path string `json:"path"`
	// Err says why the plugin could not be started or described; the other
	// fields except Path are empty then.
	Err error `json:"-"`
	// Conflicts lists the ops of this plugin that another plugin serves too;
	// Resolve refuses those ops.
	Conflicts []string `json:"conflicts,omitempty"`
}

// MarshalJSON adds Err as "error", for `marin plugins --json`.
func (p PluginInfo) MarshalJSON() ([]byte, error) {
	type fields PluginInfo // drops this method, avoiding recursion
	v := struct {
		fields
		Error string `json:"error,omitempty"`
	}{fields: fields(p)}
	if p.Err != nil {
		v.Error = p.Err.Error()
	}
	return json.Marshal(v)
}

// Manager finds plugins and runs steps through them. It is safe for
// concurrent use.
type Manager struct {
	cfg Config
	log zerolog.Logger

	once  sync.Once
	table *opTable
}

var (
	_ executor.Runner  = (*Manager)(nil)
	_ validate.Catalog = (*Manager)(nil)
)

// plugin is a known plugin and how to start it.
type plugin struct {
	info    PluginInfo
	command func() (*exec.Cmd, error)
	// builtin is the plugin's own value when it is compiled into this
	// binary: its Plan functions run in-process (they are quick and only
	// read), its steps still run in a child process.
	builtin *sdk.Plugin
}

func (p *plugin) op(name string) (OpInfo, bool) {
	for _, o := range p.info.Ops {
		if o.Name == name {
			return o, true
		}
	}
	return OpInfo{}, false
}

func (p *plugin) ref() executor.PluginRef {
	return executor.PluginRef{Name: p.info.Name, Kind: p.info.Kind, Version: p.info.Version, Path: p.info.Path}
}

// where names a plugin in messages: its path, or "built-in plugin NAME".
func (p *plugin) where() string {
	if p.info.Path == BuiltinPath {
		return fmt.Sprintf("built-in plugin %q", p.info.Name)
	}
	return fmt.Sprintf("plugin %q (%s)", p.info.Name, p.info.Path)
}

// opTable is the result of discovery.
type opTable struct {
	plugins   []*plugin            // built-ins, then third-party by directory order
	ops       map[string]*plugin   // op → the one plugin serving it
	conflicts map[string][]*plugin // op → all plugins claiming it, when more than one
	broken    int                  // plugins that failed to describe
}

// New returns a Manager. It checks the built-in plugins but starts nothing:
// third-party plugins are discovered on the first Resolve, Run or List.
func New(cfg Config) (*Manager, error) {
	seen := map[string]bool{}
	for _, p := range cfg.Builtins {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("built-in plugin: %w", err)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("two built-in plugins are named %q", p.Name)
		}
		seen[p.Name] = true
	}
	if cfg.BuiltinCommand == nil {
		cfg.BuiltinCommand = selfServeCommand
	}
	if cfg.PluginDirs == nil {
		cfg.PluginDirs = DefaultPluginDirs()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	return &Manager{cfg: cfg, log: cfg.Logger}, nil
}

// selfServeCommand starts this executable as `plugin serve NAME`.
func selfServeCommand(name string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the marin executable to serve built-in plugin %q: %w", name, err)
	}
	return exec.Command(exe, "plugin", "serve", name), nil
}

// DefaultPluginDirs returns the directories of $MARIN_PLUGIN_PATH followed by
// ~/.marin/plugins.
func DefaultPluginDirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv(PluginPathEnv)) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".marin", "plugins"))
	}
	return dirs
}

// ops returns the op table, discovering third-party plugins the first time.
func (m *Manager) ops() *opTable {
	m.once.Do(func() { m.table = m.discover(context.Background()) })
	return m.table
}

// Resolve says which plugin serves op.
func (m *Manager) Resolve(op string) (executor.PluginRef, error) {
	p, err := m.resolve(op)
	if err != nil {
		return executor.PluginRef{}, err
	}
	return p.ref(), nil
}

func (m *Manager) resolve(op string) (*plugin, error) {
	t := m.ops()
	if claimants := t.conflicts[op]; len(claimants) > 0 {
		return nil, conflictError(op, claimants)
	}
	if p, ok := t.ops[op]; ok {
		return p, nil
	}
	known := make([]string, 0, len(t.ops)+len(t.conflicts))
	for name := range t.ops {
		known = append(known, name)
	}
	for name := range t.conflicts {
		known = append(known, name)
	}
	sort.Strings(known)
	knownText := strings.Join(known, ", ")
	if knownText == "" {
		knownText = "none"
	}
	msg := fmt.Sprintf("no plugin serves op %q (known ops: %s; plugin path: %s)",
		op, knownText, strings.Join(m.cfg.PluginDirs, string(os.PathListSeparator)))
	if t.broken > 0 {
		msg += fmt.Sprintf("; %d plugin(s) could not be described, see `marin plugins`", t.broken)
	}
	return nil, errors.New(msg)
}

func conflictError(op string, claimants []*plugin) error {
	names := make([]string, len(claimants))
	builtin := false
	for i, p := range claimants {
		names[i] = p.where()
		builtin = builtin || p.info.Path == BuiltinPath
	}
	msg := fmt.Sprintf("op %q is served by more than one plugin: %s", op, strings.Join(names, " and "))
	if builtin {
		msg += "; a third-party plugin may not shadow a built-in op: remove it from the plugin path or rename its op"
	} else {
		msg += "; remove all but one from the plugin path"
	}
	return errors.New(msg)
}

// Spec says which plugin serves op and what it declared about it.
func (m *Manager) Spec(op string) (validate.OpSpec, error) {
	p, err := m.resolve(op)
	if err != nil {
		return validate.OpSpec{}, err
	}
	info, _ := p.op(op)
	return validate.OpSpec{Plugin: p.ref(), Schema: info.Schema, Plans: info.Plans}, nil
}

// Backends names the plugins of kind backend, sorted.
func (m *Manager) Backends() []string {
	var out []string
	for _, p := range m.ops().plugins {
		if p.info.Err == nil && p.info.Kind == string(sdk.KindBackend) {
			out = append(out, p.info.Name)
		}
	}
	sort.Strings(out)
	return out
}

// List returns every plugin found, built-ins first, including the ones that
// could not be described (Err set) and the ops in conflict.
func (m *Manager) List() []PluginInfo {
	t := m.ops()
	out := make([]PluginInfo, 0, len(t.plugins))
	for _, p := range t.plugins {
		info := p.info
		info.Ops = append([]OpInfo(nil), p.info.Ops...)
		for _, op := range info.Ops {
			if claimants := t.conflicts[op.Name]; len(claimants) > 0 {
				info.Conflicts = append(info.Conflicts, conflictError(op.Name, claimants).Error())
			}
		}
		out = append(out, info)
	}
	return out
}
