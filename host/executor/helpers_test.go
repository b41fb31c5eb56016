package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
)

func TestMain(m *testing.M) {
	// Re-executed as a lease holder that is then killed (see
	// TestKilledHolderIsTakenOver).
	if prefix := os.Getenv(holderEnv); prefix != "" {
		os.Exit(holderProcess(prefix))
	}
	os.Exit(m.Run())
}

// fakeRunner serves every op in-process, counting executions per step.
type fakeRunner struct {
	mu        sync.Mutex
	counts    map[string]int
	starts    map[string]time.Time
	inflight  map[string]int
	overlaps  []string // steps that ran twice at the same time
	fail      map[string]string
	unserved  map[string]bool
	delay     time.Duration
	jitter    func(step string) time.Duration
	block     map[string]chan struct{} // closed when the step starts; the op then waits for ctx
	events    bool
	lastReq   map[string]RunRequest
	resolveOp []string
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{
		counts:   map[string]int{},
		starts:   map[string]time.Time{},
		inflight: map[string]int{},
		fail:     map[string]string{},
		unserved: map[string]bool{},
		block:    map[string]chan struct{}{},
		lastReq:  map[string]RunRequest{},
	}
}

func (f *fakeRunner) Resolve(op string) (PluginRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolveOp = append(f.resolveOp, op)
	if f.unserved[op] {
		return PluginRef{}, fmt.Errorf("no plugin serves op %q", op)
	}
	return PluginRef{Name: "fake", Kind: "generic", Version: "0.1", Path: "builtin"}, nil
}

func (f *fakeRunner) Run(ctx context.Context, req RunRequest, report func(Event)) error {
	f.mu.Lock()
	f.counts[req.StepName]++
	f.starts[req.StepName] = time.Now()
	f.inflight[req.StepName]++
	if f.inflight[req.StepName] > 1 {
		f.overlaps = append(f.overlaps, req.StepName)
	}
	f.lastReq[req.StepName] = req
	failMsg := f.fail[req.StepName]
	block := f.block[req.StepName]
	d := f.delay
	if f.jitter != nil {
		d += f.jitter(req.StepName)
	}
	events := f.events
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight[req.StepName]--
		f.mu.Unlock()
	}()
	if events {
		report(Event{Kind: EventProgress, Done: 1, Total: 2, Unit: "rows"})
		report(Event{Kind: EventLog, Level: "info", Message: "halfway", Fields: map[string]string{"k": "v"}})
	}
	// The op writes its output, as a plugin would.
	if err := storage.WriteAtomic(ctx, storage.Join(req.OutputPath, "out.txt"), []byte(req.StepName)); err != nil {
		return err
	}
	if block != nil {
		close(block)
		<-ctx.Done()
		return ctx.Err()
	}
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if failMsg != "" {
		return errors.New(failMsg)
	}
	return nil
}

func (f *fakeRunner) count(step string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[step]
}

func (f *fakeRunner) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.counts {
		n += c
	}
	return n
}

// stepSet is a small experiment: raw → docs → tok → train, plus an
// independent eval step.
type stepSet struct {
	raw, docs, tok, train, eval *graph.Step
}

func newStepSet(lr float64) *stepSet {
	s := &stepSet{}
	s.raw = &graph.Step{Name: "raw/tulu", Op: "dataset/download", Config: map[string]any{
		"id": "allenai/tulu-3-sft-mixture", "revision": "abc",
		"workers": graph.Unversioned{Value: int64(4)},
	}}
	s.docs = &graph.Step{Name: "documents/tulu", Op: "dataset/transform", Config: map[string]any{
		"input": &graph.InputRef{Step: s.raw}, "shard_rows": int64(5000),
	}}
	s.tok = &graph.Step{Name: "tokenized/tulu", Op: "tokenize", Config: map[string]any{
		"input": &graph.InputRef{Step: s.docs}, "tokenizer": "meta-llama/Llama-3.1-8B",
		"format": map[string]any{"name": "llama3", "mask_user_turns": true},
	}}
	s.train = &graph.Step{Name: "checkpoints/sft", Op: "train", Config: map[string]any{
		"data":      &graph.InputRef{Step: s.tok},
		"optimizer": map[string]any{"learning_rate": lr, "weight_decay": 0.0},
		"seed":      int64(1),
		"output":    graph.ThisOutput{Sub: "hf"},
	}}
	s.eval = &graph.Step{Name: "eval/smoke", Op: "eval", Config: map[string]any{"n": int64(3)}}
	return s
}

func (s *stepSet) roots() []*graph.Step { return []*graph.Step{s.train, s.eval} }

func mustBuild(t testing.TB, prefix string, roots []*graph.Step) *graph.Plan {
	t.Helper()
	p, err := graph.Build(prefix, roots)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// filePrefix returns a file:// prefix in a fresh temp dir.
func filePrefix(t testing.TB) string {
	t.Helper()
	u, err := storage.NormalizeURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return u + "/marin-output"
}

func memPrefix(t testing.TB) string {
	root := storage.NewMemURL(t.Name())
	t.Cleanup(func() { storage.DropMem(root) })
	return root + "/out"
}

// testOpts are options with short lease timings.
func testOpts(r Runner, holder string) Options {
	return Options{
		Runner:     r,
		Holder:     holder,
		Heartbeat:  50 * time.Millisecond,
		StaleAfter: 5 * time.Second,
		Poll:       10 * time.Millisecond,
	}
}

func decisionsByName(ds []Decision) map[string]Decision {
	m := map[string]Decision{}
	for _, d := range ds {
		m[d.Name] = d
	}
	return m
}

func wantDecisions(t *testing.T, ds []Decision, want map[string]DecisionKind) {
	t.Helper()
	got := decisionsByName(ds)
	if len(got) != len(want) {
		t.Errorf("%d decisions, want %d: %+v", len(got), len(want), ds)
	}
	for name, w := range want {
		if got[name].Decision != w {
			t.Errorf("step %s: decision %q (%s), want %q", name, got[name].Decision, got[name].Reason, w)
		}
	}
}

func historyOf(t *testing.T, outputPath string) []StatusEntry {
	t.Helper()
	h, err := ReadStatus(context.Background(), outputPath)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func statuses(h []StatusEntry) string {
	var s []string
	for _, e := range h {
		s = append(s, string(e.Status))
	}
	return strings.Join(s, ",")
}

// lockFiles lists lease and steal-marker files left under a step's output.
func lockFiles(t *testing.T, outputPath string) []string {
	t.Helper()
	ents, err := storage.List(context.Background(), storage.Join(outputPath, LockFile), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.URL)
	}
	sort.Strings(out)
	return out
}

type recordingProgress struct {
	mu       sync.Mutex
	started  map[string]int
	finished map[string]Status
	events   map[string]int
}

func newRecordingProgress() *recordingProgress {
	return &recordingProgress{started: map[string]int{}, finished: map[string]Status{}, events: map[string]int{}}
}

func (p *recordingProgress) StepStarted(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started[name]++
}

func (p *recordingProgress) StepEvent(name string, ev Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events[name]++
}

func (p *recordingProgress) StepFinished(name string, s Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finished[name] = s
}
