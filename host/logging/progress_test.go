package logging

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressLineRateAndETA(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	d := NewDisplay(&bytes.Buffer{}, false)
	d.now = clk.now
	d.StepStarted("tokenized/tulu-abc123", "tokenize")
	if got := d.Line("tokenized/tulu-abc123"); !strings.Contains(got, "running 0s") {
		t.Errorf("before progress: %q", got)
	}
	d.StepProgress("tokenized/tulu-abc123", 0, 1_000_000, "tokens", "")
	clk.t = clk.t.Add(2 * time.Second)
	d.StepProgress("tokenized/tulu-abc123", 250_000, 1_000_000, "tokens", "shard 3/12")
	got := d.Line("tokenized/tulu-abc123")
	for _, want := range []string{"tokenized/tulu-abc123 [tokenize]", " 25.0% 250.0k/1.00M tokens", "125.0k tokens/s", "ETA 6s", "shard 3/12"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
	d.StepFinished("tokenized/tulu-abc123")
	if d.Line("tokenized/tulu-abc123") != "" {
		t.Error("finished step still has a line")
	}
}

func TestProgressLoggedPeriodicallyWithoutTTY(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	var out bytes.Buffer
	d := NewDisplay(&out, false)
	d.log = zerolog.New(&out)
	d.now = clk.now
	d.LogEvery = 10 * time.Second
	d.StepStarted("s", "train")
	for i := 1; i <= 30; i++ {
		clk.t = clk.t.Add(time.Second)
		d.StepProgress("s", float64(i), 30, "steps", "")
	}
	lines := strings.Count(out.String(), "\n")
	if lines != 3 {
		t.Errorf("got %d progress records in 30 s at one per 10 s, want 3:\n%s", lines, out.String())
	}
	if !strings.Contains(out.String(), `"eta":"0s"`) || !strings.Contains(out.String(), `"rate":1`) {
		t.Errorf("records lack rate/eta: %s", out.String())
	}
}

// The logger New builds writes through the Display itself; a periodic
// progress record must not deadlock on the Display's lock.
func TestProgressRecordThroughTheDisplayDoesNotDeadlock(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	var out bytes.Buffer
	d := NewDisplay(&out, false)
	d.log = zerolog.New(d)
	d.now = clk.now
	d.StepStarted("s", "train")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 3; i++ {
			clk.t = clk.t.Add(11 * time.Second)
			d.StepProgress("s", float64(i), 3, "steps", "")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("StepProgress deadlocked logging through the Display")
	}
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Errorf("%d records, want 3: %s", n, out.String())
	}
	// The periodic tick for quiet steps logs the same way.
	clk.t = clk.t.Add(11 * time.Second)
	ticked := make(chan struct{})
	go func() { defer close(ticked); d.tick() }()
	select {
	case <-ticked:
	case <-time.After(10 * time.Second):
		t.Fatal("tick deadlocked logging through the Display")
	}
	if n := strings.Count(out.String(), "\n"); n != 4 {
		t.Errorf("%d records after the tick, want 4: %s", n, out.String())
	}
}

func TestTTYRedrawKeepsLogsAboveProgress(t *testing.T) {
	var out bytes.Buffer
	d := NewDisplay(&out, true)
	d.StepStarted("a", "op")
	d.StepStarted("b", "op")
	out.Reset()
	d.Write([]byte("log line\n"))
	s := out.String()
	// Clear the two progress lines, print the log, redraw both.
	if !strings.HasPrefix(s, "\x1b[2A\x1b[J") || !strings.Contains(s, "log line\n") || strings.Count(s, "▸") != 2 {
		t.Errorf("unexpected redraw sequence %q", s)
	}
	if strings.Index(s, "log line") > strings.Index(s, "▸") {
		t.Error("progress block drawn above the log line")
	}
}

func TestNewRejectsUnknownFormatAndLevel(t *testing.T) {
	if _, _, err := New(Options{Format: "xml"}); err == nil {
		t.Error("xml format accepted")
	}
	if _, _, err := New(Options{Level: "loud"}); err == nil {
		t.Error("unknown level accepted")
	}
	var out bytes.Buffer
	log, _, err := New(Options{Format: FormatJSON, Level: "warn", Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Str("step", "x").Msg("shown")
	if strings.Contains(out.String(), "hidden") || !strings.Contains(out.String(), `"step":"x"`) {
		t.Errorf("json output %q", out.String())
	}
}
