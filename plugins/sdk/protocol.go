package sdk

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginpb "github.com/marin-go/marin/plugins/proto"
)

// ProtocolVersion is the newest plugin protocol version this SDK speaks. A
// breaking protocol change adds version 2 next to 1 in ServerPluginSets and
// ClientPluginSets; go-plugin picks the highest version both sides know.
const ProtocolVersion = 1

// PluginSetKey is the name the marin service is dispensed under in the
// go-plugin plugin map.
const PluginSetKey = "marin"

// Handshake is the go-plugin handshake shared by host and plugins. The cookie
// only tells a plugin it was started by marin (rather than run by hand); it
// is not a security measure and never changes. Protocol versions are
// negotiated through the plugin sets, not this struct.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "MARIN_PLUGIN_COOKIE",
	MagicCookieValue: "7d1c4f0e-marin-plugin-b36a2e95",
}

// LogLevelEnv is the environment variable through which the host passes its
// log level to plugins; the request carries it too.
const LogLevelEnv = "MARIN_LOG_LEVEL"

// GRPCPlugin is the go-plugin glue for the marin service: on the plugin side
// it registers Impl, on the host side it hands out a pluginpb.PluginClient.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl implements the protocol; only the plugin side sets it.
	// NewServer builds one from a Plugin.
	Impl pluginpb.PluginServer
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the marin service on the plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("marin plugin: GRPCPlugin.Impl is nil")
	}
	pluginpb.RegisterPluginServer(s, p.Impl)
	return nil
}

// GRPCClient returns a pluginpb.PluginClient on the host side.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginpb.NewPluginClient(c), nil
}

// ServerPluginSets is the go-plugin VersionedPlugins map a plugin serves.
func ServerPluginSets(srv pluginpb.PluginServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginSetKey: &GRPCPlugin{Impl: srv}},
	}
}

// ClientPluginSets is the go-plugin VersionedPlugins map the host offers.
// Dispensing PluginSetKey yields a pluginpb.PluginClient.
func ClientPluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginSetKey: &GRPCPlugin{}},
	}
}
