package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/host/runner"
	"github.com/marin-go/marin/plugins/storage"
)

// fakeCluster is a runner.Runner whose jobs run RunJob in goroutines, as
// `marin run-step` would on a node, with the node's plugins in nodes.
type fakeCluster struct {
	nodes Runner

	mu     sync.Mutex
	jobs   []*fakeJob
	byStep map[string][]*fakeJob
	// hold keeps new jobs pending until release is closed.
	hold    bool
	release chan struct{}
	// kill makes the scheduler end a step's job, once it runs, with this
	// reason (as a node failure or scancel would), once.
	kill map[string]string
	// hang makes a step's job adopt the lease and then stop heartbeating
	// while the scheduler reports it running.
	hang map[string]bool
	// submitted is signalled with the step name of every submission.
	submitted chan string
}

func newFakeCluster(nodes Runner) *fakeCluster {
	return &fakeCluster{nodes: nodes, byStep: map[string][]*fakeJob{}, release: make(chan struct{}),
		kill: map[string]string{}, hang: map[string]bool{}, submitted: make(chan string, 100)}
}

func (c *fakeCluster) Name() string { return "fake" }

func (c *fakeCluster) Describe(spec runner.Spec) (string, error) {
	if spec.Resources.Partition == "nowhere" {
		return "", errors.New("no partition nowhere")
	}
	return fmt.Sprintf("nodes=%d cpus=%d partition=%s", spec.Resources.Nodes, spec.Resources.CPUs, spec.Resources.Partition), nil
}

func (c *fakeCluster) Submit(ctx context.Context, spec runner.Spec) (runner.Job, error) {
	c.mu.Lock()
	j := &fakeJob{c: c, id: fmt.Sprintf("fake job %d", len(c.jobs)+1), spec: spec, state: runner.State{Phase: runner.Pending, Reason: "Priority"}, done: make(chan struct{})}
	c.jobs = append(c.jobs, j)
	c.byStep[spec.StepName] = append(c.byStep[spec.StepName], j)
	hold, kill, hang := c.hold, c.kill[spec.StepName], c.hang[spec.StepName]
	delete(c.kill, spec.StepName)
	c.mu.Unlock()
	var jctx context.Context
	jctx, j.cancel = context.WithCancel(context.Background())
	go j.run(jctx, hold, kill, hang)
	c.submitted <- spec.StepName
	return j, nil
}

func (c *fakeCluster) jobsOf(step string) []*fakeJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*fakeJob(nil), c.byStep[step]...)
}

type fakeJob struct {
	c    *fakeCluster
	id   string
	spec runner.Spec

	mu        sync.Mutex
	state     runner.State
	cancelled bool
	finished  *bool
	runErr    error
	cancel    context.CancelFunc
	done      chan struct{}
}

func (j *fakeJob) set(s runner.State) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.state.Phase.Done() {
		j.state = s
	}
}

