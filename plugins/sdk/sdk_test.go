package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	pluginpb "github.com/marin-go/marin/plugins/proto"
)

func init() {
	// plugin.TestPluginGRPCConn logs go-plugin's debug chatter to stderr; it
	// says nothing about this package.
	hclog.DefaultOutput = io.Discard
}

func testPlugin() *Plugin {
	return &Plugin{
		Name: "demo", Kind: KindGeneric, Version: "1.2.3",
		Ops: map[string]Op{
			"demo/echo": {Description: "echo the config back as logs", Run: func(ctx context.Context, req *Request, r Reporter) error {
				msg, err := req.String("msg")
				if err != nil {
					return err
				}
				n, err := req.Int("n")
				if err != nil {
					return err
				}
				for i := int64(1); i <= n; i++ {
					r.Progress(float64(i), float64(n), "items", msg)
				}
				r.Log("debug", "hidden at info level")
				r.Log("info", "echoed", "step", req.StepName, "out", req.OutputPath, "odd")
				return nil
			}},
			"demo/fail": {Description: "fails", Run: func(ctx context.Context, req *Request, r Reporter) error {
				return fmt.Errorf("convert rows: %w", &Diagnostic{Summary: "bad row 7", Detail: "column 3 is empty", Attribute: "input"})
			}},
			"demo/panic": {Description: "panics", Run: func(ctx context.Context, req *Request, r Reporter) error {
				var m map[string]int
				m["x"] = 1 // nil map write: a runtime panic, not just panic("...")
				return nil
			}},
			"demo/concurrent": {Description: "reports from many goroutines", Run: func(ctx context.Context, req *Request, r Reporter) error {
				var wg sync.WaitGroup
				for g := 0; g < 8; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < 50; i++ {
							r.Progress(float64(i), 50, "x", "")
						}
					}()
				}
				wg.Wait()
				return nil
			}},
		},
	}
}

// connect serves p in-process over a real gRPC connection.
func connect(t *testing.T, p *Plugin) pluginpb.PluginClient {
	t.Helper()
	srv, err := NewServer(p)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := plugin.TestPluginGRPCConn(t, false, ServerPluginSets(srv)[ProtocolVersion])
	// Close also shuts the server down (go-plugin's controller RPC); stopping
	// it again here would race inside go-plugin.
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(PluginSetKey)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(pluginpb.PluginClient)
}

// run calls Run and collects the events up to and including the result.
func run(t *testing.T, c pluginpb.PluginClient, req *pluginpb.RunRequest) (events []*pluginpb.RunEvent, result *pluginpb.Result) {
	t.Helper()
	stream, err := c.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			t.Fatalf("stream ended without a result after %d events", len(events))
		}
		if err != nil {
			t.Fatal(err)
		}
		if r := ev.GetResult(); r != nil {
			if _, err := stream.Recv(); err != io.EOF {
				t.Fatalf("after the result: got %v, want EOF", err)
			}
			return events, r
		}
		events = append(events, ev)
	}
}

