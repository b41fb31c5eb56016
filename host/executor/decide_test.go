package executor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
)

func allNames(s *stepSet) []string {
	return []string{s.raw.Name, s.docs.Name, s.tok.Name, s.train.Name, s.eval.Name}
}

func all(s *stepSet, k DecisionKind) map[string]DecisionKind {
	m := map[string]DecisionKind{}
	for _, n := range allNames(s) {
		m[n] = k
	}
	return m
}

func TestDryRunDecisions(t *testing.T) {
	ctx := context.Background()
	for name, prefix := range map[string]string{"file": filePrefix(t), "mem": memPrefix(t)} {
		t.Run(name, func(t *testing.T) {
			s := newStepSet(1e-5)
			plan := mustBuild(t, prefix, s.roots())
			r := newFakeRunner()
			opts := testOpts(r, "me")

			// Fresh prefix: everything runs, and nothing was ever there.
			ds, err := Plan(ctx, plan, opts)
			if err != nil {
				t.Fatal(err)
			}
			wantDecisions(t, ds, all(s, DecisionRun))
			for _, d := range ds {
				if !strings.HasPrefix(d.Reason, "not run before") || d.Previous != "" || len(d.Diff) != 0 {
					t.Errorf("fresh step %s: reason %q previous %q diff %v", d.Name, d.Reason, d.Previous, d.Diff)
				}
			}
			// A dry run through Run writes nothing.
			opts.DryRun = true
			rep, err := Run(ctx, plan, opts)
			if err != nil || r.total() != 0 || len(rep.Steps) != 5 {
				t.Fatalf("dry Run: %v, %d ops run, %d results", err, r.total(), len(rep.Steps))
			}
			if ents, _ := storage.List(ctx, prefix+"/", ""); len(ents) != 0 {
				t.Fatalf("dry run wrote %d objects", len(ents))
			}
			opts.DryRun = false

			if _, err := Run(ctx, plan, opts); err != nil {
				t.Fatal(err)
			}
			ds, err = Plan(ctx, plan, opts)
			if err != nil {
				t.Fatal(err)
			}
			wantDecisions(t, ds, all(s, DecisionSkip))

			// FAILED on disk: retried by default; blocked (with its
			// dependents) when force_run_failed is off.
			docs := plan.Lookup(s.docs)
			rewriteStatus(t, docs.OutputPath, StatusEntry{Status: StatusFailed, Time: time.Now(), Holder: "x", Message: "disk full"})
			ds, err = Plan(ctx, plan, opts)
			if err != nil {
				t.Fatal(err)
			}
			want := all(s, DecisionSkip)
			want[s.docs.Name] = DecisionRun
			wantDecisions(t, ds, want)
			if r := decisionsByName(ds)[s.docs.Name].Reason; !strings.Contains(r, "FAILED") || !strings.Contains(r, "disk full") {
				t.Errorf("retry reason %q", r)
			}
			// Dependents of a failed step with outputs already done stay
			// done; make them undone to see blocking propagate.
			tok := plan.Lookup(s.tok)
			rewriteStatus(t, tok.OutputPath, StatusEntry{Status: StatusDepFailed, Time: time.Now(), Holder: "x"})
			opts.ForceRunFailed = Bool(false)
			ds, err = Plan(ctx, plan, opts)
			if err != nil {
				t.Fatal(err)
			}
			want[s.docs.Name], want[s.tok.Name] = DecisionBlocked, DecisionBlocked
			wantDecisions(t, ds, want)
			if r := decisionsByName(ds)[s.tok.Name].Reason; !strings.Contains(r, docs.RelPath) {
				t.Errorf("blocked reason %q does not name %s", r, docs.RelPath)
			}
			opts.ForceRunFailed = nil
			ds, _ = Plan(ctx, plan, opts)
			want[s.docs.Name], want[s.tok.Name] = DecisionRun, DecisionRun
			wantDecisions(t, ds, want)

			// A fresh lease held by someone else, then the same lease stale.
			writeLease(t, tok.OutputPath, Lease{Holder: "other:1:ab", LeaseID: "l1", Heartbeat: time.Now()})
			ds, _ = Plan(ctx, plan, opts)
			want[s.tok.Name] = DecisionRunningElsewhere
			wantDecisions(t, ds, want)
			if r := decisionsByName(ds)[s.tok.Name].Reason; !strings.Contains(r, "other:1:ab") {
				t.Errorf("running-elsewhere reason %q does not name the holder", r)
			}
			writeLease(t, tok.OutputPath, Lease{Holder: "other:1:ab", LeaseID: "l1", Heartbeat: time.Now().Add(-2 * opts.StaleAfter)})
			ds, _ = Plan(ctx, plan, opts)
			want[s.tok.Name] = DecisionRun
			wantDecisions(t, ds, want)
			if r := decisionsByName(ds)[s.tok.Name].Reason; !strings.Contains(r, "stale") {
				t.Errorf("stale lease reason %q", r)
			}
			// Staleness is judged by the Clock option: a clock by which the
			// heartbeat is only 1s old sees the lease as fresh.
			opts.Clock = func() time.Time { return time.Now().Add(-2*opts.StaleAfter + time.Second) }
			ds, _ = Plan(ctx, plan, opts)
			if d := decisionsByName(ds)[s.tok.Name]; d.Decision != DecisionRunningElsewhere {
				t.Errorf("with a shifted clock: %s (%s)", d.Decision, d.Reason)
			}
		})
	}
}

