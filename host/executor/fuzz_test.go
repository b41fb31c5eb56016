package executor

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParseStatus: whatever bytes .executor_status holds (torn, damaged,
// written by another tool), parsing never panics, every entry kept has a
// status token, and the lines kept reparse to the same entries without
// problems (what appendStatus writes back is clean).
//
//	go test -run '^$' -fuzz FuzzParseStatus -fuzztime 10m ./host/executor/
func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(`{"status":"RUNNING","time":"2026-01-02T03:04:05Z","holder":"h:1:ab","message":"attempt 1"}` + "\n" + `{"status":"SUCCESS"}` + "\n"))
	f.Add([]byte("RUNNING\nSUCCESS\n"))
	f.Add([]byte(`{"status":"RUNNING"}` + "\n" + `{"status":"FAI`))
	f.Add([]byte("\x00\xff{\n}\n{\"status\":1}\n{\"status\":\"\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, good, probs := parseStatus("mem://x/.executor_status", data)
		for _, e := range h {
			if !validToken(string(e.Status)) {
				t.Fatalf("kept an entry with status %q", e.Status)
			}
		}
		for _, p := range probs {
			if p.Line < 1 || p.Err == nil || p.String() == "" {
				t.Fatalf("bad problem report %+v", p)
			}
		}
		h2, good2, probs2 := parseStatus("mem://x/.executor_status", good)
		if len(probs2) != 0 || len(h2) != len(h) || !bytes.Equal(good, good2) {
			t.Fatalf("the kept lines do not reparse cleanly: %d→%d entries, problems %v", len(h), len(h2), probs2)
		}
		for i := range h {
			a, _ := json.Marshal(h[i])
			b, _ := json.Marshal(h2[i])
			if !bytes.Equal(a, b) {
				t.Fatalf("entry %d changed on reparse: %s vs %s", i, a, b)
			}
		}
	})
}

// FuzzReadLease: a lock file of any content is either a lease with an id or
// reported corrupt, never a panic.
func FuzzParseLease(f *testing.F) {
	f.Add([]byte(`{"holder":"h:1:ab","lease_id":"0123","heartbeat":"2026-01-02T03:04:05Z","host":"h","pid":1,"boot_id":"b","pid_ns":"pid:[1]","pid_start":5}`))
	f.Add([]byte(`{"holder":"h"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := parseLease("mem://x/.executor_status.lock", data)
		if l == nil || l.LeaseID == "" {
			t.Fatalf("parseLease gave %+v, %v: callers need an id either way", l, err)
		}
		currentProcess().holderGone(l)
	})
}
