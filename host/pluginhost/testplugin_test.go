package pluginhost

// The test binary doubles as the plugins under test: when MARIN_TEST_PLUGIN is
// set, TestMain serves a plugin instead of running tests, so every test below
// talks to real plugin processes over real go-plugin connections.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginpb "github.com/marin-go/marin/plugins/proto"
	"github.com/marin-go/marin/plugins/sdk"
)

const testPluginEnv = "MARIN_TEST_PLUGIN"

// Distinctive messages the crash tests look for in errors.
const (
	crashMessage = "testplugin-crash-3f9a: the disk is on fire"
	exitMessage  = "testplugin-exit-7c21: cannot continue"
)

func TestMain(m *testing.M) {
	switch os.Getenv(testPluginEnv) {
	case "":
		os.Exit(m.Run())
	case "sdk": // arguments: plugin serve NAME, as the marin binary gets them
		args := os.Args[1:]
		if len(args) != 3 || args[0] != "plugin" || args[1] != "serve" {
			fmt.Fprintf(os.Stderr, "test plugin: want arguments `plugin serve NAME`, got %q\n", args)
			os.Exit(2)
		}
		if err := sdk.ServeNamed(args[2], append(testPlugins(), formatTestPlugins()...)...); err != nil {
			fmt.Fprintln(os.Stderr, "test plugin:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "nonsense":
		serveRaw(&nonsenseServer{})
		os.Exit(0)
	case "bad-describe":
		serveRaw(&nonsenseServer{badDescribe: true})
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", testPluginEnv, os.Getenv(testPluginEnv))
		os.Exit(2)
	}
}

// testPlugins are served by `plugin serve NAME`.
func testPlugins() []*sdk.Plugin {
	return []*sdk.Plugin{testPlug(), {
		Name: "other", Kind: sdk.KindDataset, Version: "2.0.0",
		Ops: map[string]sdk.Op{"other/noop": {Description: "does nothing", Run: func(context.Context, *sdk.Request, sdk.Reporter) error { return nil }}},
	}}
}

func testPlug() *sdk.Plugin {
	return &sdk.Plugin{
		Name: "testplug", Kind: sdk.KindGeneric, Version: "0.9.0",
		Ops: map[string]sdk.Op{
			"test/ok": {Description: "writes ok.txt", Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				msg, err := req.String("message")
				if err != nil {
					return err
				}
				n, err := req.Int("n")
				if err != nil {
					return err
				}
				dir, err := sdk.LocalPath(req.OutputPath)
				if err != nil {
					return err
				}
				r.Progress(1, 2, "files", "writing")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				body := fmt.Sprintf("%s n=%d step=%s attempt=%d prefix=%s", msg, n, req.StepName, req.Attempt, req.Prefix)
				if err := os.WriteFile(filepath.Join(dir, "ok.txt"), []byte(body), 0o644); err != nil {
					return fmt.Errorf("write ok.txt: %w", err)
				}
				r.Progress(2, 2, "files", "done")
				r.Log("info", "wrote ok.txt", "file", "ok.txt")
				return nil
			}},
			"test/fail": {Description: "fails with a diagnostic", Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				return &sdk.Diagnostic{Summary: "cannot read shard 3: checksum mismatch", Detail: "want abc, got def", Attribute: "input"}
			}},
			"test/panic-op": {Description: "panics inside the op", Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				panic("op-panic-value-91")
			}},
			"test/crash": {Description: "crashes the whole process", Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				r.Progress(1, 10, "rows", "about to crash")
				// A panic on another goroutine cannot be recovered by the SDK:
				// the process dies, as a real plugin bug would kill it.
				go func() { panic(crashMessage) }()
				<-ctx.Done()
				return nil
			}},
			"test/exit": {Description: "prints to stderr and exits 3", Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				fmt.Fprintln(os.Stderr, exitMessage)
				os.Exit(3)
				return nil
			}},
			"test/hang": {Description: "blocks forever, ignoring its context", Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				r.Progress(0, 0, "", "hanging")
				select {}
			}},
			"test/levels": {Description: "logs at every level and reports what level it was given", Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
				r.Log("debug", "debug line", "req_level", req.LogLevel, "env_level", os.Getenv(sdk.LogLevelEnv))
				r.Log("info", "info line")
				r.Log("fatal", "fatal line must not kill the host")
				return nil
			}},
		},
	}
}

// serveRaw serves a hand-written protocol implementation, for plugins that
// misbehave in ways the SDK would never allow.
func serveRaw(srv pluginpb.PluginServer) {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.ServerPluginSets(srv),
		GRPCServer:       goplugin.DefaultGRPCServer,
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Off}),
	})
}

// nonsenseServer answers Run in every wrong way a plugin could.
type nonsenseServer struct {
	pluginpb.UnimplementedPluginServer
	badDescribe bool
}

func (s *nonsenseServer) Describe(context.Context, *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	if s.badDescribe {
		return &pluginpb.DescribeResponse{Name: "baddie", Kind: pluginpb.Kind_KIND_GENERIC, ProtocolVersion: 7,
			Ops: []*pluginpb.OpInfo{{Name: "bad/op"}}}, nil
	}
	resp := &pluginpb.DescribeResponse{Name: "nonsense", Kind: pluginpb.Kind_KIND_GENERIC, Version: "0.0.1", ProtocolVersion: sdk.ProtocolVersion}
	for _, op := range []string{"nonsense/no-result", "nonsense/empty-event", "nonsense/grpc-error", "nonsense/bad-outcome"} {
		resp.Ops = append(resp.Ops, &pluginpb.OpInfo{Name: op, Description: strings.TrimPrefix(op, "nonsense/")})
	}
	return resp, nil
}

func (s *nonsenseServer) Run(req *pluginpb.RunRequest, stream grpc.ServerStreamingServer[pluginpb.RunEvent]) error {
	switch req.GetOp() {
	case "nonsense/no-result":
		return stream.Send(&pluginpb.RunEvent{Event: &pluginpb.RunEvent_Progress{Progress: &pluginpb.Progress{Done: 1}}})
	case "nonsense/empty-event":
		return stream.Send(&pluginpb.RunEvent{})
	case "nonsense/grpc-error":
		return status.Error(codes.Internal, "nonsense-internal-error")
	case "nonsense/bad-outcome":
		return stream.Send(&pluginpb.RunEvent{Event: &pluginpb.RunEvent_Result{Result: &pluginpb.Result{}}})
	}
	return status.Errorf(codes.Unimplemented, "op %q", req.GetOp())
}

// testCommand serves the named test plugin from this test binary.
func testCommand(t testing.TB) func(name string) (*exec.Cmd, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) (*exec.Cmd, error) {
		cmd := exec.Command(exe, "plugin", "serve", name)
		cmd.Env = append(os.Environ(), testPluginEnv+"=sdk", goraceEnv())
		return cmd, nil
	}
}

// writeWrapper puts an executable script in dir that runs this test binary
// as the given kind of test plugin; it is how third-party plugins are made.
func writeWrapper(t testing.TB, dir, file, mode string, args ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	quoted := []string{shellQuote(exe)}
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	script := fmt.Sprintf("#!/bin/sh\n%s=%s GORACE=%s exec %s\n", testPluginEnv, mode,
		shellQuote(strings.TrimPrefix(goraceEnv(), "GORACE=")), strings.Join(quoted, " "))
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// goraceEnv stops a -race plugin process from sleeping a second at exit (the
// race runtime's default, to let reports flush), which would add a second to
// every run in these tests.
func goraceEnv() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
