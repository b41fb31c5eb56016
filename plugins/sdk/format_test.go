package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginpb "github.com/marin-go/marin/plugins/proto"
)

// formatEnv makes the test binary serve formatPlugin (see TestMain).
const formatEnv = "MARIN_SDK_TEST_FORMAT"

func TestMain(m *testing.M) {
	if os.Getenv(formatEnv) == "1" {
		Serve(formatPlugin())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// vicuna is the ~30-line format the package comment shows.
func vicuna(ctx context.Context, o ChatFormatOptions, convs []Conversation) ([]Rendered, error) {
	out := make([]Rendered, len(convs))
	for i, c := range convs {
		if o.SystemPrompt != "" {
			out[i].Segments = append(out[i].Segments, Text(o.SystemPrompt+"\n", false))
		}
		for _, m := range c.Messages {
			switch m.Role {
			case "panic":
				panic("role panic")
			case "fail":
				return nil, &Diagnostic{Summary: "cannot render role fail", Attribute: "format"}
			case "exit": // a crash, only ever sent to a plugin process
				fmt.Fprintln(os.Stderr, "vicuna: out of memory")
				os.Exit(3)
			case "user", "assistant":
			default:
				out[i] = Rendered{Skip: "unsupported_role", SkipDetail: "role " + m.Role}
			}
			if out[i].Skip != "" {
				break
			}
			asst := m.Role == "assistant"
			out[i].Segments = append(out[i].Segments, Text(strings.ToUpper(m.Role)+": ", false), Text(m.Content, asst), Special("</s>", asst && o.TrainEndOfTurn))
		}
	}
	return out, nil
}

func formatPlugin() *Plugin {
	return &Plugin{Name: "vicuna", Kind: KindFormat, Version: "0.3.0", Format: vicuna}
}

var convs = []Conversation{
	{ID: "a", Messages: []ChatMessage{{"user", "hi <|eot_id|>"}, {"assistant", "yo"}}},
	{ID: "b", Messages: []ChatMessage{{"tool", "x"}}},
	{ID: "c"},
}

func wantRendered(eot bool) []Rendered {
	return []Rendered{
		{Segments: []Segment{Text("USER: ", false), Text("hi <|eot_id|>", false), Special("</s>", false),
			Text("ASSISTANT: ", false), Text("yo", true), Special("</s>", eot)}},
		{Skip: "unsupported_role", SkipDetail: "role tool"},
		{},
	}
}

func TestRenderChatInProcess(t *testing.T) {
	c := connect(t, formatPlugin())
	d, err := c.Describe(context.Background(), &pluginpb.DescribeRequest{})
	if err != nil || d.GetKind() != pluginpb.Kind_KIND_FORMAT || len(d.GetOps()) != 0 {
		t.Fatalf("Describe: %v %v", d, err)
	}
	// Through a FormatClient wired to the in-process connection.
	fc := &FormatClient{Endpoint: PluginEndpoint{Name: "vicuna"}, rpc: c, stderr: &stderrTail{}}
	got, err := fc.Render(context.Background(), []byte(`{"name": "plugin", "plugin": "vicuna", "train_end_of_turn": false, "system_prompt": null}`), convs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantRendered(false)) {
		t.Errorf("got %+v\nwant %+v", got, wantRendered(false))
	}
	// Defaults apply to options the step leaves out.
	got, err = fc.Render(context.Background(), nil, convs[:1])
	if err != nil || !got[0].Segments[5].Trainable {
		t.Errorf("default train_end_of_turn: %+v %v", got, err)
	}
	for role, want := range map[string]string{"panic": "panicked: role panic", "fail": "cannot render role fail"} {
		_, err := fc.Render(context.Background(), nil, []Conversation{{ID: "p", Messages: []ChatMessage{{role, ""}}}})
		var d *Diagnostic
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &d) {
			t.Errorf("role %s: err = %v, want a diagnostic with %q", role, err, want)
		}
	}
	if _, err := fc.Render(context.Background(), []byte(`[1]`), convs); err == nil || !strings.Contains(err.Error(), "options") {
		t.Errorf("bad options: %v", err)
	}

	// A plugin of another kind does not render.
	other := connect(t, testPlugin())
	_, err = other.RenderChat(context.Background(), &pluginpb.RenderChatRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("RenderChat on a generic plugin: %v", err)
	}
}

// TestStartFormat starts the format plugin as a real process, as the
// tokenize op does, from an endpoint the host would send.
func TestStartFormat(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fc, err := StartFormat(ctx, PluginEndpoint{Name: "vicuna", Kind: KindFormat, Argv: []string{exe}, Env: []string{formatEnv + "=1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if fc.Endpoint.Version != "0.3.0" {
		t.Errorf("version %q", fc.Endpoint.Version)
	}
	// Batches may overlap.
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			got, err := fc.Render(ctx, nil, convs)
			if err == nil && !reflect.DeepEqual(got, wantRendered(true)) {
				err = fmt.Errorf("got %+v", got)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// A batch larger than gRPC's default 4 MiB message.
	big := []Conversation{{ID: "big", Messages: []ChatMessage{{"user", strings.Repeat("x", 6<<20)}}}}
	if got, err := fc.Render(ctx, nil, big); err != nil || len(got[0].Segments[1].Text) != 6<<20 {
		t.Errorf("6 MiB conversation: %v", err)
	}
	// A crash mid-call fails the call with what the plugin said on stderr.
	_, err = fc.Render(ctx, nil, []Conversation{{ID: "x", Messages: []ChatMessage{{"exit", ""}}}})
	if err == nil || !strings.Contains(err.Error(), "vicuna: out of memory") {
		t.Errorf("crashed plugin: %v", err)
	}
	fc.Close()
	fc.Close()

	if _, err := StartFormat(ctx, PluginEndpoint{Name: "other", Argv: []string{exe}, Env: []string{formatEnv + "=1"}}); err == nil || !strings.Contains(err.Error(), `not format plugin "other"`) {
		t.Errorf("wrong name: %v", err)
	}
	if _, err := StartFormat(ctx, PluginEndpoint{Name: "x"}); err == nil {
		t.Error("no command")
	}
	if _, err := StartFormat(ctx, PluginEndpoint{Name: "x", Argv: []string{"/bin/false"}}); err == nil {
		t.Error("a command that is no plugin")
	}
}

func TestRequestPlugin(t *testing.T) {
	r := &Request{Plugins: []PluginEndpoint{{Name: "a", Argv: []string{"/a"}}, {Name: "b", Argv: []string{"/b1"}}, {Name: "b", Argv: []string{"/b2"}}}}
	if p, err := r.Plugin("a"); err != nil || p.Argv[0] != "/a" {
		t.Errorf("a: %+v %v", p, err)
	}
	if _, err := r.Plugin("b"); err == nil || !strings.Contains(err.Error(), "/b1; /b2") {
		t.Errorf("b: %v", err)
	}
	if _, err := r.Plugin("c"); err == nil || !strings.Contains(err.Error(), "a, b, b") {
		t.Errorf("c: %v", err)
	}
	ep := PluginEndpoint{Name: "x", Kind: KindFormat, Version: "1", Argv: []string{"a", "b"}, Env: []string{"K=V"}}
	if got := endpointFromProto(EndpointToProto(ep)); !reflect.DeepEqual(got, ep) {
		t.Errorf("round trip: %+v", got)
	}
}
