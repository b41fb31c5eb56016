package pluginhost

import (
	"context"
	"fmt"
	"os"

	pluginpb "github.com/marin-go/marin/plugins/proto"
	"github.com/marin-go/marin/plugins/sdk"
)

// Format plugins render chat for the op that tokenizes, which runs in a
// plugin process of its own: the host does not sit between them, since every
// conversation of a dataset would then pass through it. Instead every
// RunRequest carries the format plugins the host knows with the command
// that starts each (FormatEndpoints), and the op starts the one its config
// names (sdk.StartFormat) and renders through it directly.

// FormatEndpoints lists the format plugins found (built-in and third-party)
// with the command that serves each.
func (m *Manager) FormatEndpoints() []sdk.PluginEndpoint {
	var out []sdk.PluginEndpoint
	for _, p := range m.ops().plugins {
		if p.info.Err != nil || p.info.Kind != string(sdk.KindFormat) {
			continue
		}
		cmd, err := p.command()
		if err != nil {
			m.log.Warn().Str("plugin", p.info.Name).Err(err).Msg("format plugin cannot be started")
			continue
		}
		ep := sdk.PluginEndpoint{Name: p.info.Name, Kind: sdk.KindFormat, Version: p.info.Version, Argv: append([]string{cmd.Path}, cmd.Args[1:]...)}
		if cmd.Env != nil {
			// Only what the command adds to this process's environment.
			have := map[string]bool{}
			for _, kv := range os.Environ() {
				have[kv] = true
			}
			for _, kv := range cmd.Env {
				if !have[kv] {
					ep.Env = append(ep.Env, kv)
				}
			}
		}
		out = append(out, ep)
	}
	return out
}

func (m *Manager) formatEndpoints() []*pluginpb.PluginEndpoint {
	var out []*pluginpb.PluginEndpoint
	for _, ep := range m.FormatEndpoints() {
		out = append(out, sdk.EndpointToProto(ep))
	}
	return out
}

// RenderChat renders conversations with the format plugin called name, in a
// process started for this call: for previews and tests on the host side
// (tokenize steps render through the plugin themselves). optionsJSON is a
// ChatFormat object.
func (m *Manager) RenderChat(ctx context.Context, name string, optionsJSON []byte, convs []sdk.Conversation) ([]sdk.Rendered, error) {
	req := &sdk.Request{Plugins: m.FormatEndpoints()}
	ep, err := req.Plugin(name)
	if err != nil {
		return nil, err
	}
	fc, err := sdk.StartFormat(ctx, ep)
	if err != nil {
		return nil, err
	}
	defer fc.Close()
	out, err := fc.Render(ctx, optionsJSON, convs)
	if err != nil {
		return nil, fmt.Errorf("render with format plugin %q: %w", name, err)
	}
	return out, nil
}