func TestDescribe(t *testing.T) {
	c := connect(t, testPlugin())
	resp, err := c.Describe(context.Background(), &pluginpb.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Name != "demo" || resp.Kind != pluginpb.Kind_KIND_GENERIC || resp.Version != "1.2.3" || resp.ProtocolVersion != ProtocolVersion {
		t.Errorf("describe: got %v", resp)
	}
	var ops []string
	for _, op := range resp.Ops {
		ops = append(ops, op.Name+"="+op.Description)
	}
	want := "demo/concurrent=reports from many goroutines,demo/echo=echo the config back as logs,demo/fail=fails,demo/panic=panics"
	if got := strings.Join(ops, ","); got != want {
		t.Errorf("ops: got %s, want %s", got, want)
	}
}

func TestRunStreamsProgressAndLogs(t *testing.T) {
	c := connect(t, testPlugin())
	events, res := run(t, c, &pluginpb.RunRequest{
		Op: "demo/echo", StepName: "s1", ConfigJson: []byte(`{"msg":"hi","n":3}`),
		OutputPath: "file:///tmp/out", LogLevel: "info",
	})
	if res.GetOk() == nil {
		t.Fatalf("result: got %v, want ok", res)
	}
	if len(events) != 4 {
		t.Fatalf("got %d events, want 3 progress + 1 log (debug filtered): %v", len(events), events)
	}
	for i, ev := range events[:3] {
		p := ev.GetProgress()
		if p == nil || p.Done != float64(i+1) || p.Total != 3 || p.Unit != "items" || p.Message != "hi" {
			t.Errorf("event %d: got %v", i, ev)
		}
	}
	l := events[3].GetLog()
	if l == nil || l.Level != "info" || l.Message != "echoed" || l.Fields["step"] != "s1" || l.Fields["out"] != "file:///tmp/out" {
		t.Errorf("log event: got %v", events[3])
	}
	if v, ok := l.GetFields()["odd"]; !ok || v != "" {
		t.Errorf("odd trailing key: got %q, %v", v, ok)
	}

	// At debug level the debug line comes through too.
	events, _ = run(t, c, &pluginpb.RunRequest{Op: "demo/echo", ConfigJson: []byte(`{"msg":"hi","n":0}`), LogLevel: "debug"})
	if len(events) != 2 || events[0].GetLog().GetMessage() != "hidden at info level" {
		t.Errorf("debug level: got %v", events)
	}
}

func TestRunErrorsBecomeDiagnostics(t *testing.T) {
	c := connect(t, testPlugin())
	cases := []struct {
		name string
		req  *pluginpb.RunRequest
		want *pluginpb.Diagnostic
	}{
		{"op error wraps a diagnostic", &pluginpb.RunRequest{Op: "demo/fail"},
			&pluginpb.Diagnostic{Summary: "convert rows: bad row 7", Detail: "column 3 is empty", Attribute: "input"}},
		{"missing config key", &pluginpb.RunRequest{Op: "demo/echo", ConfigJson: []byte(`{"n":1}`)},
			&pluginpb.Diagnostic{Summary: `config "msg": missing`, Attribute: "msg"}},
		{"wrong config type", &pluginpb.RunRequest{Op: "demo/echo", ConfigJson: []byte(`{"msg":"x","n":1.5}`)},
			&pluginpb.Diagnostic{Summary: `config "n": want an integer, got 1.5`, Attribute: "n"}},
		{"unknown op", &pluginpb.RunRequest{Op: "demo/nope"},
			&pluginpb.Diagnostic{Summary: `plugin "demo" does not serve op "demo/nope"`, Detail: "it serves: demo/concurrent, demo/echo, demo/fail, demo/panic"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, res := run(t, c, tc.req)
			d := res.GetError()
			if d == nil || d.Summary != tc.want.Summary || d.Detail != tc.want.Detail || d.Attribute != tc.want.Attribute {
				t.Errorf("got %v, want %v", d, tc.want)
			}
		})
	}

	t.Run("bad config JSON", func(t *testing.T) {
		_, res := run(t, c, &pluginpb.RunRequest{Op: "demo/echo", StepName: "s", ConfigJson: []byte(`{"msg": `)})
		if d := res.GetError(); d == nil || !strings.HasPrefix(d.Summary, `step "s": decode config JSON: `) {
			t.Errorf("got %v", res)
		}
		_, res = run(t, c, &pluginpb.RunRequest{Op: "demo/echo", StepName: "s", ConfigJson: []byte(`[1]`)})
		if d := res.GetError(); d == nil || d.Summary != `step "s": decode config JSON: want an object, got a list` {
			t.Errorf("got %v", res)
		}
	})

	t.Run("panic is recovered", func(t *testing.T) {
		_, res := run(t, c, &pluginpb.RunRequest{Op: "demo/panic"})
		d := res.GetError()
		if d == nil || d.Summary != `op "demo/panic" panicked: assignment to entry in nil map` || !strings.Contains(d.Detail, "sdk_test.go") {
			t.Errorf("got %v", d)
		}
		// The server is still alive after the panic.
		if _, res := run(t, c, &pluginpb.RunRequest{Op: "demo/echo", ConfigJson: []byte(`{"msg":"x","n":1}`)}); res.GetOk() == nil {
			t.Errorf("after panic: got %v", res)
		}
	})
}

func TestConcurrentReports(t *testing.T) {
	c := connect(t, testPlugin())
	events, res := run(t, c, &pluginpb.RunRequest{Op: "demo/concurrent"})
	if res.GetOk() == nil || len(events) != 400 {
		t.Errorf("got %d events and %v, want 400 and ok", len(events), res)
	}
}

func TestValidate(t *testing.T) {
	noop := func(context.Context, *Request, Reporter) error { return nil }
	cases := map[string]*Plugin{
		"plugin has no name":              {Kind: KindDataset, Ops: map[string]Op{"a": {Run: noop}}},
		`unknown kind "model"`:            {Name: "p", Kind: "model", Ops: map[string]Op{"a": {Run: noop}}},
		"serves no ops":                   {Name: "p", Kind: KindDataset},
		`op "a" has no Run function`:      {Name: "p", Kind: KindDataset, Ops: map[string]Op{"a": {}}},
		"may not contain spaces":          {Name: "p q", Kind: KindDataset, Ops: map[string]Op{"a": {Run: noop}}},
		`op name " a" is empty or padded`: {Name: "p", Kind: KindDataset, Ops: map[string]Op{" a": {Run: noop}}},
		"without a Format function":       {Name: "p", Kind: KindFormat},
		"not format":                      {Name: "p", Kind: KindGeneric, Format: vicuna, Ops: map[string]Op{"a": {Run: noop}}},
	}
	for want, p := range cases {
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	if err := testPlugin().Validate(); err != nil {
		t.Errorf("valid plugin: %v", err)
	}
	if err := ServeNamed("nope", testPlugin()); err == nil || err.Error() != `no plugin named "nope" (have: demo)` {
		t.Errorf("ServeNamed unknown: got %v", err)
	}
}

func TestRequestHelpers(t *testing.T) {
	cfg, err := decodeConfig([]byte(`{"s":"x","list":["a","b"],"big":9007199254740993,"exp":1e3,"f":0.5,"b":true,"bad":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Config: cfg}
	if n, err := r.Int("big"); err != nil || n != 9007199254740993 {
		t.Errorf("Int big: %d %v (json.Number keeps it exact)", n, err)
	}
	if n, err := r.Int("exp"); err != nil || n != 1000 {
		t.Errorf("Int exp: %d %v", n, err)
	}
	if f, err := r.Float("f"); err != nil || f != 0.5 {
		t.Errorf("Float: %v %v", f, err)
	}
	if b, err := r.Bool("b"); err != nil || !b {
		t.Errorf("Bool: %v %v", b, err)
	}
	if l, err := r.Strings("list"); err != nil || strings.Join(l, ",") != "a,b" {
		t.Errorf("Strings list: %v %v", l, err)
	}
	if l, err := r.Strings("s"); err != nil || len(l) != 1 || l[0] != "x" {
		t.Errorf("Strings single: %v %v", l, err)
	}
	_, err = r.Strings("bad")
	var d *Diagnostic
	if !errors.As(err, &d) || d.Summary != `config "bad[0]": want a string, got a number` {
		t.Errorf("Strings bad: %v", err)
	}
	if _, err := r.String("b"); err == nil || err.Error() != `config "b": want a string, got a boolean` {
		t.Errorf("String of bool: %v", err)
	}
	var into struct {
		S    string   `json:"s"`
		List []string `json:"list"`
	}
	if err := r.Decode(&into); err != nil || into.S != "x" || len(into.List) != 2 {
		t.Errorf("Decode: %+v %v", into, err)
	}
	if _, ok := cfg["big"].(json.Number); !ok {
		t.Errorf("numbers should decode as json.Number, got %T", cfg["big"])
	}
}

func TestLocalPath(t *testing.T) {
	cases := map[string]string{
		"file:///tmp/a b/x.txt":        "/tmp/a b/x.txt",
		"file://localhost/tmp/x":       "/tmp/x",
		"/tmp/../tmp/y":                "/tmp/y",
		"rel/z":                        "rel/z",
		"file:///tmp/with%20space.txt": "/tmp/with space.txt",
	}
	for in, want := range cases {
		if got, err := LocalPath(in); err != nil || got != want {
			t.Errorf("LocalPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "gs://bucket/x", "file://otherhost/x", "s3://b/k"} {
		if got, err := LocalPath(in); err == nil {
			t.Errorf("LocalPath(%q) = %q, want an error", in, got)
		}
	}
}
