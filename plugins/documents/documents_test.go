package documents

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/marin-go/marin/plugins/storage"
)

// stdJSON is what encoding/json writes without HTML escaping.
func stdJSON(t testing.TB, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestMessagesJSONMatchesEncodingJSON(t *testing.T) {
	msgs := []Message{{"system", "Be <brief> & \"exact\"\n\ttabs\u2028sep\x01"}, {"user", "héllo 🌍 \\ /"}, {"assistant", ""}}
	got := AppendMessages(nil, msgs)
	if want := stdJSON(t, msgs); !bytes.Equal(got, want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	sum := sha256.Sum256(got)
	if ID(msgs) != hex.EncodeToString(sum[:]) {
		t.Error("ID is not the sha256 of the messages JSON")
	}
}

func TestAppendJSONRow(t *testing.T) {
	d := &Document{Source: "x/y", Messages: []Message{{"user", "hi"}, {"assistant", "yo"}}, Added: "2024-01-02T00:00:00Z",
		Metadata: map[string]any{"b": json.Number("12"), "a": []any{1.5, nil, true}, "nan": 0.0, "raw": []byte("bytes")}}
	line, err := AppendJSON(nil, d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + ID(d.Messages) + `","source":"x/y","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}],"added":"2024-01-02T00:00:00Z","created":"","metadata":{"a":[1.5,null,true],"b":12,"nan":0,"raw":"bytes"}}` + "\n"
	if string(line) != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
	d.ID = "custom"
	line, _ = AppendJSON(nil, d)
	var back Document
	if err := json.Unmarshal(line, &back); err != nil || back.ID != "custom" {
		t.Errorf("custom id: %s %v", line, err)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00\x1f", "\u2028", "é", "\xff", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, got, err)
		}
		if utf8.ValidString(s) {
			if back != s {
				t.Fatalf("round trip %q → %q", s, back)
			}
			if want := stdJSON(t, s); !bytes.Equal(got, want) {
				t.Fatalf("%q: got %s want %s", s, got, want)
			}
		}
	})
}

func readShard(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		lines = append(lines, string(l))
	}
	return lines
}

func TestWriterShardsAndRemovesStale(t *testing.T) {
	dir := t.TempDir()
	url := "file://" + dir
	// A stale shard from an earlier run with more data.
	if err := os.WriteFile(filepath.Join(dir, ShardName(9)), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func() Result {
		w := NewWriter(context.Background(), url, WriterOptions{RowsPerShard: 3})
		for i := 0; i < 7; i++ {
			if err := w.Write(&Document{Source: "s", Messages: []Message{{"user", fmt.Sprint("q", i)}, {"assistant", "a"}}}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := write()
	if res.Rows != 7 || res.Shards != 3 {
		t.Errorf("result %+v", res)
	}
	entries, _ := storage.List(context.Background(), url+"/", "/")
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Base(e.Key))
	}
	if fmt.Sprint(names) != "[shard_00000.jsonl.gz shard_00001.jsonl.gz shard_00002.jsonl.gz]" {
		t.Errorf("files %v", names)
	}
	if l := readShard(t, filepath.Join(dir, ShardName(2))); len(l) != 1 {
		t.Errorf("last shard %v", l)
	}
	first, _ := os.ReadFile(filepath.Join(dir, ShardName(0)))
	write()
	again, _ := os.ReadFile(filepath.Join(dir, ShardName(0)))
	if !bytes.Equal(first, again) {
		t.Error("rewriting the same rows changed the shard bytes")
	}
}

func TestWriterAbortKeepsCommittedShards(t *testing.T) {
	dir := t.TempDir()
	w := NewWriter(context.Background(), "file://"+dir, WriterOptions{RowsPerShard: 2, Parallel: 1})
	for i := 0; i < 3; i++ {
		if err := w.Write(&Document{Messages: []Message{{"user", "q"}, {"assistant", fmt.Sprint(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	w.Abort()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("after abort: %v, want the one complete shard", entries)
	}
	for _, e := range entries {
		if e.Name() != ShardName(0) {
			t.Errorf("unexpected file %s", e.Name())
		} else if l := readShard(t, filepath.Join(dir, e.Name())); len(l) != 2 {
			t.Errorf("committed shard has %d rows", len(l))
		}
	}
}
