package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
)

func mustRegexps(t *testing.T, pats ...string) []*regexp.Regexp {
	t.Helper()
	var out []*regexp.Regexp
	for _, p := range pats {
		out = append(out, regexp.MustCompile(p))
	}
	return out
}

func TestRunWritesStepFiles(t *testing.T) {
	ctx := context.Background()
	prefix := filePrefix(t)
	s := newStepSet(1e-5)
	plan := mustBuild(t, prefix, s.roots())
	r := newFakeRunner()
	r.events = true
	prog := newRecordingProgress()
	var logs strings.Builder
	opts := testOpts(r, "me")
	opts.Progress = prog
	opts.Logger = zerolog.New(&syncWriter{w: &logs})
	opts.MarinVersion = "0.1.0-test"
	opts.ScriptName = filepath.Join(t.TempDir(), "exp606_sft.star")

	rep, err := Run(ctx, plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range rep.Steps {
		if res.Status != StatusSuccess || !res.Ran {
			t.Errorf("step %s: %s ran=%v (%s)", res.Name, res.Status, res.Ran, res.Message)
		}
		if r.count(res.Name) != 1 {
			t.Errorf("step %s ran %d times", res.Name, r.count(res.Name))
		}
		if prog.started[res.Name] != 1 || prog.finished[res.Name] != StatusSuccess || prog.events[res.Name] != 2 {
			t.Errorf("progress for %s: started %d finished %q events %d", res.Name, prog.started[res.Name], prog.finished[res.Name], prog.events[res.Name])
		}
	}

	train := plan.Lookup(s.train)
	info, err := ReadInfo(ctx, train.OutputPath)
	if err != nil {
		t.Fatal(err)
	}
	tok := plan.Lookup(s.tok)
	if info.Name != "checkpoints/sft" || info.Op != "train" || info.Plugin.Name != "fake" ||
		info.OutputPath != train.OutputPath || info.MarinVersion != "0.1.0-test" ||
		len(info.Dependencies) != 1 || info.Dependencies[0] != tok.OutputPath {
		t.Errorf("info = %+v", info)
	}
	if info.Config["data"] != tok.OutputPath || info.Config["output"] != train.OutputPath+"/hf" {
		t.Errorf("info config = %v", info.Config)
	}
	if v, _ := graph.CanonicalJSON(info.Version); string(v) != string(train.VersionJSON) {
		t.Errorf("info version %s, want %s", v, train.VersionJSON)
	}
	// Unversioned values are recorded in the config although not hashed.
	rawInfo, _ := ReadInfo(ctx, plan.Lookup(s.raw).OutputPath)
	if rawInfo.Config["workers"] != float64(4) {
		t.Errorf("raw info config = %v", rawInfo.Config)
	}

	h := historyOf(t, train.OutputPath)
	if statuses(h) != "RUNNING,SUCCESS" || h[0].Holder != "me" || h[0].Time.IsZero() || h[0].Message != "attempt 1" {
		t.Errorf("history = %+v", h)
	}
	raw, _ := storage.ReadAll(ctx, storage.Join(train.OutputPath, StatusFile))
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("status line %q: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
			t.Fatalf("status time: %v", err)
		}
	}
	if lf := lockFiles(t, train.OutputPath); len(lf) != 0 {
		t.Errorf("lease files left: %v", lf)
	}
	req := r.lastReq["checkpoints/sft"]
	if req.Attempt != 1 || req.Prefix != prefix || req.OutputPath != train.OutputPath || req.Config["data"] != tok.OutputPath {
		t.Errorf("request = %+v", req)
	}

	// The experiment record.
	var rel []string
	for _, st := range plan.Steps {
		rel = append(rel, st.RelPath)
	}
	expURL := ExperimentURL(prefix, opts.ScriptName, rel)
	if rep.Experiment != expURL || !strings.Contains(expURL, "/experiments/exp606_sft-") {
		t.Fatalf("experiment %q, want %q", rep.Experiment, expURL)
	}
	data, err := storage.ReadAll(ctx, expURL)
	if err != nil {
		t.Fatal(err)
	}
	var rec ExperimentRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Script != opts.ScriptName || rec.GitCommit != "" || rec.MarinVersion != "0.1.0-test" || rec.Hostname == "" || rec.Date.IsZero() || len(rec.Steps) != 5 {
		t.Errorf("record = %+v", rec)
	}
	for _, st := range rec.Steps {
		if st.Status != StatusSuccess || st.Version["name"] != st.Name {
			t.Errorf("record step %+v", st)
		}
	}

	// Logs: start and finish of every step, with fields.
	var starts, finishes, pluginLines int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch m["message"] {
		case "step started":
			starts++
		case "step finished":
			finishes++
			if m["step"] == nil || m["op"] == nil || m["path"] == nil || m["duration"] == nil {
				t.Errorf("finish line lacks fields: %s", line)
			}
		case "halfway":
			// Plugin log events are the Runner's to log, not the executor's.
			pluginLines++
		}
	}
	if starts != 5 || finishes != 5 || pluginLines != 0 {
		t.Errorf("logs: %d starts, %d finishes, %d plugin lines:\n%s", starts, finishes, pluginLines, logs.String())
	}

	// A second run skips everything.
	rep, err = Run(ctx, plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range rep.Steps {
		if res.Status != StatusSuccess || res.Ran || res.Decision != DecisionSkip {
			t.Errorf("second run: %+v", res)
		}
	}
	if r.total() != 5 {
		t.Errorf("second run executed ops: %d total", r.total())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestExperimentRecordsGitCommit(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@e")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Skipf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	script := filepath.Join(dir, "exp.star")
	if err := os.WriteFile(script, []byte("# exp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "exp.star")
	git("commit", "-q", "-m", "exp")
	head := git("rev-parse", "HEAD")
	if got := gitCommit(context.Background(), script); got != head {
		t.Fatalf("gitCommit = %q, want %q", got, head)
	}
}

// chain builds a → b → c plus an independent d → e.
func failureGraph() (a, b, c, d, e *graph.Step) {
	a = &graph.Step{Name: "raw/a", Op: "download", Config: map[string]any{"x": int64(1)}}
	b = &graph.Step{Name: "tokenized/b", Op: "tokenize", Config: map[string]any{"in": &graph.InputRef{Step: a}}}
	c = &graph.Step{Name: "checkpoints/c", Op: "train", Config: map[string]any{"in": &graph.InputRef{Step: b}}}
	d = &graph.Step{Name: "raw/d", Op: "download", Config: map[string]any{"x": int64(2)}}
	e = &graph.Step{Name: "tokenized/e", Op: "tokenize", Config: map[string]any{"in": &graph.InputRef{Step: d}}}
	return
}

func TestFailureMarksDependentsAndRerunFinishes(t *testing.T) {
	ctx := context.Background()
	a, b, c, d, e := failureGraph()
	plan := mustBuild(t, filePrefix(t), []*graph.Step{c, e})
	r := newFakeRunner()
	r.fail[b.Name] = "tokenizer exploded"
	opts := testOpts(r, "me")

	rep, err := Run(ctx, plan, opts)
	var re *RunError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RunError", err)
	}
	pb, pc := plan.Lookup(b), plan.Lookup(c)
	want := fmt.Sprintf("1 step(s) failed: [%s]; 1 step(s) not run because a dependency failed: [%s]", pb.RelPath, pc.RelPath)
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	got := map[string]StepResult{}
	for _, s := range rep.Steps {
		got[s.Name] = s
	}
	for name, st := range map[string]Status{a.Name: StatusSuccess, b.Name: StatusFailed, c.Name: StatusDepFailed, d.Name: StatusSuccess, e.Name: StatusSuccess} {
		if got[name].Status != st {
			t.Errorf("step %s: %s (%s), want %s", name, got[name].Status, got[name].Message, st)
		}
	}
	if got[b.Name].Message != "tokenizer exploded" {
		t.Errorf("failed step message %q", got[b.Name].Message)
	}
	if h := historyOf(t, pb.OutputPath); statuses(h) != "RUNNING,FAILED" || h[1].Message != "tokenizer exploded" {
		t.Errorf("b history %+v", h)
	}
	if h := historyOf(t, pc.OutputPath); statuses(h) != "DEP_FAILED" || !strings.Contains(h[0].Message, pb.RelPath) {
		t.Errorf("c history %+v", h)
	}
	if r.count(c.Name) != 0 {
		t.Errorf("dependent of a failed step ran")
	}
	for _, st := range plan.Steps {
		if lf := lockFiles(t, st.OutputPath); len(lf) != 0 {
			t.Errorf("lease files left: %v", lf)
		}
	}

	// With force_run_failed off, the failure blocks instead of rerunning.
	opts.ForceRunFailed = Bool(false)
	_, err = Run(ctx, plan, opts)
	if !errors.As(err, &re) || len(re.Failed) != 1 || re.Failed[0] != pb.RelPath || len(re.DepFailed) != 1 {
		t.Fatalf("blocked run: %v", err)
	}
	if r.count(b.Name) != 1 {
		t.Fatalf("blocked step ran")
	}

	// Fix the op; the rerun finishes the graph without redoing a, d, e.
	opts.ForceRunFailed = nil
	r.mu.Lock()
	delete(r.fail, b.Name)
	r.mu.Unlock()
	rep, err = Run(ctx, plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{a.Name: 1, b.Name: 2, c.Name: 1, d.Name: 1, e.Name: 1} {
		if r.count(name) != n {
			t.Errorf("step %s ran %d times in total, want %d", name, r.count(name), n)
		}
	}
	for _, s := range rep.Steps {
		if s.Status != StatusSuccess {
			t.Errorf("rerun: %+v", s)
		}
	}
	if h := historyOf(t, pb.OutputPath); statuses(h) != "RUNNING,FAILED,RUNNING,SUCCESS" || h[2].Message != "attempt 2" {
		t.Errorf("b history after rerun %+v", h)
	}
	if r.lastReq[b.Name].Attempt != 2 {
		t.Errorf("attempt = %d", r.lastReq[b.Name].Attempt)
	}
	if h := historyOf(t, pc.OutputPath); statuses(h) != "DEP_FAILED,RUNNING,SUCCESS" {
		t.Errorf("c history after rerun %+v", h)
	}
}

func TestUnservedOpFailsBeforeAnythingRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	prefix, _ := storage.NormalizeURL(dir)
	_, _, c, _, e := failureGraph()
	plan := mustBuild(t, prefix, []*graph.Step{c, e})
	r := newFakeRunner()
	r.unserved["tokenize"] = true
	r.unserved["train"] = true
	_, err := Run(ctx, plan, testOpts(r, "me"))
	var ue *UnservedOpsError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnservedOpsError", err)
	}
	for _, want := range []string{`op "tokenize" (step tokenized/b, tokenized/e)`, `op "train" (step checkpoints/c)`, `no plugin serves op "train"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if r.total() != 0 {
		t.Fatalf("%d ops ran", r.total())
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 0 {
		t.Fatalf("prefix holds %d entries (%v), want none", len(ents), err)
	}
	// Steps already done need no plugin.
	r2 := newFakeRunner()
	if _, err := Run(ctx, plan, testOpts(r2, "me")); err != nil {
		t.Fatal(err)
	}
	r.unserved["download"] = true
	if _, err := Run(ctx, plan, testOpts(r, "me")); err != nil {
		t.Fatalf("all steps done, yet: %v", err)
	}
}

func TestInterruptMarksRunningStepFailed(t *testing.T) {
	prefix := memPrefix(t)
	a, b, c, _, _ := failureGraph()
	plan := mustBuild(t, prefix, []*graph.Step{c})
	r := newFakeRunner()
	started := make(chan struct{})
	r.block[b.Name] = started
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	rep, err := Run(ctx, plan, testOpts(r, "me"))
	var re *RunError
	if !errors.As(err, &re) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	res := map[string]StepResult{}
	for _, s := range rep.Steps {
		res[s.Name] = s
	}
	if res[a.Name].Status != StatusSuccess || res[b.Name].Status != StatusFailed || res[b.Name].Message != "interrupted" || res[c.Name].Status != StatusNotRun {
		t.Fatalf("results %+v", rep.Steps)
	}
	pb := plan.Lookup(b)
	if h := historyOf(t, pb.OutputPath); statuses(h) != "RUNNING,FAILED" || h[1].Message != "interrupted" {
		t.Fatalf("history %+v", h)
	}
	if lf := lockFiles(t, pb.OutputPath); len(lf) != 0 {
		t.Fatalf("lease not released: %v", lf)
	}
	if h := historyOf(t, plan.Lookup(c).OutputPath); len(h) != 0 {
		t.Fatalf("a step after the interruption was touched: %+v", h)
	}
}

func TestLostLeaseStopsStepAndWaitsForTaker(t *testing.T) {
	ctx := context.Background()
	prefix := memPrefix(t)
	a, b, c, _, _ := failureGraph()
	plan := mustBuild(t, prefix, []*graph.Step{c})
	pb := plan.Lookup(b)
	r := newFakeRunner()
	started := make(chan struct{})
	r.block[b.Name] = started
	thief := Lease{Holder: "thief", LeaseID: "stolen", Heartbeat: time.Now()}
	go func() {
		<-started
		// Another process took the lease (as if this one had stalled)...
		data, _ := json.Marshal(thief)
		if err := storage.WriteAtomic(ctx, storage.Join(pb.OutputPath, LockFile), data); err != nil {
			t.Error(err)
			return
		}
		// ...and, holding it, finishes the step.
		time.Sleep(200 * time.Millisecond)
		if err := appendStatus(ctx, pb.OutputPath, StatusEntry{Status: StatusSuccess, Time: time.Now(), Holder: "thief"}); err != nil {
			t.Error(err)
		}
		_ = storage.Delete(ctx, storage.Join(pb.OutputPath, LockFile))
	}()
	rep, err := Run(ctx, plan, testOpts(r, "me"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Steps {
		if s.Status != StatusSuccess {
			t.Fatalf("%+v", s)
		}
		if s.Name == b.Name && (s.Ran || !strings.Contains(s.Message, "thief")) {
			t.Fatalf("b: %+v", s)
		}
	}
	if h := historyOf(t, pb.OutputPath); statuses(h) != "RUNNING,SUCCESS" || h[1].Holder != "thief" {
		t.Fatalf("the holder that lost its lease wrote a status: %+v", h)
	}
	if r.count(a.Name) != 1 || r.count(c.Name) != 1 {
		t.Fatalf("counts %v", r.counts)
	}
}

// bigGraph builds n steps: chains of three, independent steps and fan-in
// steps that read several chain ends.
func bigGraph(n int, seed int64) []*graph.Step {
	rng := rand.New(rand.NewSource(seed))
	var all, ends []*graph.Step
	for len(all) < n {
		switch k := len(all) % 10; {
		case k < 6 && len(all)+3 <= n:
			var prev *graph.Step
			for j := 0; j < 3; j++ {
				cfg := map[string]any{"i": int64(len(all)), "lr": rng.Float64()}
				if prev != nil {
					cfg["in"] = &graph.InputRef{Step: prev}
				}
				s := &graph.Step{Name: fmt.Sprintf("chain/s%03d", len(all)), Op: "op", Config: cfg}
				all = append(all, s)
				prev = s
			}
			ends = append(ends, prev)
		case k < 8 || len(ends) == 0:
			all = append(all, &graph.Step{Name: fmt.Sprintf("solo/s%03d", len(all)), Op: "op", Config: map[string]any{"i": int64(len(all))}})
		default:
			var ins []any
			for j := 0; j < 3; j++ {
				ins = append(ins, &graph.InputRef{Step: ends[rng.Intn(len(ends))]})
			}
			all = append(all, &graph.Step{Name: fmt.Sprintf("fanin/s%03d", len(all)), Op: "op", Config: map[string]any{"i": int64(len(all)), "ins": ins}})
		}
	}
	return all
}

func TestTwoExecutorsRunEachStepExactlyOnce(t *testing.T) {
	for round := 0; round < 4; round++ {
		prefix := filePrefix(t)
		if round%2 == 1 {
			prefix = memPrefix(t)
		}
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			steps := bigGraph(50, int64(round))
			plan := mustBuild(t, prefix, steps)
			if len(plan.Steps) != 50 {
				t.Fatalf("%d planned steps", len(plan.Steps))
			}
			r := newFakeRunner()
			var jmu sync.Mutex
			rng := rand.New(rand.NewSource(int64(round)))
			r.jitter = func(string) time.Duration {
				jmu.Lock()
				defer jmu.Unlock()
				return time.Duration(rng.Intn(8)) * time.Millisecond
			}
			reports := make([]*Report, 2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, holder := range []string{"host-a:1:aa", "host-b:2:bb"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					opts := testOpts(r, holder)
					opts.MaxConcurrent = 4
					reports[i], errs[i] = Run(context.Background(), plan, opts)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("executor %d: %v", i, err)
				}
			}
			ran := 0
			for _, rep := range reports {
				for _, s := range rep.Steps {
					if s.Status != StatusSuccess {
						t.Errorf("%s: %s %s", rep.Holder, s.Name, s.Status)
					}
					if s.Ran {
						ran++
					}
				}
			}
			if ran != 50 {
				t.Errorf("reports claim %d executions, want 50", ran)
			}
			for _, st := range plan.Steps {
				if n := r.count(st.Step.Name); n != 1 {
					t.Errorf("step %s executed %d times", st.Step.Name, n)
				}
				if h := historyOf(t, st.OutputPath); statuses(h) != "RUNNING,SUCCESS" || h[0].Holder != h[1].Holder {
					t.Errorf("step %s history %+v", st.Step.Name, h)
				}
				if lf := lockFiles(t, st.OutputPath); len(lf) != 0 {
					t.Errorf("lease files left: %v", lf)
				}
			}
			if len(r.overlaps) > 0 {
				t.Errorf("steps executed concurrently with themselves: %v", r.overlaps)
			}
			t.Logf("executions: %s ran %d, %s ran %d", reports[0].Holder, ranBy(reports[0]), reports[1].Holder, ranBy(reports[1]))
		})
	}
}

func ranBy(r *Report) int {
	n := 0
	for _, s := range r.Steps {
		if s.Ran {
			n++
		}
	}
	return n
}

func TestMaxConcurrentBoundsRunningSteps(t *testing.T) {
	var steps []*graph.Step
	for i := 0; i < 12; i++ {
		steps = append(steps, &graph.Step{Name: fmt.Sprintf("solo/%d", i), Op: "op", Config: map[string]any{"i": int64(i)}})
	}
	plan := mustBuild(t, memPrefix(t), steps)
	cr := &concurrencyRunner{fakeRunner: newFakeRunner()}
	opts := testOpts(cr, "me")
	opts.MaxConcurrent = 3
	if _, err := Run(context.Background(), plan, opts); err != nil {
		t.Fatal(err)
	}
	if cr.peak != 3 {
		t.Fatalf("peak concurrency %d, want 3", cr.peak)
	}
}

type concurrencyRunner struct {
	*fakeRunner
	mu        sync.Mutex
	cur, peak int
}

func (c *concurrencyRunner) Run(ctx context.Context, req RunRequest, report func(Event)) error {
	c.mu.Lock()
	c.cur++
	c.peak = max(c.peak, c.cur)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur--
		c.mu.Unlock()
	}()
	time.Sleep(20 * time.Millisecond)
	return c.fakeRunner.Run(ctx, req, report)
}

func TestStepTimeoutFailsStep(t *testing.T) {
	s := &graph.Step{Name: "slow", Op: "op", Config: map[string]any{}, Timeout: 50 * time.Millisecond}
	plan := mustBuild(t, memPrefix(t), []*graph.Step{s})
	r := newFakeRunner()
	r.block[s.Name] = make(chan struct{})
	rep, err := Run(context.Background(), plan, testOpts(r, "me"))
	if err == nil || rep.Steps[0].Status != StatusFailed || !strings.Contains(rep.Steps[0].Message, "timed out after 50ms") {
		t.Fatalf("err %v, result %+v", err, rep.Steps)
	}
	if r.lastReq[s.Name].Deadline != 50*time.Millisecond {
		t.Fatalf("deadline not passed to the runner")
	}
}

// A step that runs longer than one bookkeeping write may take still gets
// its SUCCESS recorded (the writes after it must not share a deadline that
// started before it).
func TestLongStepRecordsSuccess(t *testing.T) {
	old := cleanupTimeout
	cleanupTimeout = 100 * time.Millisecond
	defer func() { cleanupTimeout = old }()
	s := &graph.Step{Name: "long", Op: "op", Config: map[string]any{}}
	plan := mustBuild(t, memPrefix(t), []*graph.Step{s})
	r := newFakeRunner()
	r.delay = 300 * time.Millisecond
	rep, err := Run(context.Background(), plan, testOpts(r, "me"))
	if err != nil || rep.Steps[0].Status != StatusSuccess {
		t.Fatalf("err %v, result %+v", err, rep.Steps)
	}
}

type panicRunner struct{ *fakeRunner }

func (panicRunner) Run(context.Context, RunRequest, func(Event)) error { panic("boom") }

func TestRunnerPanicFailsStep(t *testing.T) {
	s := &graph.Step{Name: "p", Op: "op", Config: map[string]any{}}
	plan := mustBuild(t, memPrefix(t), []*graph.Step{s})
	rep, err := Run(context.Background(), plan, testOpts(panicRunner{newFakeRunner()}, "me"))
	if err == nil || rep.Steps[0].Status != StatusFailed || !strings.Contains(rep.Steps[0].Message, "boom") {
		t.Fatalf("err %v, result %+v", err, rep.Steps)
	}
}

func TestStepFailedElsewhereIsNotRetriedInTheSameRun(t *testing.T) {
	ctx := context.Background()
	prefix := memPrefix(t)
	a, b, c, _, _ := failureGraph()
	plan := mustBuild(t, prefix, []*graph.Step{c})
	pb := plan.Lookup(b)
	// Another process is running b.
	writeLease(t, pb.OutputPath, Lease{Holder: "other", LeaseID: "o1", Heartbeat: time.Now()})
	if err := appendStatus(ctx, pb.OutputPath, StatusEntry{Status: StatusRunning, Time: time.Now(), Holder: "other"}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		if err := appendStatus(ctx, pb.OutputPath, StatusEntry{Status: StatusFailed, Time: time.Now(), Holder: "other", Message: "oom"}); err != nil {
			t.Error(err)
		}
		_ = storage.Delete(ctx, storage.Join(pb.OutputPath, LockFile))
	}()
	r := newFakeRunner()
	rep, err := Run(ctx, plan, testOpts(r, "me"))
	var re *RunError
	if !errors.As(err, &re) || len(re.Failed) != 1 || re.Failed[0] != pb.RelPath {
		t.Fatalf("err = %v", err)
	}
	res := map[string]StepResult{}
	for _, s := range rep.Steps {
		res[s.Name] = s
	}
	if res[b.Name].Status != StatusFailed || !strings.Contains(res[b.Name].Message, "failed on other: oom") || res[b.Name].Ran {
		t.Fatalf("b: %+v", res[b.Name])
	}
	if res[c.Name].Status != StatusDepFailed || r.count(b.Name) != 0 || r.count(a.Name) != 1 {
		t.Fatalf("c: %+v, counts %v", res[c.Name], r.counts)
	}
	// b's history is the other holder's alone.
	if h := historyOf(t, pb.OutputPath); statuses(h) != "RUNNING,FAILED" {
		t.Fatalf("history %+v", h)
	}
}
