package executor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gocloud.dev/blob"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
	"github.com/marin-go/marin/plugins/storage/faultblob"
)

// writeRaw puts bytes at a step's file, bypassing the executor.
func writeRaw(t *testing.T, out, name string, data []byte) {
	t.Helper()
	if err := storage.WriteAtomic(context.Background(), storage.Join(out, name), data); err != nil {
		t.Fatal(err)
	}
}

// logTo returns a logger writing JSON into buf.
func logTo(buf *bytes.Buffer) zerolog.Logger { return zerolog.New(zerolog.SyncWriter(buf)) }

// TestTornStatusLineIsIgnored reproduces defect 1 of issue 16 from the
// reader's side: a status file cut off in its last line (what a full disk
// left before storage.Writer) made planning any step fail with "unexpected
// end of JSON input". The torn line is now ignored with a warning, the step
// is decided from the lines before it, and the next write drops it.
func TestTornStatusLineIsIgnored(t *testing.T) {
	ctx := context.Background()
	for name, prefix := range map[string]string{"file": filePrefix(t), "mem": memPrefix(t)} {
		t.Run(name, func(t *testing.T) {
			s := newStepSet(1e-5)
			plan := mustBuild(t, prefix, s.roots())
			r := newFakeRunner()
			opts := testOpts(r, "me")
			if _, err := Run(ctx, plan, opts); err != nil {
				t.Fatal(err)
			}
			tok, docs := plan.Lookup(s.tok), plan.Lookup(s.docs)
			// tok: RUNNING, FAILED, then a RUNNING line cut in half.
			var hist bytes.Buffer
			for i := 0; i < 20; i++ {
				hist.WriteString(`{"status":"RUNNING","time":"2026-01-02T03:04:05Z","holder":"h:1:ab","message":"attempt 1"}` + "\n")
				hist.WriteString(`{"status":"FAILED","time":"2026-01-02T03:04:06Z","holder":"h:1:ab","message":"exit 1"}` + "\n")
			}
			hist.WriteString(`{"status":"RUNNING","time":"2026-01-`)
			writeRaw(t, tok.OutputPath, StatusFile, hist.Bytes())
			// docs: damage in the middle, SUCCESS last.
			writeRaw(t, docs.OutputPath, StatusFile, []byte("{\"status\":\"RUNNING\"}\n\x00\x00garbage\n{\"status\":\"SUCCESS\",\"holder\":\"h\"}\n"))

			var logs bytes.Buffer
			opts.Logger = logTo(&logs)
			ds, err := Plan(ctx, plan, opts)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			want := all(s, DecisionSkip)
			want[s.tok.Name] = DecisionRun
			wantDecisions(t, ds, want)
			if r := decisionsByName(ds)[s.tok.Name].Reason; !strings.Contains(r, "FAILED") || !strings.Contains(r, "exit 1") {
				t.Errorf("tok reason %q, want the retry of the FAILED line before the torn one", r)
			}
			if !strings.Contains(logs.String(), "torn last line 41 ignored") || !strings.Contains(logs.String(), "unreadable line 2 ignored") {
				t.Errorf("no warnings about the torn and damaged lines:\n%s", logs.String())
			}
			if _, err := Run(ctx, plan, opts); err != nil {
				t.Fatal(err)
			}
			h, probs, err := ReadStatusChecked(ctx, tok.OutputPath)
			if err != nil || len(probs) != 0 || len(h) != 42 || last(h).Status != StatusSuccess {
				t.Errorf("after the rerun: %d entries ending %v, problems %v, %v", len(h), last(h), probs, err)
			}
		})
	}
}

