package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginpb "github.com/marin-go/marin/plugins/proto"
)

// ClientConfig configures Start.
type ClientConfig struct {
	// Logger receives go-plugin's own messages (nil: discarded).
	Logger hclog.Logger
	// Stderr receives the process's real stderr: what it writes before it
	// dies (crash output). nil: discarded.
	Stderr io.Writer
	// SyncStderr and SyncStdout receive what the plugin writes to os.Stderr
	// and os.Stdout while it serves (forwarded over gRPC). nil: Stderr, and
	// discarded.
	SyncStderr, SyncStdout io.Writer
	// StartTimeout bounds the handshake (0: go-plugin's default, a minute).
	StartTimeout time.Duration
}

// Client is a running plugin process and a typed connection to it: the one
// go-plugin launcher of marin, used by the host for every op and plan and by
// ops that render through a format plugin. The process is killed by the
// kernel if the process that started it dies.
type Client struct {
	Cmd *exec.Cmd
	gp  *goplugin.Client
	rpc pluginpb.PluginClient
}

// Start launches cmd (its Env, when set, is the whole environment) and
// connects to the marin service in it. On error the process is stopped; the
// error does not include its stderr, which the caller's writers received.
func Start(cmd *exec.Cmd, cfg ClientConfig) (*Client, error) {
	killWithParent(cmd)
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	if cfg.SyncStderr == nil {
		cfg.SyncStderr = cfg.Stderr
	}
	if cfg.SyncStdout == nil {
		cfg.SyncStdout = io.Discard
	}
	gp := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: ClientPluginSets(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           cfg.Logger,
		Stderr:           cfg.Stderr,
		SyncStderr:       cfg.SyncStderr,
		SyncStdout:       cfg.SyncStdout,
		StartTimeout:     cfg.StartTimeout,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes))},
	})
	c := &Client{Cmd: cmd, gp: gp}
	proto, err := gp.Client()
	if err != nil {
		return c, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	raw, err := proto.Dispense(PluginSetKey)
	if err != nil {
		return c, fmt.Errorf("connect to %s: %w", cmd.Path, err)
	}
	rpc, ok := raw.(pluginpb.PluginClient)
	if !ok {
		return c, fmt.Errorf("connect to %s: dispensed %T, not a marin plugin client", cmd.Path, raw)
	}
	c.rpc = rpc
	return c, nil
}

// RPC is the generated protocol client, for streaming calls (Run).
func (c *Client) RPC() pluginpb.PluginClient { return c.rpc }

// NegotiatedVersion is the protocol version agreed at handshake.
func (c *Client) NegotiatedVersion() int { return c.gp.NegotiatedVersion() }

// Exited reports whether the process has exited.
func (c *Client) Exited() bool { return c.gp.Exited() }

// Kill ends the process (asking nicely first, killing after go-plugin's
// grace period) and waits until its output has been read. Safe to call twice.
func (c *Client) Kill() { c.gp.Kill() }

// ExitStatus describes how the process ended ("exit status 3", "signal:
// killed"); call it after Kill.
func (c *Client) ExitStatus() string {
	if c.Cmd.ProcessState == nil {
		return "not started"
	}
	return c.Cmd.ProcessState.String()
}

// Describe asks the plugin who it is and what it serves.
func (c *Client) Describe(ctx context.Context) (*pluginpb.DescribeResponse, error) {
	if c.rpc == nil {
		return nil, errors.New("plugin not connected")
	}
	return c.rpc.Describe(ctx, &pluginpb.DescribeRequest{})
}

// Plan asks the plugin to plan one step (see PlanFunc).
func (c *Client) Plan(ctx context.Context, req *PlanRequest) (*PlanResult, error) {
	if c.rpc == nil {
		return nil, errors.New("plugin not connected")
	}
	raw := req.ConfigJSON
	if raw == nil {
		var err error
		if raw, err = json.Marshal(req.Config); err != nil {
			return nil, fmt.Errorf("encode config of step %q: %w", req.StepName, err)
		}
	}
	resp, err := c.rpc.Plan(ctx, &pluginpb.PlanRequest{Op: req.Op, StepName: req.StepName, ConfigJson: raw,
		Prefix: req.Prefix, LogLevel: req.LogLevel})
	if err != nil {
		return nil, err
	}
	res := &PlanResult{Notes: resp.GetNotes()}
	for _, d := range resp.GetDiagnostics() {
		res.Diagnostics = append(res.Diagnostics, &Diagnostic{Summary: d.GetSummary(), Detail: d.GetDetail(), Attribute: d.GetAttribute()})
	}
	if raw := resp.GetSetJson(); len(raw) > 0 {
		if err := json.Unmarshal(raw, &res.Set); err != nil {
			return nil, fmt.Errorf("plan: pinned values: %w", err)
		}
	}
	return res, nil
}
