package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	pluginpb "github.com/marin-go/marin/plugins/proto"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
)

// describeParallelism bounds how many third-party plugins start at once to be
// described; each is a process start, and machines may have few cores.
const describeParallelism = 4

// discover builds the op table: built-ins from their sdk.Plugin values,
// third-party plugins by starting each executable on the plugin path.
func (m *Manager) discover(ctx context.Context) *opTable {
	var plugins []*plugin
	for _, bp := range m.cfg.Builtins {
		name := bp.Name
		info := PluginInfo{
			Name: bp.Name, Kind: string(bp.Kind), Version: bp.Version,
			ProtocolVersion: sdk.ProtocolVersion, Path: BuiltinPath,
		}
		for _, op := range bp.OpNames() {
			o := bp.Ops[op]
			info.Ops = append(info.Ops, OpInfo{Name: op, Description: o.Description, Schema: o.Schema, Plans: o.Plan != nil})
		}
		plugins = append(plugins, &plugin{info: info, builtin: bp, command: func() (*exec.Cmd, error) {
			return m.cfg.BuiltinCommand(name)
		}})
	}

	paths, dirErrs := findExecutables(m.cfg.PluginDirs)
	plugins = append(plugins, dirErrs...)
	third := make([]*plugin, len(paths))
	sem := make(chan struct{}, describeParallelism)
	var wg sync.WaitGroup
	for i, path := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			third[i] = m.describe(ctx, path)
		}()
	}
	wg.Wait()
	plugins = append(plugins, third...)

	t := &opTable{plugins: plugins, ops: map[string]*plugin{}, conflicts: map[string][]*plugin{}}
	for _, p := range plugins {
		if p.info.Err != nil {
			t.broken++
			m.log.Warn().Str("plugin", p.info.Path).Err(p.info.Err).Msg("plugin could not be described")
			continue
		}
		for _, op := range p.info.Ops {
			if prev, ok := t.ops[op.Name]; ok {
				t.conflicts[op.Name] = []*plugin{prev}
				delete(t.ops, op.Name)
			}
			if claimants, ok := t.conflicts[op.Name]; ok {
				t.conflicts[op.Name] = append(claimants, p)
				continue
			}
			t.ops[op.Name] = p
		}
	}
	return t
}

// findExecutables lists the executable files in dirs, in directory order and
// by name within a directory. A directory that does not exist is skipped
// silently (~/.marin/plugins usually does not); one that cannot be read is
// reported as a broken plugin entry so `marin plugins` shows it.
func findExecutables(dirs []string) (paths []string, broken []*plugin) {
	seen := map[string]bool{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			broken = append(broken, &plugin{info: PluginInfo{Path: dir, Err: fmt.Errorf("read plugin directory: %w", err)}})
			continue
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, name := range names {
			if strings.HasPrefix(name, ".") {
				continue
			}
			path := filepath.Join(dir, name)
			abs, err := filepath.Abs(path)
			if err == nil {
				path = abs
			}
			if seen[path] {
				continue // the same directory listed twice
			}
			fi, err := os.Stat(path) // follows symlinks: a linked plugin counts
			if err != nil || !fi.Mode().IsRegular() || !isExecutable(fi) {
				continue
			}
			seen[path] = true
			paths = append(paths, path)
		}
	}
	return paths, broken
}

func isExecutable(fi fs.FileInfo) bool {
	if runtime.GOOS == "windows" {
		return strings.EqualFold(filepath.Ext(fi.Name()), ".exe")
	}
	return fi.Mode().Perm()&0o111 != 0
}

// describe starts the plugin at path, asks what it serves and stops it.
func (m *Manager) describe(ctx context.Context, path string) *plugin {
	p := &plugin{info: PluginInfo{Path: path}, command: func() (*exec.Cmd, error) {
		return exec.Command(path), nil
	}}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.StartTimeout)
	defer cancel()
	log := m.log.With().Str("plugin", path).Logger()
	proc, err := m.start(p.command, log)
	if err != nil {
		p.info.Err = err
		return p
	}
	defer proc.stop()
	resp, err := proc.client.Describe(ctx)
	if err != nil {
		p.info.Err = proc.explain(fmt.Errorf("describe: %w", err))
		return p
	}
	info, err := checkDescription(resp, proc.client.NegotiatedVersion())
	if err != nil {
		p.info.Err = fmt.Errorf("describe: %w", err)
		return p
	}
	info.Path = path
	p.info = info
	return p
}

// checkDescription validates a plugin's answer to Describe.
func checkDescription(resp *pluginpb.DescribeResponse, negotiated int) (PluginInfo, error) {
	info := PluginInfo{
		Name:            resp.GetName(),
		Kind:            string(sdk.KindFromProto(resp.GetKind())),
		Version:         resp.GetVersion(),
		ProtocolVersion: int(resp.GetProtocolVersion()),
	}
	if info.Name == "" {
		return PluginInfo{}, errors.New("plugin gave no name")
	}
	if info.Kind == "" {
		return PluginInfo{}, fmt.Errorf("plugin %q gave unknown kind %v", info.Name, resp.GetKind())
	}
	if info.ProtocolVersion != negotiated {
		return PluginInfo{}, fmt.Errorf("plugin %q says it speaks protocol version %d but negotiated %d", info.Name, info.ProtocolVersion, negotiated)
	}
	// A format plugin may serve no ops: it renders chat (RenderChat) for the
	// ops that tokenize.
	if len(resp.GetOps()) == 0 && info.Kind != string(sdk.KindFormat) {
		return PluginInfo{}, fmt.Errorf("plugin %q serves no ops", info.Name)
	}
	seen := map[string]bool{}
	for _, op := range resp.GetOps() {
		if op.GetName() == "" || seen[op.GetName()] {
			return PluginInfo{}, fmt.Errorf("plugin %q lists an empty or repeated op name %q", info.Name, op.GetName())
		}
		seen[op.GetName()] = true
		sch, err := schema.Unmarshal(op.GetConfigSchema())
		if err != nil {
			return PluginInfo{}, fmt.Errorf("plugin %q op %q: %w", info.Name, op.GetName(), err)
		}
		info.Ops = append(info.Ops, OpInfo{Name: op.GetName(), Description: op.GetDescription(), Schema: sch, Plans: op.GetPlans()})
	}
	return info, nil
}
