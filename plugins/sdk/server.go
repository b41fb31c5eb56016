package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"google.golang.org/grpc"

	pluginpb "github.com/marin-go/marin/plugins/proto"
	"github.com/marin-go/marin/plugins/storage"
)

// server implements the protocol for one Plugin.
type server struct {
	pluginpb.UnimplementedPluginServer
	p *Plugin
	// beforeCall runs at the start of every RPC; Serve uses it to undo
	// go-plugin's stderr redirection (see Serve).
	beforeCall func()
}

// NewServer returns the protocol implementation for p, for serving it in a
// custom go-plugin setup or testing it in-process with
// plugin.TestPluginGRPCConn. Serve uses it.
func NewServer(p *Plugin) (pluginpb.PluginServer, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &server{p: p}, nil
}

func (s *server) Describe(context.Context, *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	if s.beforeCall != nil {
		s.beforeCall()
	}
	resp := &pluginpb.DescribeResponse{
		Name:            s.p.Name,
		Kind:            kindToProto(s.p.Kind),
		Version:         s.p.Version,
		ProtocolVersion: ProtocolVersion,
	}
	for _, name := range s.p.OpNames() {
		op := s.p.Ops[name]
		info := &pluginpb.OpInfo{Name: name, Description: op.Description, Plans: op.Plan != nil}
		if op.Schema != nil {
			raw, err := op.Schema.Marshal()
			if err != nil {
				return nil, fmt.Errorf("op %q: encode config schema: %w", name, err)
			}
			info.ConfigSchema = raw
		}
		resp.Ops = append(resp.Ops, info)
	}
	return resp, nil
}

func (s *server) Plan(ctx context.Context, req *pluginpb.PlanRequest) (*pluginpb.PlanResponse, error) {
	if s.beforeCall != nil {
		s.beforeCall()
	}
	op, ok := s.p.Ops[req.GetOp()]
	if !ok {
		return nil, fmt.Errorf("plugin %q does not serve op %q", s.p.Name, req.GetOp())
	}
	res, err := CallPlan(ctx, op, &PlanRequest{Op: req.GetOp(), StepName: req.GetStepName(), ConfigJSON: req.GetConfigJson(),
		Prefix: req.GetPrefix(), LogLevel: requestLevel(req.GetLogLevel())})
	resp := &pluginpb.PlanResponse{}
	if err != nil {
		resp.Diagnostics = append(resp.Diagnostics, toDiagnostic(err))
		return resp, nil
	}
	for _, d := range res.Diagnostics {
		resp.Diagnostics = append(resp.Diagnostics, toDiagnostic(d))
	}
	if len(res.Set) > 0 {
		raw, err := json.Marshal(res.Set)
		if err != nil {
			return nil, fmt.Errorf("op %q: encode pinned values: %w", req.GetOp(), err)
		}
		resp.SetJson = raw
	}
	resp.Notes = res.Notes
	return resp, nil
}

func (s *server) Run(req *pluginpb.RunRequest, stream grpc.ServerStreamingServer[pluginpb.RunEvent]) error {
	if s.beforeCall != nil {
		s.beforeCall()
	}
	rep := &reporter{stream: stream, level: levelRank(requestLevel(req.GetLogLevel()))}
	err := s.run(stream.Context(), req, rep)
	return rep.finish(err)
}

