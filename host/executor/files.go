package executor

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/marin-go/marin/plugins/redact"
	"github.com/marin-go/marin/plugins/storage"
)

// Names of the executor's files inside a step's output directory.
const (
	InfoFile   = ".executor_info"
	StatusFile = ".executor_status"
	LockFile   = ".executor_status.lock"
	// StealPrefix starts the marker a taker creates before overwriting a
	// stale lease: LockFile + ".steal-" + the stale lease's id.
	StealPrefix = LockFile + ".steal-"
)

// Status is a step's state. The first four are written to .executor_status;
// the others are outcomes a run reports without writing them.
type Status string

const (
	StatusRunning   Status = "RUNNING"
	StatusSuccess   Status = "SUCCESS"
	StatusFailed    Status = "FAILED"
	StatusDepFailed Status = "DEP_FAILED"
	// StatusBlocked: not run because it, or a dependency, FAILED before and
	// ForceRunFailed is off.
	StatusBlocked Status = "BLOCKED"
	// StatusNotRun: the run was interrupted before the step started.
	StatusNotRun Status = "NOT_RUN"
)

// Info is the content of {output}/.executor_info: what produced the output.
type Info struct {
	Name         string         `json:"name"`
	Op           string         `json:"op"`
	Plugin       PluginRef      `json:"plugin"`
	Config       map[string]any `json:"config"`
	Version      map[string]any `json:"version"`
	Dependencies []string       `json:"dependencies"`
	OutputPath   string         `json:"output_path"`
	Description  string         `json:"description,omitempty"`
	Pos          string         `json:"pos,omitempty"`
	MarinVersion string         `json:"marin_version"`
}

// StatusEntry is one line of {output}/.executor_status: a transition.
type StatusEntry struct {
	Status  Status    `json:"status"`
	Time    time.Time `json:"time"`
	Holder  string    `json:"holder,omitempty"`
	Message string    `json:"message,omitempty"`
}

// Lease is the content of {output}/.executor_status.lock.
type Lease struct {
	Holder    string    `json:"holder"`
	LeaseID   string    `json:"lease_id"`
	Heartbeat time.Time `json:"heartbeat"`
	// The holding process (see processID): a holder on this machine whose
	// process is gone is taken over at once, not after StaleAfter.
	Host  string `json:"host,omitempty"`
	PID   int    `json:"pid,omitempty"`
	Boot  string `json:"boot_id,omitempty"`
	PIDNS string `json:"pid_ns,omitempty"`
	Start uint64 `json:"pid_start,omitempty"`
}

// stealMarker is the content of a steal marker.
type stealMarker struct {
	Holder string    `json:"holder"`
	Time   time.Time `json:"time"`
}

// ReadInfo reads the .executor_info under outputPath.
func ReadInfo(ctx context.Context, outputPath string) (*Info, error) {
	u := storage.Join(outputPath, InfoFile)
	data, err := storage.ReadAll(ctx, u)
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("parse %s: %w", u, err)
	}
	return &info, nil
}

func writeInfo(ctx context.Context, outputPath string, info *Info) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", storage.Join(outputPath, InfoFile), err)
	}
	return storage.WriteAtomic(ctx, storage.Join(outputPath, InfoFile), append(data, '\n'))
}

// ReadStatus reads the status history under outputPath, oldest first. A
// missing file is an empty history, not an error. Lines that cannot be
// parsed (a torn last line left by a crashed writer on a store without
// atomic commits, or damage) are left out; ReadStatusChecked says which.
func ReadStatus(ctx context.Context, outputPath string) ([]StatusEntry, error) {
	h, _, err := ReadStatusChecked(ctx, outputPath)
	return h, err
}

// StatusProblem is a line of .executor_status that was left out.
type StatusProblem struct {
	URL  string
	Line int  // 1-based
	Torn bool // the last line, without its newline: a write cut short
	Err  error
}

func (p StatusProblem) String() string {
	what := "unreadable line"
	if p.Torn {
		what = "torn last line"
	}
	return fmt.Sprintf("%s: %s %d ignored: %v", p.URL, what, p.Line, p.Err)
}

// ReadStatusChecked is ReadStatus that also returns the lines it left out.
// Its error is an I/O error: the status could not be read at all.
func ReadStatusChecked(ctx context.Context, outputPath string) ([]StatusEntry, []StatusProblem, error) {
	u := storage.Join(outputPath, StatusFile)
	data, err := storage.ReadAll(ctx, u)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	h, _, probs := parseStatus(u, data)
	return h, probs, nil
}

