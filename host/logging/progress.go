package logging

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Display shows one live line per running step. On a terminal the block of
// lines is redrawn in place below the log output (log writes go through the
// Display, which clears and redraws around them); elsewhere each step's
// progress is logged as a record every LogEvery.
type Display struct {
	mu       sync.Mutex
	out      io.Writer
	tty      bool
	log      zerolog.Logger
	steps    map[string]*stepProgress
	drawn    int // lines of the progress block currently on screen
	LogEvery time.Duration
	now      func() time.Time
}

type stepProgress struct {
	name, op       string
	started        time.Time
	done, total    float64
	unit, message  string
	firstAt        time.Time // first progress report: the rate is measured from it
	firstDone      float64
	lastLogged     time.Time
	hasProgress    bool
	lastRenderLine string
}

// NewDisplay writes to out; tty selects in-place redraws.
func NewDisplay(out io.Writer, tty bool) *Display {
	return &Display{out: out, tty: tty, steps: map[string]*stepProgress{}, LogEvery: 10 * time.Second, now: time.Now, log: zerolog.Nop()}
}

// Write passes log output through, keeping the progress block below it.
func (d *Display) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clear()
	n, err := d.out.Write(p)
	d.draw()
	return n, err
}

// StepStarted begins a step's line.
func (d *Display) StepStarted(name, op string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.steps[name] = &stepProgress{name: name, op: op, started: now, lastLogged: now}
	d.redraw()
}

// StepProgress records a progress report from the step's plugin.
func (d *Display) StepProgress(name string, done, total float64, unit, message string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.steps[name]
	if !ok {
		return
	}
	now := d.now()
	if !s.hasProgress || done < s.done {
		s.firstAt, s.firstDone, s.hasProgress = now, done, true
	}
	s.done, s.total, s.unit, s.message = done, total, unit, message
	if d.tty {
		d.redraw()
		return
	}
	if now.Sub(s.lastLogged) < d.LogEvery {
		return
	}
	s.lastLogged = now
	ev := d.log.Info().Str("step", name).Str("op", s.op).Float64("done", done).Str("unit", unit)
	if total > 0 {
		ev = ev.Float64("total", total)
	}
	if r := s.rate(now); r > 0 {
		ev = ev.Float64("rate", r)
		if eta, ok := s.eta(now); ok {
			ev = ev.Str("eta", eta.Round(time.Second).String())
		}
	}
	line := d.lineLocked(s, now)
	// The logger writes through the Display (Write takes d.mu): log
	// without holding the lock.
	d.mu.Unlock()
	ev.Msg(line)
	d.mu.Lock()
}

// StepFinished removes a step's line.
func (d *Display) StepFinished(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.steps, name)
	d.redraw()
}

// Line renders a step's current progress line ("" if the step is unknown).
func (d *Display) Line(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.steps[name]
	if !ok {
		return ""
	}
	return d.lineLocked(s, d.now())
}

func (s *stepProgress) rate(now time.Time) float64 {
	dt := now.Sub(s.firstAt).Seconds()
	if !s.hasProgress || dt <= 0 {
		return 0
	}
	return (s.done - s.firstDone) / dt
}

func (s *stepProgress) eta(now time.Time) (time.Duration, bool) {
	r := s.rate(now)
	if s.total <= 0 || r <= 0 || s.done > s.total {
		return 0, false
	}
	secs := (s.total - s.done) / r
	if secs > 1e7 {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

func (d *Display) lineLocked(s *stepProgress, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s]", s.name, s.op)
	if !s.hasProgress {
		fmt.Fprintf(&b, " running %s", now.Sub(s.started).Round(time.Second))
		return b.String()
	}
	if s.total > 0 {
		fmt.Fprintf(&b, " %5.1f%% %s/%s %s", 100*s.done/s.total, human(s.done), human(s.total), s.unit)
	} else {
		fmt.Fprintf(&b, " %s %s", human(s.done), s.unit)
	}
	if r := s.rate(now); r > 0 {
		fmt.Fprintf(&b, " %s %s/s", human(r), s.unit)
	}
	if eta, ok := s.eta(now); ok {
		fmt.Fprintf(&b, " ETA %s", eta.Round(time.Second))
	}
	if s.message != "" {
		fmt.Fprintf(&b, " %s", s.message)
	}
	return b.String()
}

// human formats a count with k/M/G suffixes.
func human(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func (d *Display) redraw() {
	if !d.tty {
		return
	}
	d.clear()
	d.draw()
}

// clear erases the progress block (cursor up, clear to end of screen).
func (d *Display) clear() {
	if !d.tty || d.drawn == 0 {
		return
	}
	fmt.Fprintf(d.out, "\x1b[%dA\x1b[J", d.drawn)
	d.drawn = 0
}

func (d *Display) draw() {
	if !d.tty || len(d.steps) == 0 {
		return
	}
	names := make([]string, 0, len(d.steps))
	for n := range d.steps {
		names = append(names, n)
	}
	sort.Strings(names)
	now := d.now()
	for _, n := range names {
		fmt.Fprintf(d.out, "\x1b[2K  ▸ %s\n", d.lineLocked(d.steps[n], now))
	}
	d.drawn = len(names)
}

// Start refreshes the display every interval until stop is closed: on a
// terminal it redraws (elapsed times and ETAs move even without new
// reports); elsewhere it logs steps that have been quiet for LogEvery.
func (d *Display) Start(interval time.Duration, stop <-chan struct{}) {
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				d.mu.Lock()
				d.clear()
				d.mu.Unlock()
				return
			case <-t.C:
				d.tick()
			}
		}
	}()
}

func (d *Display) tick() {
	d.mu.Lock()
	if d.tty {
		d.redraw()
		d.mu.Unlock()
		return
	}
	now := d.now()
	type record struct{ name, op, line string }
	var due []record
	for _, s := range d.steps {
		if now.Sub(s.lastLogged) >= d.LogEvery {
			s.lastLogged = now
			due = append(due, record{s.name, s.op, d.lineLocked(s, now)})
		}
	}
	d.mu.Unlock()
	// The logger writes through the Display: log without holding its lock.
	for _, r := range due {
		d.log.Info().Str("step", r.name).Str("op", r.op).Msg(r.line)
	}
}