func rewriteStatus(t *testing.T, out string, e StatusEntry) {
	t.Helper()
	if err := storage.Delete(context.Background(), storage.Join(out, StatusFile)); err != nil {
		t.Fatal(err)
	}
	if err := appendStatus(context.Background(), out, e); err != nil {
		t.Fatal(err)
	}
}

func writeLease(t *testing.T, out string, l Lease) {
	t.Helper()
	data, _ := json.Marshal(l)
	if err := storage.WriteAtomic(context.Background(), storage.Join(out, LockFile), data); err != nil {
		t.Fatal(err)
	}
}

func TestChangedConfigIsExplained(t *testing.T) {
	ctx := context.Background()
	prefix := filePrefix(t)
	old := newStepSet(1e-5)
	oldPlan := mustBuild(t, prefix, old.roots())
	if _, err := Run(ctx, oldPlan, testOpts(newFakeRunner(), "me")); err != nil {
		t.Fatal(err)
	}

	cur := newStepSet(5e-6)
	plan := mustBuild(t, prefix, cur.roots())
	ds, err := Plan(ctx, plan, testOpts(nil, "me"))
	if err != nil {
		t.Fatal(err)
	}
	want := all(cur, DecisionSkip)
	want[cur.train.Name] = DecisionRun
	wantDecisions(t, ds, want)
	d := decisionsByName(ds)[cur.train.Name]
	if len(d.Diff) != 1 {
		t.Fatalf("diff = %+v, want exactly one entry", d.Diff)
	}
	got := d.Diff[0]
	if got.Key != "optimizer.learning_rate" || got.Change != ChangeChanged || got.Old != 1e-5 || got.New != 5e-6 {
		t.Fatalf("diff = %+v, want optimizer.learning_rate 1e-05 → 5e-06", got)
	}
	if d.Previous != oldPlan.Lookup(old.train).OutputPath {
		t.Fatalf("previous = %q, want %q", d.Previous, oldPlan.Lookup(old.train).OutputPath)
	}
	if !strings.Contains(d.Reason, "optimizer.learning_rate 1e-05 → 5e-06") || !strings.Contains(d.Reason, oldPlan.Lookup(old.train).RelPath) {
		t.Fatalf("reason %q", d.Reason)
	}
	// The decision is what `marin --dry-run --json` would print.
	js, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"name":`, `"op":`, `"output_path":`, `"decision":"run"`, `"reason":`, `"diff":[{"key":"optimizer.learning_rate","change":"changed","old":0.00001,"new":0.000005}]`, `"previous":`} {
		if !strings.Contains(string(js), field) {
			t.Errorf("JSON %s lacks %s", js, field)
		}
	}

	// Unversioned values never move a step: changing one is not a rerun.
	cur2 := newStepSet(1e-5)
	cur2.raw.Config["workers"] = graph.Unversioned{Value: int64(64)}
	ds, _ = Plan(ctx, mustBuild(t, prefix, cur2.roots()), testOpts(nil, "me"))
	wantDecisions(t, ds, all(cur2, DecisionSkip))
}

func TestExplainAddedRemovedAndDependencies(t *testing.T) {
	ctx := context.Background()
	prefix := memPrefix(t)
	old := newStepSet(1e-5)
	oldPlan := mustBuild(t, prefix, old.roots())
	if _, err := Run(ctx, oldPlan, testOpts(newFakeRunner(), "me")); err != nil {
		t.Fatal(err)
	}
	// Change the tokenizer's chat format: tok moves, and train moves
	// because its input path changed.
	cur := newStepSet(1e-5)
	f := cur.tok.Config["format"].(map[string]any)
	delete(f, "mask_user_turns")
	f["eot_trained"] = true
	plan := mustBuild(t, prefix, cur.roots())
	ds, err := Plan(ctx, plan, testOpts(nil, "me"))
	if err != nil {
		t.Fatal(err)
	}
	m := decisionsByName(ds)
	tokDiff := m[cur.tok.Name].Diff
	if len(tokDiff) != 2 ||
		tokDiff[0] != (ConfigDiff{Key: "format.eot_trained", Change: ChangeAdded, New: true}) ||
		tokDiff[1] != (ConfigDiff{Key: "format.mask_user_turns", Change: ChangeRemoved, Old: true}) {
		t.Fatalf("tokenize diff = %+v", tokDiff)
	}
	oldTok, newTok := graph.PrefixVar+"/"+oldPlan.Lookup(old.tok).RelPath, graph.PrefixVar+"/"+plan.Lookup(cur.tok).RelPath
	trainDiff := m[cur.train.Name].Diff
	wantTrain := []ConfigDiff{
		{Key: "data", Change: ChangeChanged, Old: oldTok, New: newTok},
		{Key: "dependencies", Change: ChangeDependencyRemoved, Old: oldTok},
		{Key: "dependencies", Change: ChangeDependencyAdded, New: newTok},
	}
	if len(trainDiff) != len(wantTrain) {
		t.Fatalf("train diff = %+v, want %+v", trainDiff, wantTrain)
	}
	for i := range wantTrain {
		if trainDiff[i] != wantTrain[i] {
			t.Fatalf("train diff[%d] = %+v, want %+v", i, trainDiff[i], wantTrain[i])
		}
	}
}

func TestExplainPicksMostRecentSibling(t *testing.T) {
	ctx := context.Background()
	prefix := memPrefix(t)
	for _, lr := range []float64{1e-3, 1e-4} {
		s := newStepSet(lr)
		if _, err := Run(ctx, mustBuild(t, prefix, s.roots()), testOpts(newFakeRunner(), "me")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // distinct modification times
	}
	s := newStepSet(1e-5)
	ds, err := Plan(ctx, mustBuild(t, prefix, s.roots()), testOpts(nil, "me"))
	if err != nil {
		t.Fatal(err)
	}
	d := decisionsByName(ds)[s.train.Name]
	if len(d.Diff) != 1 || d.Diff[0].Old != 1e-4 {
		t.Fatalf("diff = %+v, want against the lr=1e-4 run", d.Diff)
	}
}

func TestRunOnlySelectsStepsAndDependencies(t *testing.T) {
	ctx := context.Background()
	s := newStepSet(1e-5)
	plan := mustBuild(t, memPrefix(t), s.roots())
	opts := testOpts(nil, "me")
	opts.RunOnly = mustRegexps(t, "^tokenized/")
	ds, err := Plan(ctx, plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantDecisions(t, ds, map[string]DecisionKind{s.raw.Name: DecisionRun, s.docs.Name: DecisionRun, s.tok.Name: DecisionRun})
	opts.RunOnly = mustRegexps(t, "nothing-matches")
	if _, err := Plan(ctx, plan, opts); err == nil || !strings.Contains(err.Error(), "nothing-matches") {
		t.Fatalf("unmatched run-only: %v", err)
	}
}

func TestPrefixMismatchIsRejected(t *testing.T) {
	s := newStepSet(1e-5)
	plan := mustBuild(t, memPrefix(t), s.roots())
	opts := testOpts(nil, "me")
	opts.Prefix = "mem://elsewhere/out"
	if _, err := Plan(context.Background(), plan, opts); err == nil || !strings.Contains(err.Error(), "mem://elsewhere/out") {
		t.Fatalf("err = %v", err)
	}
}
