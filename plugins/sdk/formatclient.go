package sdk

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginpb "github.com/marin-go/marin/plugins/proto"
)

// MaxMessageBytes bounds one gRPC message between marin processes; a batch
// of conversations to render must stay under it.
const MaxMessageBytes = 64 << 20

// PluginEndpoint says how to start another plugin: the host puts one in
// each Request for every format plugin it knows (Request.Plugins).
type PluginEndpoint struct {
	Name    string
	Kind    Kind
	Version string
	Argv    []string // executable and arguments
	Env     []string // KEY=VALUE entries added to this process's environment
}

func endpointFromProto(p *pluginpb.PluginEndpoint) PluginEndpoint {
	return PluginEndpoint{Name: p.GetName(), Kind: KindFromProto(p.GetKind()), Version: p.GetVersion(),
		Argv: append([]string(nil), p.GetArgv()...), Env: append([]string(nil), p.GetEnv()...)}
}

// EndpointToProto converts an endpoint for the wire (the host uses it).
func EndpointToProto(e PluginEndpoint) *pluginpb.PluginEndpoint {
	return &pluginpb.PluginEndpoint{Name: e.Name, Kind: kindToProto(e.Kind), Version: e.Version, Argv: e.Argv, Env: e.Env}
}

// Plugin finds the plugin called name among r.Plugins.
func (r *Request) Plugin(name string) (PluginEndpoint, error) {
	var found []PluginEndpoint
	var names []string
	for _, p := range r.Plugins {
		names = append(names, p.Name)
		if p.Name == name {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		known := "none"
		if len(names) > 0 {
			known = strings.Join(names, ", ")
		}
		return PluginEndpoint{}, fmt.Errorf("no plugin named %q was passed to this step (format plugins the host knows: %s); is it on $MARIN_PLUGIN_PATH? see `marin plugins`", name, known)
	}
	var where []string
	for _, p := range found {
		where = append(where, strings.Join(p.Argv, " "))
	}
	return PluginEndpoint{}, fmt.Errorf("%d plugins are named %q (%s); remove all but one from the plugin path", len(found), name, strings.Join(where, "; "))
}

// grpcServer raises gRPC's 4 MiB default for large conversation batches.
func grpcServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))...)
}

// FormatClient talks to a running format plugin. It is safe for concurrent
// use; Render calls may overlap.
type FormatClient struct {
	Endpoint PluginEndpoint
	client   *Client
	rpc      pluginpb.PluginClient
	stderr   *stderrTail
	closed   sync.Once
}

// StartFormat starts the format plugin ep describes and checks, by
// describing it, that it is the format plugin it claims to be. Close it
// when done.
func StartFormat(ctx context.Context, ep PluginEndpoint) (*FormatClient, error) {
	if len(ep.Argv) == 0 {
		return nil, fmt.Errorf("format plugin %q: no command to start it", ep.Name)
	}
	cmd := exec.Command(ep.Argv[0], ep.Argv[1:]...)
	cmd.Env = append(os.Environ(), ep.Env...)
	tail := &stderrTail{}
	c, err := Start(cmd, ClientConfig{Stderr: tail})
	fc := &FormatClient{Endpoint: ep, client: c, stderr: tail}
	fail := func(err error) (*FormatClient, error) {
		fc.Close()
		return nil, fc.explain(fmt.Errorf("format plugin %q (%s): %w", ep.Name, strings.Join(ep.Argv, " "), err))
	}
	if err != nil {
		return fail(err)
	}
	fc.rpc = c.RPC()
	rpc := fc.rpc
	d, err := rpc.Describe(ctx, &pluginpb.DescribeRequest{})
	if err != nil {
		return fail(fmt.Errorf("describe: %w", err))
	}
	if d.GetName() != ep.Name || d.GetKind() != pluginpb.Kind_KIND_FORMAT {
		return fail(fmt.Errorf("it describes itself as %q of kind %s, not format plugin %q", d.GetName(), d.GetKind(), ep.Name))
	}
	fc.Endpoint.Version = d.GetVersion()
	return fc, nil
}