// run decodes the request and calls the op; every failure, a panic included,
// comes back as an error for finish to turn into a diagnostic.
func (s *server) run(ctx context.Context, req *pluginpb.RunRequest, rep *reporter) (err error) {
	op, ok := s.p.Ops[req.GetOp()]
	if !ok {
		return &Diagnostic{
			Summary: fmt.Sprintf("plugin %q does not serve op %q", s.p.Name, req.GetOp()),
			Detail:  "it serves: " + strings.Join(s.p.OpNames(), ", "),
		}
	}
	cfg, err := decodeConfig(req.GetConfigJson())
	if err != nil {
		return &Diagnostic{Summary: fmt.Sprintf("step %q: %v", req.GetStepName(), err)}
	}
	if err := checkConfig(req.GetStepName(), op, cfg); err != nil {
		return err
	}
	r := &Request{
		Op:         req.GetOp(),
		StepName:   req.GetStepName(),
		Config:     cfg,
		ConfigJSON: req.GetConfigJson(),
		OutputPath: req.GetOutputPath(),
		Prefix:     req.GetPrefix(),
		Attempt:    int(req.GetAttempt()),
		LogLevel:   requestLevel(req.GetLogLevel()),
		schema:     op.Schema,
	}
	for _, p := range req.GetPlugins() {
		r.Plugins = append(r.Plugins, endpointFromProto(p))
	}
	// An op's panic must not kill the plugin process: the host would only see
	// a broken connection, while here we still know the panic value.
	defer func() {
		if p := recover(); p != nil {
			err = &Diagnostic{
				Summary: fmt.Sprintf("op %q panicked: %v", r.Op, p),
				Detail:  string(debug.Stack()),
			}
		}
	}()
	// Storage reports (a retried request, a long transfer's progress) go
	// to the host as the step's logs.
	ctx = storage.WithLogger(ctx, rep.Log)
	return op.Run(ctx, r, rep)
}

// reporter streams events for one Run. gRPC streams are not safe for
// concurrent Send, and an op may report from several goroutines, so sends are
// serialised; once the result is sent, later reports are dropped.
type reporter struct {
	mu     sync.Mutex
	stream grpc.ServerStreamingServer[pluginpb.RunEvent]
	level  int
	done   bool
}

func (r *reporter) send(ev *pluginpb.RunEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	return r.stream.Send(ev)
}

func (r *reporter) Progress(done, total float64, unit, msg string) {
	// A failed send means the host went away; the op's context is cancelled
	// then, so there is nothing useful to do with the error here.
	_ = r.send(&pluginpb.RunEvent{Event: &pluginpb.RunEvent_Progress{Progress: &pluginpb.Progress{
		Done: done, Total: total, Unit: unit, Message: msg,
	}}})
}

func (r *reporter) Log(level, msg string, kv ...string) {
	level = strings.ToLower(level)
	if levelRank(level) < r.level {
		return
	}
	var fields map[string]string
	if len(kv) > 0 {
		fields = make(map[string]string, (len(kv)+1)/2)
		for i := 0; i < len(kv); i += 2 {
			if i+1 < len(kv) {
				fields[kv[i]] = kv[i+1]
			} else {
				fields[kv[i]] = "" // odd count: keep the key rather than lose it
			}
		}
	}
	_ = r.send(&pluginpb.RunEvent{Event: &pluginpb.RunEvent_Log{Log: &pluginpb.Log{
		Level: level, Message: msg, Fields: fields,
	}}})
}

// finish sends the result event and stops further reports.
func (r *reporter) finish(opErr error) error {
	res := &pluginpb.Result{}
	if opErr == nil {
		res.Outcome = &pluginpb.Result_Ok{Ok: &pluginpb.Ok{}}
	} else {
		res.Outcome = &pluginpb.Result_Error{Error: toDiagnostic(opErr)}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	if err := r.stream.Send(&pluginpb.RunEvent{Event: &pluginpb.RunEvent_Result{Result: res}}); err != nil {
		return fmt.Errorf("send result: %w", err)
	}
	return nil
}

func toDiagnostic(err error) *pluginpb.Diagnostic {
	d := &pluginpb.Diagnostic{Summary: err.Error()}
	var diag *Diagnostic
	if errors.As(err, &diag) {
		d.Detail = diag.Detail
		d.Attribute = diag.Attribute
	}
	if d.Summary == "" {
		d.Summary = "op failed with an empty error message"
	}
	return d
}

// Log levels in order; an unknown level counts as info so it is not lost.
var levelRanks = map[string]int{"trace": 0, "debug": 1, "info": 2, "warn": 3, "warning": 3, "error": 4, "fatal": 5, "panic": 6}

func levelRank(level string) int {
	if r, ok := levelRanks[strings.ToLower(level)]; ok {
		return r
	}
	return levelRanks["info"]
}

// requestLevel is the level to log at: the request's, else the one the host
// put in the environment, else info.
func requestLevel(level string) string {
	for _, l := range []string{level, os.Getenv(LogLevelEnv)} {
		if _, ok := levelRanks[strings.ToLower(l)]; ok {
			return strings.ToLower(l)
		}
	}
	return "info"
}
