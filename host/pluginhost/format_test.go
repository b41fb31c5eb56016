package pluginhost

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/plugins/sdk"
)

// formatTestPlugins: a format plugin, and a plugin whose op renders through
// it the way the tokenize op does (from the endpoint in its request).
func formatTestPlugins() []*sdk.Plugin {
	return []*sdk.Plugin{
		{Name: "upper", Kind: sdk.KindFormat, Version: "0.2.0", Format: func(ctx context.Context, o sdk.ChatFormatOptions, convs []sdk.Conversation) ([]sdk.Rendered, error) {
			out := make([]sdk.Rendered, len(convs))
			for i, c := range convs {
				for _, m := range c.Messages {
					out[i].Segments = append(out[i].Segments, sdk.Text(strings.ToUpper(m.Content), m.Role == "assistant"), sdk.Special("<eot>", o.TrainEndOfTurn))
				}
			}
			return out, nil
		}},
		{Name: "renderer", Kind: sdk.KindBackend, Version: "1.0.0", Ops: map[string]sdk.Op{
			"test/render": {Description: "renders through a format plugin", Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				name, err := req.String("format_plugin")
				if err != nil {
					return err
				}
				ep, err := req.Plugin(name)
				if err != nil {
					return err
				}
				fc, err := sdk.StartFormat(ctx, ep)
				if err != nil {
					return err
				}
				defer fc.Close()
				got, err := fc.Render(ctx, []byte(`{"train_end_of_turn": false}`), []sdk.Conversation{{ID: "1", Messages: []sdk.ChatMessage{{Role: "assistant", Content: "hi"}}}})
				if err != nil {
					return err
				}
				out, err := sdk.LocalPath(req.OutputPath)
				if err != nil {
					return err
				}
				raw, _ := json.Marshal(map[string]any{"rendered": got, "version": fc.Endpoint.Version})
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(out, "rendered.json"), raw, 0o644)
			}},
		}},
	}
}

// TestFormatPluginReachableFromOp: the host passes the format plugins it
// knows in every RunRequest, and an op (in its own process) starts the one
// it needs and renders through it; nothing passes through the host.
func TestFormatPluginReachableFromOp(t *testing.T) {
	m, err := New(Config{Builtins: formatTestPlugins(), BuiltinCommand: testCommand(t), PluginDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	eps := m.FormatEndpoints()
	if len(eps) != 1 || eps[0].Name != "upper" || eps[0].Version != "0.2.0" || len(eps[0].Argv) != 4 ||
		!reflect.DeepEqual(eps[0].Argv[1:], []string{"plugin", "serve", "upper"}) || !contains(eps[0].Env, testPluginEnv+"=sdk") {
		t.Fatalf("FormatEndpoints: %+v", eps)
	}
	for _, p := range m.List() {
		if p.Name == "upper" && (p.Kind != "format" || len(p.Ops) != 0) {
			t.Errorf("List: %+v", p)
		}
	}

	out := t.TempDir()
	err = m.Run(context.Background(), executor.RunRequest{StepName: "r", Op: "test/render", OutputPath: "file://" + out, Attempt: 1,
		Config: map[string]any{"format_plugin": "upper"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "rendered.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Rendered []sdk.Rendered
		Version  string
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := []sdk.Rendered{{Segments: []sdk.Segment{sdk.Text("HI", true), sdk.Special("<eot>", false)}}}
	if !reflect.DeepEqual(got.Rendered, want) || got.Version != "0.2.0" {
		t.Errorf("rendered %+v (version %q), want %+v", got.Rendered, got.Version, want)
	}

	// A name the host does not know fails the step with the known names.
	err = m.Run(context.Background(), executor.RunRequest{StepName: "r", Op: "test/render", OutputPath: "file://" + out, Attempt: 1,
		Config: map[string]any{"format_plugin": "nope"}}, nil)
	if err == nil || !strings.Contains(err.Error(), `no plugin named "nope"`) || !strings.Contains(err.Error(), "upper") {
		t.Errorf("unknown format plugin: %v", err)
	}

	// The host-side call.
	r, err := m.RenderChat(context.Background(), "upper", nil, []sdk.Conversation{{ID: "x", Messages: []sdk.ChatMessage{{Role: "user", Content: "a"}}}})
	if err != nil || !reflect.DeepEqual(r, []sdk.Rendered{{Segments: []sdk.Segment{sdk.Text("A", false), sdk.Special("<eot>", true)}}}) {
		t.Errorf("RenderChat: %+v %v", r, err)
	}
	if _, err := m.RenderChat(context.Background(), "renderer", nil, nil); err == nil {
		t.Error("RenderChat with a backend plugin")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
