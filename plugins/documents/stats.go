package documents

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/marin-go/marin/plugins/storage"
)

// StatsFile is the name of the statistics file at the top of a documents
// output.
const StatsFile = "stats.json"

// MaxDropExamples is how many example locations stats.json keeps per drop
// reason.
const MaxDropExamples = 5

// Counts are the row counts of one split or of the whole output.
type Counts struct {
	RowsRead    int64            `json:"rows_read"`
	RowsWritten int64            `json:"rows_written"`
	RowsDropped map[string]int64 `json:"rows_dropped"` // reason → rows
}

// SplitStats are the counts of one {subset}/{split} directory.
type SplitStats struct {
	Subset string   `json:"subset"`
	Split  string   `json:"split"`
	Files  []string `json:"files"` // the input files, in the order read
	Shards int      `json:"shards"`
	Counts
}

// Stats is the content of stats.json.
type Stats struct {
	Source  string `json:"source"`
	Adapter string `json:"adapter,omitempty"`
	Counts
	// DropExamples holds, per reason, where the first few dropped rows
	// were ("file:line"), so a person can look at them.
	DropExamples map[string][]string `json:"drop_examples"`
	Splits       []*SplitStats       `json:"splits"`

	mu sync.Mutex
}

// NewStats returns empty statistics for a source.
func NewStats(source, adapter string) *Stats {
	return &Stats{Source: source, Adapter: adapter, Counts: Counts{RowsDropped: map[string]int64{}}, DropExamples: map[string][]string{}}
}

// Split adds and returns the counts of a split.
func (s *Stats) Split(subset, split string) *SplitStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := &SplitStats{Subset: subset, Split: split, Files: []string{}, Counts: Counts{RowsDropped: map[string]int64{}}}
	s.Splits = append(s.Splits, sp)
	return sp
}

// Read counts a row read from sp.
func (s *Stats) Read(sp *SplitStats) {
	s.mu.Lock()
	s.RowsRead++
	sp.RowsRead++
	s.mu.Unlock()
}

// Written counts a row written to sp.
func (s *Stats) Written(sp *SplitStats) {
	s.mu.Lock()
	s.RowsWritten++
	sp.RowsWritten++
	s.mu.Unlock()
}

// Dropped counts a row of sp dropped for reason, found at where.
func (s *Stats) Dropped(sp *SplitStats, reason, where string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.RowsDropped[reason]++
	sp.RowsDropped[reason]++
	if len(s.DropExamples[reason]) < MaxDropExamples {
		s.DropExamples[reason] = append(s.DropExamples[reason], where)
	}
}

// DropSummary is "reason n, reason n" in descending count, for messages.
func (c *Counts) DropSummary() string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range c.RowsDropped {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	out := ""
	for i, e := range all {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %d", e.k, e.v)
	}
	if out == "" {
		return "none"
	}
	return out
}

// JSON encodes the statistics, indented.
func (s *Stats) JSON() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Write stores the statistics as {outURL}/stats.json, atomically.
func (s *Stats) Write(ctx context.Context, outURL string) error {
	b, err := s.JSON()
	if err != nil {
		return fmt.Errorf("encode %s: %w", StatsFile, err)
	}
	return storage.WriteAtomic(ctx, storage.Join(outURL, StatsFile), b)
}