// Render renders a batch of conversations with the step's chat format
// options (the JSON of its ChatFormat). The batch must fit MaxMessageBytes.
func (c *FormatClient) Render(ctx context.Context, optionsJSON []byte, convs []Conversation) ([]Rendered, error) {
	req := &pluginpb.RenderChatRequest{OptionsJson: optionsJSON, Conversations: make([]*pluginpb.Conversation, len(convs))}
	for i, conv := range convs {
		pc := &pluginpb.Conversation{Id: conv.ID, Messages: make([]*pluginpb.ChatMessage, len(conv.Messages))}
		for j, m := range conv.Messages {
			pc.Messages[j] = &pluginpb.ChatMessage{Role: m.Role, Content: m.Content}
		}
		req.Conversations[i] = pc
	}
	resp, err := c.rpc.RenderChat(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if status.Code(err) == codes.Unimplemented {
			return nil, fmt.Errorf("format plugin %q does not render chat: %w", c.Endpoint.Name, err)
		}
		if status.Code(err) == codes.Unavailable && c.client != nil {
			// The connection broke, most likely because the process died:
			// give it a moment so its last words on stderr are read.
			deadline := time.Now().Add(2 * time.Second)
			for !c.client.Exited() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		return nil, c.explain(fmt.Errorf("format plugin %q: RenderChat: %w", c.Endpoint.Name, err))
	}
	if d := resp.GetError(); d != nil {
		err := &Diagnostic{Summary: fmt.Sprintf("format plugin %q: %s", c.Endpoint.Name, d.GetSummary()), Detail: d.GetDetail(), Attribute: d.GetAttribute()}
		return nil, err
	}
	if len(resp.GetConversations()) != len(convs) {
		return nil, fmt.Errorf("format plugin %q returned %d conversations for %d", c.Endpoint.Name, len(resp.GetConversations()), len(convs))
	}
	out := make([]Rendered, len(convs))
	for i, rc := range resp.GetConversations() {
		r := Rendered{Skip: rc.GetSkipReason(), SkipDetail: rc.GetSkipDetail()}
		for j, s := range rc.GetSegments() {
			switch p := s.GetPiece().(type) {
			case *pluginpb.Segment_Text:
				r.Segments = append(r.Segments, Segment{Text: p.Text, Trainable: s.GetTrainable()})
			case *pluginpb.Segment_SpecialToken:
				if p.SpecialToken == "" {
					return nil, fmt.Errorf("format plugin %q: conversation %q segment %d: empty special token", c.Endpoint.Name, convs[i].ID, j)
				}
				r.Segments = append(r.Segments, Segment{Special: p.SpecialToken, Trainable: s.GetTrainable()})
			default:
				// An empty text segment travels as an unset oneof.
			}
		}
		out[i] = r
	}
	return out, nil
}

// Close stops the plugin process.
func (c *FormatClient) Close() {
	c.closed.Do(func() {
		if c.client != nil {
			c.client.Kill()
		}
	})
}

// explain adds the end of the plugin's stderr to err, for crashes.
func (c *FormatClient) explain(err error) error {
	if t := c.stderr.String(); t != "" {
		return fmt.Errorf("%w\nformat plugin stderr:\n%s", err, t)
	}
	return err
}

// stderrTail keeps the last lines a plugin wrote on stderr.
type stderrTail struct {
	mu    sync.Mutex
	lines []string
	part  string
}

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		if len(l) > 2000 {
			l = l[:2000] + "…"
		}
		t.lines = append(t.lines, l)
	}
	if len(t.lines) > 20 {
		t.lines = t.lines[len(t.lines)-20:]
	}
	return len(p), nil
}

func (t *stderrTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := append([]string(nil), t.lines...)
	if t.part != "" {
		lines = append(lines, t.part)
	}
	return strings.Join(lines, "\n")
}
