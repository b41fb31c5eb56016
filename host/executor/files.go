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
// missing file is an empty history, not an error.
func ReadStatus(ctx context.Context, outputPath string) ([]StatusEntry, error) {
	u := storage.Join(outputPath, StatusFile)
	data, err := storage.ReadAll(ctx, u)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseStatus(u, data)
}

func parseStatus(u string, data []byte) ([]StatusEntry, error) {
	var out []StatusEntry
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if line[0] != '{' {
			// Marin's newest format is a bare status token.
			out = append(out, StatusEntry{Status: Status(strings.ToUpper(string(line)))})
			continue
		}
		var e StatusEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("parse %s: line %d: %w", u, i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// last returns the current status (the last entry), or nil.
func last(h []StatusEntry) *StatusEntry {
	if len(h) == 0 {
		return nil
	}
	return &h[len(h)-1]
}

// appendStatus records a transition. Only the lease holder calls it, so the
// read-modify-write cannot interleave with another writer.
func appendStatus(ctx context.Context, outputPath string, e StatusEntry) error {
	u := storage.Join(outputPath, StatusFile)
	old, err := storage.ReadAll(ctx, u)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode status for %s: %w", u, err)
	}
	var buf bytes.Buffer
	buf.Write(old)
	if len(old) > 0 && old[len(old)-1] != '\n' {
		buf.WriteByte('\n')
	}
	buf.Write(line)
	buf.WriteByte('\n')
	return storage.WriteAtomic(ctx, u, buf.Bytes())
}

// readLease reads the lock file under outputPath. A missing lock gives an
// error matching storage.ErrNotExist.
func readLease(ctx context.Context, outputPath string) (*Lease, error) {
	u := storage.Join(outputPath, LockFile)
	data, err := storage.ReadAll(ctx, u)
	if err != nil {
		return nil, err
	}
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