func (j *fakeJob) run(ctx context.Context, hold bool, kill string, hang bool) {
	defer close(j.done)
	if hold {
		select {
		case <-j.c.release:
		case <-ctx.Done():
			j.set(runner.State{Phase: runner.Failed, Reason: "CANCELLED"})
			return
		}
	}
	j.set(runner.State{Phase: runner.Running, Nodes: "node1"})
	if hang {
		jf, err := ReadJobFile(ctx, j.spec.JobURL)
		if err != nil {
			panic(err)
		}
		l := jf.Lease
		l.Holder = "node1:hung"
		data, _ := json.Marshal(l)
		if err := storage.WriteAtomic(ctx, storage.Join(j.spec.OutputPath, LockFile), data); err != nil {
			panic(err)
		}
		<-ctx.Done()
		j.set(runner.State{Phase: runner.Failed, Reason: "CANCELLED"})
		return
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	if kill != "" {
		go func() {
			// The scheduler kills the job once the op is under way.
			for {
				if j.c.nodes.(*fakeRunner).count(j.spec.StepName) > 0 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			j.set(runner.State{Phase: runner.Failed, Reason: kill})
			stop()
		}()
	}
	err := RunJob(rctx, j.spec.JobURL, JobOptions{Runner: j.c.nodes, Logger: zerolog.Nop(), Where: j.id + " on node1"})
	j.mu.Lock()
	j.runErr = err
	j.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		j.set(runner.State{Phase: runner.Failed, Reason: "CANCELLED"})
	case err != nil:
		j.set(runner.State{Phase: runner.Failed, Reason: "FAILED (exit code 1:0)"})
	default:
		j.set(runner.State{Phase: runner.Succeeded})
	}
}

func (j *fakeJob) ID() string { return j.id }
func (j *fakeJob) State(context.Context) (runner.State, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state, nil
}
func (j *fakeJob) Cancel(context.Context) error {
	j.mu.Lock()
	j.cancelled = true
	j.mu.Unlock()
	j.cancel()
	return nil
}
func (j *fakeJob) Logs(context.Context, int) string { return "last words of " + j.id }
func (j *fakeJob) Finish(_ context.Context, ok bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.finished = &ok
	return nil
}

func remoteOpts(nodes Runner, c *fakeCluster, holder string) Options {
	o := testOpts(nodes, holder)
	o.Remote = c
	o.SharedPrefix = true
	return o
}

func TestRemoteRunsEveryStepAsAJob(t *testing.T) {
	ctx := context.Background()
	s := newStepSet(1e-4)
	s.train.Config["resources"] = graph.Unversioned{Value: map[string]any{"cpus": int64(4), "partition": "gpu"}}
	plan := mustBuild(t, filePrefix(t), s.roots())
	nodes := newFakeRunner()
	nodes.events = true
	host := newFakeRunner() // resolves ops; must never run one
	c := newFakeCluster(nodes)
	prog := newRecordingProgress()
	opts := remoteOpts(host, c, "host-a")
	opts.Progress = prog
	rep, err := Run(ctx, plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	if host.total() != 0 {
		t.Errorf("the submitting process ran %d ops itself", host.total())
	}
	for _, st := range plan.Steps {
		name := st.Step.Name
		if n := nodes.count(name); n != 1 {
			t.Errorf("%s ran %d times on the nodes", name, n)
		}
		h := historyOf(t, st.OutputPath)
		if statuses(h) != "RUNNING,SUCCESS" {
			t.Errorf("%s: history %s", name, statuses(h))
		}
		if h[0].Holder != "host-a" || h[0].Message != "attempt 1 on fake" {
			t.Errorf("%s: RUNNING by %q (%q), want host-a (attempt 1 on fake)", name, h[0].Holder, h[0].Message)
		}
		if h[1].Holder == "host-a" || !strings.Contains(h[1].Message, "on node1") {
			t.Errorf("%s: SUCCESS by %q (%q), want the job's holder and where", name, h[1].Holder, h[1].Message)
		}
		if l := lockFiles(t, st.OutputPath); len(l) != 0 {
			t.Errorf("%s: lock files left: %v", name, l)
		}
		jobs := c.jobsOf(name)
		if len(jobs) != 1 {
			t.Fatalf("%s: %d jobs", name, len(jobs))
		}
		if jobs[0].finished == nil || !*jobs[0].finished {
			t.Errorf("%s: job not finished as succeeded", name)
		}
		jf, err := ReadJobFile(ctx, jobs[0].spec.JobURL)
		if err != nil {
			t.Fatal(err)
		}
		if jf.Request.OutputPath != st.OutputPath || jf.Lease.Holder != "host-a" || jf.Request.Attempt != 1 {
			t.Errorf("%s: job file %+v", name, jf)
		}
		if !strings.HasPrefix(jobs[0].spec.JobURL, st.OutputPath+"/"+JobsDir+"/attempt-1/") {
			t.Errorf("%s: job file at %s", name, jobs[0].spec.JobURL)
		}
		if got := prog.events[name]; got < 2 {
			t.Errorf("%s: %d events reached the display, want the job's progress and log", name, got)
		}
	}
	train := c.jobsOf(s.train.Name)[0].spec.Resources
	if train.CPUs != 4 || train.Partition != "gpu" || train.Nodes != 1 {
		t.Errorf("train's resources %+v", train)
	}
	for _, r := range rep.Steps {
		if !r.Ran || r.Status != StatusSuccess {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
}

func TestRemoteLostJobFailsWithTheSchedulersReasonAndRerunFinishesIt(t *testing.T) {
	ctx := context.Background()
	s := newStepSet(1e-4)
	plan := mustBuild(t, filePrefix(t), s.roots())
	nodes := newFakeRunner()
	nodes.delay = 200 * time.Millisecond
	c := newFakeCluster(nodes)
	c.kill[s.tok.Name] = "NODE_FAIL (a node of the job failed)"
	_, err := Run(ctx, plan, remoteOpts(newFakeRunner(), c, "host-a"))
	var re *RunError
	if !errors.As(err, &re) || len(re.Failed) != 1 || len(re.DepFailed) != 1 {
		t.Fatalf("err %v, want tok failed and train dep-failed", err)
	}
	tok := plan.Lookup(s.tok)
	h := historyOf(t, tok.OutputPath)
	if statuses(h) != "RUNNING,FAILED" {
		t.Fatalf("tok history %s", statuses(h))
	}
	if m := h[1].Message; !strings.Contains(m, "fake job") || !strings.Contains(m, "NODE_FAIL (a node of the job failed)") || h[1].Holder != "host-a" {
		t.Errorf("FAILED entry %+v: want the job and the scheduler's reason, recorded by the submitter", h[1])
	}
	if l := lockFiles(t, tok.OutputPath); len(l) != 0 {
		t.Errorf("lock files left: %v", l)
	}

	// The next run retries it (attempt 2) and finishes the experiment.
	ds, err := Plan(ctx, plan, remoteOpts(newFakeRunner(), c, "host-b"))
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionsByName(ds)[s.tok.Name]; d.Decision != DecisionRun || d.Runner != "fake" || !strings.Contains(d.Reason, "NODE_FAIL") {
		t.Errorf("tok decision %+v", d)
	}
	if _, err := Run(ctx, plan, remoteOpts(newFakeRunner(), c, "host-b")); err != nil {
		t.Fatal(err)
	}
	if h := historyOf(t, tok.OutputPath); statuses(h) != "RUNNING,FAILED,RUNNING,SUCCESS" || h[2].Message != "attempt 2 on fake" {
		t.Errorf("tok history after rerun: %+v", h)
	}
	if n := len(c.jobsOf(s.tok.Name)); n != 2 {
		t.Errorf("tok submitted %d times, want 2", n)
	}
}

func TestRemoteInterruptCancelsTheJobs(t *testing.T) {
	s := newStepSet(1e-4)
	plan := mustBuild(t, filePrefix(t), []*graph.Step{s.eval})
	nodes := newFakeRunner()
	started := make(chan struct{})
	nodes.block[s.eval.Name] = started
	c := newFakeCluster(nodes)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	rep, err := Run(ctx, plan, remoteOpts(newFakeRunner(), c, "host-a"))
	var re *RunError
	if !errors.As(err, &re) || re.Interrupted == nil {
		t.Fatalf("err %v, want an interruption", err)
	}
	j := c.jobsOf(s.eval.Name)[0]
	<-j.done
	if !j.cancelled {
		t.Error("the job was not cancelled")
	}
	out := plan.Lookup(s.eval).OutputPath
	h := historyOf(t, out)
	if statuses(h) != "RUNNING,FAILED" || !strings.Contains(h[1].Message, "interrupted; cancelled fake job 1") {
		t.Errorf("history %+v", h)
	}
	if rep.Steps[0].Message != "interrupted" {
		t.Errorf("result %+v", rep.Steps[0])
	}
	if l := lockFiles(t, out); len(l) != 0 {
		t.Errorf("lock files left: %v", l)
	}
}

// A queued job keeps its lease fresh through its submitter, so a second
// host waits instead of running the step too.
func TestRemoteQueuedJobHoldsTheLeaseAgainstOtherHosts(t *testing.T) {
	ctx := context.Background()
	s := newStepSet(1e-4)
	plan := mustBuild(t, filePrefix(t), []*graph.Step{s.eval})
	nodes := newFakeRunner()
	c := newFakeCluster(nodes)
	c.hold = true
	optsA := remoteOpts(newFakeRunner(), c, "host-a")
	optsA.StaleAfter = 300 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, plan, optsA)
		done <- err
	}()
	<-c.submitted
	// Queued well past StaleAfter.
	time.Sleep(4 * optsA.StaleAfter)
	optsB := remoteOpts(newFakeRunner(), c, "host-b")
	optsB.StaleAfter = optsA.StaleAfter
	ds, err := Plan(ctx, plan, optsB)
	if err != nil {
		t.Fatal(err)
	}
	if d := ds[0]; d.Decision != DecisionRunningElsewhere || !strings.Contains(d.Reason, "host-a") {
		t.Fatalf("second host's decision %+v, want running elsewhere (host-a)", d)
	}
	doneB := make(chan error, 1)
	go func() {
		_, err := Run(ctx, plan, optsB)
		doneB <- err
	}()
	time.Sleep(2 * optsA.StaleAfter)
	close(c.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	if n := nodes.count(s.eval.Name); n != 1 {
		t.Errorf("the step ran %d times", n)
	}
	if n := len(c.jobsOf(s.eval.Name)); n != 1 {
		t.Errorf("%d jobs submitted, want 1", n)
	}
}

func TestRemoteJobThatStopsHeartbeatingIsCancelled(t *testing.T) {
	ctx := context.Background()
	s := newStepSet(1e-4)
	plan := mustBuild(t, filePrefix(t), []*graph.Step{s.eval})
	c := newFakeCluster(newFakeRunner())
	c.hang[s.eval.Name] = true
	opts := remoteOpts(newFakeRunner(), c, "host-a")
	opts.StaleAfter = 300 * time.Millisecond
	_, err := Run(ctx, plan, opts)
	var re *RunError
	if !errors.As(err, &re) || len(re.Failed) != 1 {
		t.Fatalf("err %v", err)
	}
	j := c.jobsOf(s.eval.Name)[0]
	if !j.cancelled {
		t.Error("the hung job was not cancelled")
	}
	h := historyOf(t, plan.Lookup(s.eval).OutputPath)
	if m := h[len(h)-1].Message; !strings.Contains(m, "stopped heartbeating") || !strings.Contains(m, "node1:hung") {
		t.Errorf("message %q", m)
	}
}

// writeHandover does what a submitter does before its job starts: the
// lease, RUNNING and the job file.
func writeHandover(t *testing.T, out string, lease Lease) string {
	t.Helper()
	ctx := context.Background()
	data, _ := json.Marshal(lease)
	if ok, err := storage.CreateIfNotExist(ctx, storage.Join(out, LockFile), data); err != nil || !ok {
		t.Fatalf("take lease: %v %v", ok, err)
	}
	if err := appendStatus(ctx, out, StatusEntry{Status: StatusRunning, Time: time.Now(), Holder: lease.Holder, Message: "attempt 1 on fake"}); err != nil {
		t.Fatal(err)
	}
	jf := JobFile{Format: 1, Runner: "fake", Request: JobRequest{StepName: "eval/x", Op: "eval", Config: map[string]any{"n": 1.0}, OutputPath: out, Attempt: 1},
		Lease: lease, Heartbeat: Duration(50 * time.Millisecond), StaleAfter: Duration(time.Second), SubmittedBy: lease.Holder}
	raw, _ := json.Marshal(jf)
	u := storage.Join(out, JobsDir, "attempt-1", JobFileName)
	if err := storage.WriteAtomic(ctx, u, raw); err != nil {
		t.Fatal(err)
	}
	return u
}

// The job records the outcome itself: a submitter that died meanwhile
// loses nothing.
func TestRunJobRecordsTheOutcomeWithoutItsSubmitter(t *testing.T) {
	ctx := context.Background()
	out := filePrefix(t) + "/eval/x-abc123"
	u := writeHandover(t, out, Lease{Holder: "dead-host", LeaseID: "lease1", Heartbeat: time.Now()})
	nodes := newFakeRunner()
	nodes.events = true
	if err := RunJob(ctx, u, JobOptions{Runner: nodes, Logger: zerolog.Nop(), Holder: "node1:1:x", Where: "fake job 1 on node1"}); err != nil {
		t.Fatal(err)
	}
	h := historyOf(t, out)
	if statuses(h) != "RUNNING,SUCCESS" || h[1].Holder != "node1:1:x" || h[1].Message != "fake job 1 on node1" {
		t.Errorf("history %+v", h)
	}
	if l := lockFiles(t, out); len(l) != 0 {
		t.Errorf("lock files left: %v", l)
	}
	evs, err := newEventReader(storage.Join(out, JobsDir, "attempt-1")).read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		if ev.Kind == EventProgress {
			kinds = append(kinds, "progress")
		} else {
			kinds = append(kinds, ev.Message)
		}
	}
	if got := strings.Join(kinds, ","); got != "job started,halfway,job finished,progress" {
		t.Errorf("events %s", got)
	}

	// A failing op is recorded FAILED by the job with the op's message.
	out2 := filePrefix(t) + "/eval/x-def456"
	u2 := writeHandover(t, out2, Lease{Holder: "dead-host", LeaseID: "lease2", Heartbeat: time.Now()})
	nodes.fail["eval/x"] = "boom"
	if err := RunJob(ctx, u2, JobOptions{Runner: nodes, Logger: zerolog.Nop()}); err == nil || err.Error() != "boom" {
		t.Fatalf("err %v, want boom", err)
	}
	if h := historyOf(t, out2); statuses(h) != "RUNNING,FAILED" || h[1].Message != "boom" {
		t.Errorf("history %+v", h)
	}
}

func TestRunJobRunsNothingUnderAnotherLease(t *testing.T) {
	ctx := context.Background()
	out := filePrefix(t) + "/eval/x-abc123"
	u := writeHandover(t, out, Lease{Holder: "host-a", LeaseID: "old", Heartbeat: time.Now()})
	// host-a died while its job was queued; host-b took the step over.
	data, _ := json.Marshal(Lease{Holder: "host-b", LeaseID: "new", Heartbeat: time.Now()})
	if err := storage.WriteAtomic(ctx, storage.Join(out, LockFile), data); err != nil {
		t.Fatal(err)
	}
	nodes := newFakeRunner()
	err := RunJob(ctx, u, JobOptions{Runner: nodes, Logger: zerolog.Nop()})
	if !errors.Is(err, ErrNotHolder) || !strings.Contains(err.Error(), "host-b") {
		t.Fatalf("err %v, want ErrNotHolder naming host-b", err)
	}
	if nodes.total() != 0 {
		t.Error("the op ran")
	}
	if h := historyOf(t, out); statuses(h) != "RUNNING" {
		t.Errorf("history %s", statuses(h))
	}
	l, err := readLease(ctx, out)
	if err != nil || l.LeaseID != "new" {
		t.Errorf("lease %+v %v: the new holder's lease must stay", l, err)
	}
}

func TestRemotePlacementAtPlanTime(t *testing.T) {
	ctx := context.Background()
	s := newStepSet(1e-4)
	s.train.Config["resources"] = graph.Unversioned{Value: map[string]any{"memory": "lots"}}
	s.train.Pos = "exp.star:12:5"
	s.eval.Config["resources"] = graph.Unversioned{Value: map[string]any{"partition": "nowhere"}}
	plan := mustBuild(t, filePrefix(t), s.roots())
	c := newFakeCluster(newFakeRunner())
	_, err := Plan(ctx, plan, remoteOpts(newFakeRunner(), c, "h"))
	var pe *PlacementError
	if !errors.As(err, &pe) || len(pe.Steps) != 2 {
		t.Fatalf("err %v, want a placement error for 2 steps", err)
	}
	msg := err.Error()
	for _, want := range []string{"checkpoints/sft (exp.star:12:5): resources.memory: \"lots\"", "eval/smoke", "no partition nowhere"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if _, err := Run(ctx, plan, remoteOpts(newFakeRunner(), c, "h")); !errors.As(err, &pe) {
		t.Errorf("Run: err %v, want a placement error", err)
	}
	if len(c.jobs) != 0 {
		t.Error("jobs were submitted")
	}

	// --resource overrides win over the script.
	opts := remoteOpts(newFakeRunner(), c, "h")
	opts.Resources = map[string]string{"memory": "8G", "partition": "gpu", "cpus": "2"}
	ds, err := Plan(ctx, plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Runner != "fake" || d.Resources != "nodes=1 cpus=2 partition=gpu" {
			t.Errorf("%s: runner %q resources %q", d.Name, d.Runner, d.Resources)
		}
	}
	// The local runner says so.
	ds, err = Plan(ctx, plan, testOpts(newFakeRunner(), "h"))
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Runner != runner.Local || ds[0].Resources != "" {
		t.Errorf("local decision %+v", ds[0])
	}

	// A remote runner refuses a prefix its nodes may not see.
	opts = remoteOpts(newFakeRunner(), c, "h")
	opts.SharedPrefix = false
	if _, err := Plan(ctx, plan, opts); err == nil || !strings.Contains(err.Error(), "--shared-prefix") {
		t.Errorf("unshared file prefix: err %v", err)
	}
}

func TestJobEventsRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := filePrefix(t) + "/job"
	w := newEventWriter(dir, time.Now)
	r := newEventReader(dir)
	w.add(Event{Kind: EventProgress, Done: 1, Total: 10, Unit: "steps"})
	w.add(Event{Kind: EventLog, Level: "warn", Message: "a", Fields: map[string]string{"x": "1"}})
	w.add(Event{Kind: EventProgress, Done: 2, Total: 10, Unit: "steps"})
	if err := w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(ctx); err != nil { // nothing new: no chunk
		t.Fatal(err)
	}
	for i := 0; i < maxLogsPerChunk+5; i++ {
		w.add(Event{Kind: EventLog, Level: "info", Message: "many"})
	}
	if err := w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := r.read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2+maxLogsPerChunk+1 {
		t.Fatalf("%d events", len(evs))
	}
	if evs[0].Kind != EventLog || evs[0].Message != "a" || evs[0].Fields["x"] != "1" || evs[0].Level != "warn" {
		t.Errorf("first %+v", evs[0])
	}
	if evs[1].Kind != EventProgress || evs[1].Done != 2 {
		t.Errorf("progress is coalesced to the latest: %+v", evs[1])
	}
	if last := evs[len(evs)-1]; !strings.Contains(last.Message, "5 log events of this job were dropped") {
		t.Errorf("last %+v", last)
	}
	if evs, err := r.read(ctx); err != nil || len(evs) != 0 {
		t.Errorf("second read: %d events, %v", len(evs), err)
	}
	// A damaged chunk is reported once and skipped.
	if err := storage.WriteAtomic(ctx, chunkURL(dir, 3), []byte("{oops\n")); err != nil {
		t.Fatal(err)
	}
	w.seq = 3
	w.add(Event{Kind: EventLog, Message: "after"})
	if err := w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.read(ctx); err == nil {
		t.Error("damaged chunk: no error")
	}
	if evs, err := r.read(ctx); err != nil || len(evs) != 1 || evs[0].Message != "after" {
		t.Errorf("after the damaged chunk: %+v %v", evs, err)
	}
}
