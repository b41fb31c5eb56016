package executor

import (
	"context"
	"encoding/json"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
	"github.com/marin-go/marin/plugins/storage/storetest"
)

// The executor's leases on the real S3 server and GCS emulator
// (storetest; skipped without them): conditional creates decide who runs
// a step, and heartbeats refresh a lease only while it is the holder's.

// TestExecutorsRaceOnObjectStores: three executors share one bucket prefix
// and a graph of 30 steps; every step runs exactly once.
func TestExecutorsRaceOnObjectStores(t *testing.T) {
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		steps := bigGraph(30, 7)
		plan := mustBuild(t, s.URL+"/runs", steps)
		r := newFakeRunner()
		var jmu sync.Mutex
		rng := rand.New(rand.NewSource(7))
		r.jitter = func(string) time.Duration {
			jmu.Lock()
			defer jmu.Unlock()
			return time.Duration(rng.Intn(20)) * time.Millisecond
		}
		holders := []string{"host-a:1:aa", "host-b:2:bb", "host-c:3:cc"}
		reports := make([]*Report, len(holders))
		errs := make([]error, len(holders))
		var wg sync.WaitGroup
		for i, holder := range holders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				opts := testOpts(r, holder)
				opts.Heartbeat, opts.Poll = 200*time.Millisecond, 50*time.Millisecond
				// A lease is fresh for longer than the whole test: on a
				// loaded machine (-race, a shared CI runner) a conditional
				// create can take seconds, and a lease that looks stale is
				// rightly taken over, which is not what this test checks
				// (TestLostLeaseOnObjectStores does).
				opts.StaleAfter = time.Minute
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
		var split []string
		for _, rep := range reports {
			split = append(split, rep.Holder+" ran "+strconv.Itoa(ranBy(rep)))
		}
		t.Log(strings.Join(split, ", "))
	})
}

// TestLostLeaseOnObjectStores: another holder replaces the lock of a
// running step; the step stops, and the stale holder's heartbeat never
// writes over the new lease.
func TestLostLeaseOnObjectStores(t *testing.T) {
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		ctx := context.Background()
		a, b, c, _, _ := failureGraph()
		plan := mustBuild(t, s.URL+"/runs", []*graph.Step{c})
		pb := plan.Lookup(b)
		r := newFakeRunner()
		started := make(chan struct{})
		r.block[b.Name] = started
		thief := Lease{Holder: "thief", LeaseID: "stolen", Heartbeat: time.Now()}
		lockURL := storage.Join(pb.OutputPath, LockFile)
		overwritten := make(chan string, 1)
		go func() {
			<-started
			data, _ := json.Marshal(thief)
			if err := storage.WriteAtomic(ctx, lockURL, data); err != nil {
				t.Error(err)
				return
			}
			// Several heartbeat periods: the old holder must notice and
			// leave the lock alone.
			time.Sleep(1500 * time.Millisecond)
			cur, err := storage.ReadAll(ctx, lockURL)
			if err != nil {
				t.Error(err)
			}
			overwritten <- string(cur)
			if err := appendStatus(ctx, pb.OutputPath, StatusEntry{Status: StatusSuccess, Time: time.Now(), Holder: "thief"}); err != nil {
				t.Error(err)
			}
			_ = storage.Delete(ctx, lockURL)
		}()
		opts := testOpts(r, "me")
		opts.Heartbeat = 100 * time.Millisecond
		rep, err := Run(ctx, plan, opts)
		if err != nil {
			t.Fatal(err)
		}
		if cur := <-overwritten; !strings.Contains(cur, `"stolen"`) {
			t.Fatalf("the stale holder wrote over the new lease: %s", cur)
		}
		for _, st := range rep.Steps {
			if st.Name == b.Name && (st.Ran || !strings.Contains(st.Message, "thief")) {
				t.Fatalf("b: %+v", st)
			}
		}
		if r.count(a.Name) != 1 || r.count(c.Name) != 1 {
			t.Fatalf("counts %v", r.counts)
		}
	})
}
