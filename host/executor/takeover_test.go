package executor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
)

// holderEnv switches the test binary into holderProcess (see TestMain);
// holderHostEnv, if set, is the host name its leases give (a holder on
// another machine, whose pid means nothing here).
const (
	holderEnv     = "MARIN_EXECUTOR_TEST_HOLDER_PREFIX"
	holderHostEnv = "MARIN_EXECUTOR_TEST_HOLDER_HOST"
)

const victimHeartbeat = 100 * time.Millisecond

// takeoverGraph: held → after, plus an independent free step.
func takeoverGraph() (held, after, free *graph.Step) {
	held = &graph.Step{Name: "tokenized/held", Op: "tokenize", Config: map[string]any{"x": int64(1)}}
	after = &graph.Step{Name: "checkpoints/after", Op: "train", Config: map[string]any{"in": &graph.InputRef{Step: held}}}
	free = &graph.Step{Name: "raw/free", Op: "download", Config: map[string]any{"x": int64(2)}}
	return
}

// holderProcess takes the lease on the held step, records RUNNING, keeps
// heartbeating as a live holder does, and waits to be killed.
func holderProcess(prefix string) int {
	held, after, free := takeoverGraph()
	plan, err := graph.Build(prefix, []*graph.Step{after, free})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e, err := newExecutor(plan, Options{Holder: fmt.Sprintf("victim:%d", os.Getpid()), Heartbeat: victimHeartbeat, StaleAfter: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if h := os.Getenv(holderHostEnv); h != "" {
		e.self.Host = h
	}
	ctx := context.Background()
	out := plan.Lookup(held).OutputPath
	mine, other, err := e.acquire(ctx, out)
	if err != nil || mine == nil {
		fmt.Fprintln(os.Stderr, "holder: no lease:", err, other)
		return 2
	}
	if err := appendStatus(ctx, out, StatusEntry{Status: StatusRunning, Time: time.Now().UTC(), Holder: e.holder}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e.startHeartbeat(ctx, out, *mine, func() {})
	fmt.Println("LEASED", mine.LeaseID)
	time.Sleep(time.Hour)
	return 0
}

// startHolder starts holderProcess on prefix and returns it and its lease
// id once it holds the lease and heartbeats; host, if not empty, poses as
// another machine.
func startHolder(t *testing.T, prefix, host string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+prefix, holderHostEnv+"="+host)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	var victimLease string
	select {
	case s := <-line:
		if !strings.HasPrefix(s, "LEASED ") {
			t.Fatalf("holder process said %q", s)
		}
		victimLease = strings.TrimSpace(strings.TrimPrefix(s, "LEASED "))
	case <-time.After(60 * time.Second):
		t.Fatal("holder process never took the lease")
	}
	// Let it heartbeat a few times.
	time.Sleep(3 * victimHeartbeat)
	return cmd, victimLease
}

// TestKilledHolderIsTakenOver: a holder on another machine that dies is
// taken over once its lease is stale.
func TestKilledHolderIsTakenOver(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process and waits for a lease to go stale")
	}
	prefix := filePrefix(t)
	held, after, free := takeoverGraph()
	plan := mustBuild(t, prefix, []*graph.Step{after, free})
	heldOut := plan.Lookup(held).OutputPath

	cmd, victimLease := startHolder(t, prefix, "elsewhere")
	// Kill it without any cleanup.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	l, err := readLease(context.Background(), heldOut)
	if err != nil || l.LeaseID != victimLease || !strings.HasPrefix(l.Holder, "victim:") {
		t.Fatalf("lease after kill: %+v, %v", l, err)
	}
	if l.Heartbeat.Sub(time.Now()) > 0 || time.Since(l.Heartbeat) > time.Second {
		t.Fatalf("victim's last heartbeat %s is implausible", l.Heartbeat)
	}
	if l.Host != "elsewhere" || l.PID != cmd.Process.Pid {
		t.Fatalf("lease names host %q pid %d, want elsewhere and %d", l.Host, l.PID, cmd.Process.Pid)
	}

	r := newFakeRunner()
	opts := testOpts(r, "rescuer")
	opts.Heartbeat = 200 * time.Millisecond
	opts.StaleAfter = 1500 * time.Millisecond
	opts.Poll = 50 * time.Millisecond
	ds, err := Plan(context.Background(), plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionsByName(ds)[held.Name]; d.Decision != DecisionRunningElsewhere {
		t.Fatalf("held step decision %s (%s), want running-elsewhere", d.Decision, d.Reason)
	}
	runStart := time.Now()
	rep, err := Run(context.Background(), plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Steps {
		if s.Status != StatusSuccess || !s.Ran {
			t.Errorf("%+v", s)
		}
		if r.count(s.Name) != 1 {
			t.Errorf("step %s ran %d times", s.Name, r.count(s.Name))
		}
	}
	heldStart := r.starts[held.Name]
	if waited := heldStart.Sub(l.Heartbeat); waited < opts.StaleAfter {
		t.Errorf("took over %s after the last heartbeat, before StaleAfter %s", waited, opts.StaleAfter)
	}
	if waited := heldStart.Sub(runStart); waited < opts.StaleAfter-runStart.Sub(l.Heartbeat) {
		t.Errorf("run waited only %s", waited)
	}
	if d := r.starts[free.Name].Sub(runStart); d > opts.StaleAfter/2 {
		t.Errorf("independent step waited %s for the held one", d)
	}
	h := historyOf(t, heldOut)
	if statuses(h) != "RUNNING,RUNNING,SUCCESS" || !strings.HasPrefix(h[0].Holder, "victim:") || h[1].Holder != "rescuer" || h[2].Holder != "rescuer" || h[1].Message != "attempt 2" {
		t.Errorf("held history %+v", h)
	}
	if lf := lockFiles(t, heldOut); len(lf) != 0 {
		t.Errorf("lease or steal marker left: %v", lf)
	}
}

func TestOnlyOneTakerWinsAStaleLease(t *testing.T) {
	ctx := context.Background()
	for name, prefix := range map[string]string{"file": filePrefix(t), "mem": memPrefix(t)} {
		t.Run(name, func(t *testing.T) {
			s := &graph.Step{Name: "x", Op: "op", Config: map[string]any{}}
			plan := mustBuild(t, prefix, []*graph.Step{s})
			out := plan.Steps[0].OutputPath
			for round := 0; round < 10; round++ {
				writeLease(t, out, Lease{Holder: "dead", LeaseID: fmt.Sprintf("dead-%d", round), Heartbeat: time.Now().Add(-time.Hour)})
				const takers = 8
				type res struct {
					mine, other *Lease
					err         error
				}
				results := make(chan res, takers)
				for i := 0; i < takers; i++ {
					go func() {
						e, err := newExecutor(plan, testOpts(nil, fmt.Sprintf("taker-%d", i)))
						if err != nil {
							results <- res{err: err}
							return
						}
						m, o, err := e.acquire(ctx, out)
						results <- res{m, o, err}
					}()
				}
				var winners []*Lease
				for i := 0; i < takers; i++ {
					r := <-results
					if r.err != nil {
						t.Fatal(r.err)
					}
					if r.mine != nil {
						winners = append(winners, r.mine)
					}
				}
				if len(winners) != 1 {
					t.Fatalf("round %d: %d takers won", round, len(winners))
				}
				cur, err := readLease(ctx, out)
				if err != nil || cur.LeaseID != winners[0].LeaseID {
					t.Fatalf("round %d: lock holds %+v, winner %+v", round, cur, winners[0])
				}
				e, _ := newExecutor(plan, testOpts(nil, winners[0].Holder))
				if err := e.release(ctx, out, *winners[0]); err != nil {
					t.Fatal(err)
				}
				if lf := lockFiles(t, out); len(lf) != 0 {
					t.Fatalf("round %d: left %v", round, lf)
				}
			}
		})
	}
}

func TestAbandonedStealMarkerDoesNotBlockTakeover(t *testing.T) {
	ctx := context.Background()
	prefix := memPrefix(t)
	s := &graph.Step{Name: "x", Op: "op", Config: map[string]any{}}
	plan := mustBuild(t, prefix, []*graph.Step{s})
	out := plan.Steps[0].OutputPath
	old := time.Now().Add(-time.Hour)
	writeLease(t, out, Lease{Holder: "dead", LeaseID: "L", Heartbeat: old})
	// A taker that died between claiming the marker and rewriting the lock.
	if ok, err := storage.CreateIfNotExist(ctx, storage.Join(out, StealPrefix+"L"), []byte(fmt.Sprintf(`{"holder":"dead-taker","time":%q}`, old.Format(time.RFC3339Nano)))); err != nil || !ok {
		t.Fatal(ok, err)
	}
	e, _ := newExecutor(plan, testOpts(nil, "me"))
	mine, other, err := e.acquire(ctx, out)
	if err != nil || mine == nil {
		t.Fatalf("acquire: %+v %+v %v", mine, other, err)
	}
	if ok, _ := storage.Exists(ctx, storage.Join(out, StealPrefix+"L.2")); !ok {
		t.Fatal("the successor marker was not used")
	}
	// A fresh marker, on the other hand, means a takeover in progress.
	writeLease(t, out, Lease{Holder: "dead", LeaseID: "M", Heartbeat: old})
	if ok, err := storage.CreateIfNotExist(ctx, storage.Join(out, StealPrefix+"M"), []byte(fmt.Sprintf(`{"holder":"live-taker","time":%q}`, time.Now().Format(time.RFC3339Nano)))); err != nil || !ok {
		t.Fatal(ok, err)
	}
	mine, other, err = e.acquire(ctx, out)
	if err != nil || mine != nil || other == nil || other.LeaseID != "M" {
		t.Fatalf("acquire during another takeover: %+v %+v %v", mine, other, err)
	}
}

func TestCorruptLeaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	prefix := memPrefix(t)
	s := &graph.Step{Name: "x", Op: "op", Config: map[string]any{}}
	plan := mustBuild(t, prefix, []*graph.Step{s})
	out := plan.Steps[0].OutputPath
	if err := storage.WriteAtomic(ctx, storage.Join(out, LockFile), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	r := newFakeRunner()
	if _, err := Run(ctx, plan, testOpts(r, "me")); err != nil {
		t.Fatal(err)
	}
	if r.count("x") != 1 || len(lockFiles(t, out)) != 0 {
		t.Fatalf("count %d, lock files %v", r.count("x"), lockFiles(t, out))
	}
}