// maxStatusLine bounds one line of .executor_status; a longer one is
// damage (messages are cut to a few KiB when written).
const maxStatusLine = 1 << 20

// parseStatus reads status lines, leaving out (and reporting) those that do
// not parse. good holds the raw bytes of the lines kept, each ending in a
// newline, for a writer that rewrites the file without the bad ones.
func parseStatus(u string, data []byte) (out []StatusEntry, good []byte, probs []StatusProblem) {
	lines := bytes.Split(data, []byte("\n"))
	for i, raw := range lines {
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue
		}
		// The final element has no newline after it: a write that
		// stopped there was cut short.
		torn := i == len(lines)-1
		e, err := parseStatusLine(line)
		if err != nil {
			probs = append(probs, StatusProblem{URL: u, Line: i + 1, Torn: torn, Err: err})
			continue
		}
		out = append(out, e)
		good = append(append(good, line...), '\n')
	}
	return out, good, probs
}

// parseStatusLine reads one line: a JSON StatusEntry, or Marin's newest
// format, a bare status token.
func parseStatusLine(line []byte) (StatusEntry, error) {
	if len(line) > maxStatusLine {
		return StatusEntry{}, fmt.Errorf("line of %d bytes is longer than %d", len(line), maxStatusLine)
	}
	if line[0] != '{' {
		tok := string(line)
		if !validToken(tok) {
			return StatusEntry{}, fmt.Errorf("%.40q is neither a JSON object nor a status token", tok)
		}
		return StatusEntry{Status: Status(strings.ToUpper(tok))}, nil
	}
	var e StatusEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return StatusEntry{}, err
	}
	if !validToken(string(e.Status)) {
		return StatusEntry{}, fmt.Errorf("status %.40q is not a status token", e.Status)
	}
	return e, nil
}

// validToken: a status is a short word of letters and underscores.
func validToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// last returns the current status (the last entry), or nil.
func last(h []StatusEntry) *StatusEntry {
	if len(h) == 0 {
		return nil
	}
	return &h[len(h)-1]
}

// maxStatusMessage bounds a message kept in .executor_status: the full
// error stays in the logs.
const maxStatusMessage = 4096

// appendStatus records a transition. Only the lease holder calls it, so the
// read-modify-write cannot interleave with another writer. Lines of the old
// file that do not parse (a torn last line) are dropped in the rewrite, and
// the message is redacted of secrets before it reaches a file that may sit
// in a shared bucket.
func appendStatus(ctx context.Context, outputPath string, e StatusEntry) error {
	u := storage.Join(outputPath, StatusFile)
	old, err := storage.ReadAll(ctx, u)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	_, good, _ := parseStatus(u, old)
	e.Message = redact.String(e.Message)
	if len(e.Message) > maxStatusMessage {
		e.Message = truncate(e.Message, maxStatusMessage) + "…"
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode status for %s: %w", u, err)
	}
	buf := append(good, line...)
	buf = append(buf, '\n')
	return storage.WriteAtomic(ctx, u, buf)
}

// readLease reads the lock file under outputPath. A missing lock gives an
// error matching storage.ErrNotExist.
func readLease(ctx context.Context, outputPath string) (*Lease, error) {
	l, _, err := readLeaseVersion(ctx, outputPath)
	return l, err
}

// readLeaseVersion is readLease that also returns the version of the lock
// it read (also when it is corrupt), for a conditional overwrite: only a
// writer that saw this exact lock may replace it (storage.ReplaceIfVersion).
func readLeaseVersion(ctx context.Context, outputPath string) (*Lease, storage.Version, error) {
	u := storage.Join(outputPath, LockFile)
	data, ver, err := storage.ReadVersioned(ctx, u)
	if err != nil {
		return nil, "", err
	}
	l, err := parseLease(u, data)
	return l, ver, err
}

// parseLease reads a lock file's content (see readLease).
func parseLease(u string, data []byte) (*Lease, error) {
	var l Lease
	if err := json.Unmarshal(data, &l); err != nil || l.LeaseID == "" {
		// A lock nobody can parse can never be heartbeaten by its writer
		// either; callers treat it as stale, under an id derived from its
		// bytes so that takers still race on one steal marker.
		sum := md5.Sum(data)
		corrupt := &Lease{LeaseID: "corrupt-" + hex.EncodeToString(sum[:6])}
		if err == nil {
			err = errors.New("no lease_id")
		}
		return corrupt, fmt.Errorf("parse %s: %w: %w", u, errCorruptLease, err)
	}
	return &l, nil
}

var errCorruptLease = errors.New("corrupt lease")