// TestUnreadableStatusIsUnknownAndBlocksNothing: a step whose status cannot
// be read (an I/O error) is planned as unknown, reruns, and every other
// step is decided as usual.
func TestUnreadableStatusIsUnknownAndBlocksNothing(t *testing.T) {
	ctx := context.Background()
	prefix := memPrefix(t)
	s := newStepSet(1e-5)
	plan := mustBuild(t, prefix, s.roots())
	r := newFakeRunner()
	opts := testOpts(r, "me")
	if _, err := Run(ctx, plan, opts); err != nil {
		t.Fatal(err)
	}
	_, key, err := storage.Open(ctx, storage.Join(plan.Lookup(s.eval).OutputPath, StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	in := faultblob.New()
	in.Only(key)
	restore := storage.Interpose(func(_ string, b *blob.Bucket) *blob.Bucket { return in.Wrap(b) })
	defer restore()
	in.Arm(faultblob.Fault{Op: faultblob.Read, N: 1, Kind: faultblob.EIO})
	ds, err := Plan(ctx, plan, opts)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	want := all(s, DecisionSkip)
	want[s.eval.Name] = DecisionRun
	wantDecisions(t, ds, want)
	if r := decisionsByName(ds)[s.eval.Name].Reason; !strings.Contains(r, "state unknown") || !strings.Contains(r, "input/output error") {
		t.Errorf("reason %q", r)
	}
}

// TestDeadHolderOnThisMachineIsTakenOverAtOnce reproduces defect 7 of
// issue 16: a crashed holder on this machine was waited out for StaleAfter
// (90 s by default) although its pid no longer exists.
func TestDeadHolderOnThisMachineIsTakenOverAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	prefix := filePrefix(t)
	held, after, free := takeoverGraph()
	plan := mustBuild(t, prefix, []*graph.Step{after, free})
	heldOut := plan.Lookup(held).OutputPath
	cmd, _ := startHolder(t, prefix, "")

	r := newFakeRunner()
	opts := testOpts(r, "rescuer")
	opts.Heartbeat = time.Minute
	opts.StaleAfter = 10 * time.Minute
	// Alive: the step runs elsewhere.
	ds, err := Plan(context.Background(), plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionsByName(ds)[held.Name]; d.Decision != DecisionRunningElsewhere {
		t.Fatalf("live holder: %s (%s), want running-elsewhere", d.Decision, d.Reason)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	ds, err = Plan(context.Background(), plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionsByName(ds)[held.Name]; d.Decision != DecisionRun || !strings.Contains(d.Reason, "is gone") {
		t.Fatalf("dead holder: %s (%s), want run: holder gone", d.Decision, d.Reason)
	}
	start := time.Now()
	if _, err := Run(context.Background(), plan, opts); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %s to take over a dead holder's lease", took)
	}
	if r.count(held.Name) != 1 {
		t.Errorf("held step ran %d times", r.count(held.Name))
	}
	if h := historyOf(t, heldOut); statuses(h) != "RUNNING,RUNNING,SUCCESS" {
		t.Errorf("history %s", statuses(h))
	}
}

func TestHolderGone(t *testing.T) {
	self := currentProcess()
	if self.Boot == "" {
		t.Skip("no /proc on this system: only stale leases are taken over")
	}
	mk := func(mod func(l *Lease)) *Lease {
		l := &Lease{LeaseID: "mine", Host: self.Host, PID: self.PID, Boot: self.Boot, PIDNS: self.PIDNS, Start: self.Start}
		mod(l)
		return l
	}
	held.Store("mine", true)
	defer held.Delete("mine")
	// A pid that is surely unused: beyond the kernel's maximum.
	pidMax := 1 << 22
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &n); err == nil {
			pidMax = n
		}
	}
	cases := []struct {
		name string
		l    *Lease
		gone bool
	}{
		{"this process, holding it", mk(func(*Lease) {}), false},
		{"this process, not holding it (a failed release)", mk(func(l *Lease) { l.LeaseID = "released" }), true},
		{"the parent process", mk(func(l *Lease) { l.PID, l.Start = os.Getppid(), 0 }), false},
		{"no such pid", mk(func(l *Lease) { l.PID = pidMax + 1 }), true},
		{"pid reused by a younger process", mk(func(l *Lease) { l.Start-- }), true},
		{"another machine", mk(func(l *Lease) { l.PID = pidMax + 1; l.Host = "elsewhere" }), false},
		{"after a reboot", mk(func(l *Lease) { l.PID = pidMax + 1; l.Boot = "other-boot" }), false},
		{"another pid namespace", mk(func(l *Lease) { l.PID = pidMax + 1; l.PIDNS = "pid:[1]" }), false},
		{"written by an older marin", &Lease{Holder: "h:1:ab"}, false},
	}
	for _, c := range cases {
		if got := self.holderGone(c.l); got != c.gone {
			t.Errorf("%s: holderGone = %v, want %v", c.name, got, c.gone)
		}
	}
}

// TestFailureMessagesAreRedacted: an op error that carries a token (a hub
// reply echoing the request) reaches the status file, the log and the
// report only redacted.
func TestFailureMessagesAreRedacted(t *testing.T) {
	ctx := context.Background()
	const tok = "hf_QwErTyUiOpAsDfGhJkLzXcVbNm1234"
	prefix := filePrefix(t)
	s := newStepSet(1e-5)
	plan := mustBuild(t, prefix, s.roots())
	r := newFakeRunner()
	r.fail[s.eval.Name] = "dataset/download: HTTP 400: bad request; headers: Authorization: Bearer " + tok + "; User-Agent: x"
	var logs bytes.Buffer
	opts := testOpts(r, "me")
	opts.Logger = logTo(&logs)
	rep, err := Run(ctx, plan, opts)
	if err == nil {
		t.Fatal("the failing step did not fail the run")
	}
	raw, _ := storage.ReadAll(ctx, storage.Join(plan.Lookup(s.eval).OutputPath, StatusFile))
	var msgs []string
	for _, st := range rep.Steps {
		msgs = append(msgs, st.Message)
	}
	ds, _ := Plan(ctx, plan, opts)
	for _, d := range ds {
		msgs = append(msgs, d.Reason)
	}
	for where, text := range map[string]string{"status file": string(raw), "report": strings.Join(msgs, "\n")} {
		if strings.Contains(text, tok) {
			t.Errorf("the token reached the %s:\n%s", where, text)
		}
		if !strings.Contains(text, "Authorization: Bearer [REDACTED]") {
			t.Errorf("the %s lost the redacted message:\n%s", where, text)
		}
	}
	// The executor's own logger is set up by host/logging, which redacts
	// every line (tested there); here the message field must already be
	// clean since other sinks may receive it.
	if strings.Contains(logs.String(), tok) {
		t.Errorf("the token reached the log:\n%s", logs.String())
	}
}
