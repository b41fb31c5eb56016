package executor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/marin-go/marin/plugins/storage"
)

// A job's progress and log events reach the process that submitted it
// through the storage prefix, the one thing both can reach: the job writes
// them in numbered chunks {attempt dir}/events/000001.jsonl, … (each written
// atomically, so object stores work as well as shared file systems), and the
// submitter reads the chunks in order as they appear. Progress is coalesced
// to the latest event per chunk; log events are all kept, up to a cap per
// chunk beyond which they are counted.

const (
	eventsDir = "events"
	// eventFlushEvery is how often a job writes a chunk (when it has
	// events to write).
	eventFlushEvery = 2 * time.Second
	// maxLogsPerChunk caps the log events of one chunk.
	maxLogsPerChunk = 2000
)

// jobEvent is one line of an events chunk.
type jobEvent struct {
	Kind    string            `json:"kind"` // "progress" or "log"
	Time    time.Time         `json:"time"`
	Done    float64           `json:"done,omitempty"`
	Total   float64           `json:"total,omitempty"`
	Unit    string            `json:"unit,omitempty"`
	Message string            `json:"message,omitempty"`
	Level   string            `json:"level,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
}

func chunkURL(dir string, seq int) string {
	return storage.Join(dir, eventsDir, fmt.Sprintf("%06d.jsonl", seq))
}

// eventWriter batches a job's events into chunks.
type eventWriter struct {
	dir string
	now func() time.Time

	mu       sync.Mutex
	logs     []jobEvent
	progress *jobEvent
	dropped  int
	seq      int
	// flushMu serialises writes so chunks land in order.
	flushMu sync.Mutex
}

func newEventWriter(dir string, now func() time.Time) *eventWriter {
	return &eventWriter{dir: dir, now: now}
}

// add queues an event; safe from many goroutines.
func (w *eventWriter) add(ev Event) {
	je := jobEvent{Time: w.now().UTC(), Message: ev.Message}
	switch ev.Kind {
	case EventProgress:
		je.Kind, je.Done, je.Total, je.Unit = "progress", ev.Done, ev.Total, ev.Unit
	case EventLog:
		je.Kind, je.Level, je.Fields = "log", ev.Level, ev.Fields
	default:
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if je.Kind == "progress" {
		w.progress = &je
		return
	}
	if len(w.logs) >= maxLogsPerChunk {
		w.dropped++
		return
	}
	w.logs = append(w.logs, je)
}

// flush writes the queued events as the next chunk, if there are any.
func (w *eventWriter) flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	evs := w.logs
	if w.dropped > 0 {
		evs = append(evs, jobEvent{Kind: "log", Time: w.now().UTC(), Level: "warn",
			Message: fmt.Sprintf("%d log events of this job were dropped (more than %d within %s)", w.dropped, maxLogsPerChunk, eventFlushEvery)})
	}
	if w.progress != nil {
		evs = append(evs, *w.progress)
	}
	w.logs, w.progress, w.dropped = nil, nil, 0
	w.mu.Unlock()
	if len(evs) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, ev := range evs {
		if err := enc.Encode(ev); err != nil {
			return err
		}
	}
	w.seq++
	return storage.WriteAtomic(ctx, chunkURL(w.dir, w.seq), buf.Bytes())
}

// run flushes every eventFlushEvery until ctx ends, then once more (with
// flushCtx, which outlives ctx).
func (w *eventWriter) run(ctx, flushCtx context.Context, onErr func(error)) {
	t := time.NewTicker(eventFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := w.flush(flushCtx); err != nil {
				onErr(err)
			}
			return
		case <-t.C:
			if err := w.flush(flushCtx); err != nil {
				onErr(err)
			}
		}
	}
}

// eventReader reads a job's chunks in order.
type eventReader struct {
	dir string
	seq int // the next chunk to read
}

func newEventReader(dir string) *eventReader { return &eventReader{dir: dir, seq: 1} }

// read returns the events of the chunks written since the last call.
func (r *eventReader) read(ctx context.Context) ([]Event, error) {
	var out []Event
	for {
		raw, err := storage.ReadAll(ctx, chunkURL(r.dir, r.seq))
		if errors.Is(err, storage.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		for sc.Scan() {
			var je jobEvent
			if err := json.Unmarshal(sc.Bytes(), &je); err != nil {
				u := chunkURL(r.dir, r.seq)
				r.seq++ // skip it rather than read it again every poll
				return out, fmt.Errorf("parse %s: %w", u, err)
			}
			switch je.Kind {
			case "progress":
				out = append(out, Event{Kind: EventProgress, Done: je.Done, Total: je.Total, Unit: je.Unit, Message: je.Message})
			case "log":
				out = append(out, Event{Kind: EventLog, Level: je.Level, Message: je.Message, Fields: je.Fields})
			}
		}
		r.seq++
	}
}
