package sdk

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Serve serves p to the marin host that started this process and returns
// when the host is done with it. Call it from main. A plugin that does not
// validate, or a process not started by marin, gets a message on stderr and
// exit status 1.
func Serve(p *Plugin) {
	if err := serve(p); err != nil {
		fmt.Fprintf(os.Stderr, "marin plugin: %v\n", err)
		os.Exit(1)
	}
}

// ServeNamed serves the plugin called name out of plugins. It is how one
// binary carries many plugins: `marin plugin serve NAME` calls it with the
// built-in plugins, the way Packer's plugin sets serve many components from
// one executable. It returns an error, without serving, when no plugin has
// that name or the plugin is invalid.
func ServeNamed(name string, plugins ...*Plugin) error {
	var names []string
	for _, p := range plugins {
		if p != nil && p.Name == name {
			return serve(p)
		}
		if p != nil {
			names = append(names, p.Name)
		}
	}
	sort.Strings(names)
	return fmt.Errorf("no plugin named %q (have: %s)", name, strings.Join(names, ", "))
}

func serve(p *Plugin) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("cannot serve: %w", err)
	}
	// go-plugin points os.Stderr at a pipe it streams to the host over gRPC.
	// Text written just before the process dies (os.Exit after a message, a
	// fatal log) can be lost in that pipe, and it is exactly what the host
	// needs to explain a crash. The real stderr is read by the host directly,
	// so on the first RPC, when go-plugin has finished its setup, we point
	// os.Stderr back at it.
	realStderr := os.Stderr
	var once sync.Once
	srv := &server{p: p, beforeCall: func() {
		once.Do(func() { os.Stderr = realStderr })
	}}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: ServerPluginSets(srv),
		GRPCServer:       grpcServer,
		// JSON lines on stderr are parsed by the host's go-plugin client and
		// logged at their level rather than mixed into crash output.
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       p.Name,
			Level:      hclog.LevelFromString(requestLevel("")),
			Output:     realStderr,
			JSONFormat: true,
		}),
	})
	return nil
}
