package tokenize

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParseRow: no documents row, however damaged, makes parseRow panic,
// and only a line that is not a JSON object is an error (anything else is
// a row or a counted skip).
//
//	go test -run '^$' -fuzz FuzzParseRow -fuzztime 10m ./backends/tokens/tokenize/
func FuzzParseRow(f *testing.F) {
	f.Add([]byte(`{"id":"tulu-1","source":"allenai/tulu-3-sft-mixture","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}],"added":"2024-01-01","created":"","metadata":{}}`), "messages")
	f.Add([]byte(`{"id":7,"conversations":[{"role":"user","content":null}]}`), "conversations")
	f.Add([]byte(`{"id":"x","messages":[{"content":"no role"}]}`), "messages")
	f.Add([]byte(`[1,2,3]`), "messages")
	f.Fuzz(func(t *testing.T, line []byte, field string) {
		r, err := parseRow(line, field)
		isObject := json.Valid(line) && bytes.HasPrefix(bytes.TrimLeft(line, " \t\r\n"), []byte("{"))
		if err != nil && isObject {
			t.Fatalf("a JSON object is an error: %v", err)
		}
		if err == nil && !isObject {
			t.Fatalf("%q is not a JSON object but parsed as %+v", line, r)
		}
	})
}
