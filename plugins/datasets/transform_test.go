package datasets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/marin-go/marin/plugins/documents"
	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/hfhub/hubtest"
	"github.com/marin-go/marin/plugins/sdk"
)

func readStats(t *testing.T, out string) *documents.Stats {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, documents.StatsFile))
	if err != nil {
		t.Fatal(err)
	}
	s := &documents.Stats{}
	if err := json.Unmarshal(b, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMalformedRowsAreCountedByReason(t *testing.T) {
	dir := t.TempDir()
	good := `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`
	lines := []string{
		good,
		`{"messages":[{"content":"no role"},{"role":"assistant","content":"a"}]}`,
		`{"messages":[{"role":"user","content":""},{"role":"assistant","content":"a"}]}`,
		`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"  \n"}]}`,
		`{"messages":[{"role":"user","content":"q"},{"role":"assistant"}]}`,
		`{"messages":[{"role":"user","content":["a","list"]},{"role":"assistant","content":"a"}]}`,
		`{"messages":[{"role":7,"content":"q"},{"role":"assistant","content":"a"}]}`,
		`{"messages":"not a list"}`,
		`{"messages":["not a dict"]}`,
		`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"},{"role":"user","content":"and?"}]}`,
		`{"messages":[{"role":"system","content":"s"}]}`,
		`{"messages":[]}`,
		`{"other":"column"}`,
		`{"messages":null}`,
		`{"messages":[{"role":"wizard","content":"q"},{"role":"assistant","content":"a"}]}`,
		`["a row that is not an object"]`,
		"{\"messages\":[{\"role\":\"user\",\"content\":\"bad \xff\xfe bytes\"},{\"role\":\"assistant\",\"content\":\"a\"}]}",
		``,
		good,
	}
	writeFile(t, filepath.Join(dir, "mine.jsonl"), []byte(strings.Join(lines, "\n")+"\n"))
	out, _, err := runTransform(t, map[string]any{"adapter": "messages", "splits": []any{"train"}, "source": "mine"}, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	s := readStats(t, out)
	want := map[string]int64{
		reasonMissingRole: 1, reasonEmptyContent: 2, reasonMissingContent: 1, reasonWrongType: 5, reasonEndsOnUser: 1,
		reasonNoAssistant: 1, reasonEmptyConversation: 1, reasonMissingField: 2, reasonUnknownRole: 1, reasonInvalidUTF8: 1,
	}
	if s.RowsRead != 18 || s.RowsWritten != 2 {
		t.Errorf("read %d written %d, want 18 and 2 (blank lines are not rows)", s.RowsRead, s.RowsWritten)
	}
	for k, v := range want {
		if s.RowsDropped[k] != v {
			t.Errorf("%s: %d, want %d", k, s.RowsDropped[k], v)
		}
	}
	if len(s.RowsDropped) != len(want) {
		t.Errorf("reasons: %v", s.RowsDropped)
	}
	if ex := s.DropExamples[reasonInvalidUTF8]; len(ex) != 1 || ex[0] != "mine.jsonl:17" {
		t.Errorf("invalid UTF-8 example: %v", ex)
	}
}

func TestMalformedFileFailsNamingFileAndLineAndKeepsOutputs(t *testing.T) {
	dir := t.TempDir()
	var good bytes.Buffer
	for i := 0; i < 5; i++ {
		good.WriteString(`{"messages":[{"role":"user","content":"q` + string(rune('0'+i)) + `"},{"role":"assistant","content":"a"}]}` + "\n")
	}
	writeFile(t, filepath.Join(dir, "a.jsonl"), good.Bytes())
	writeFile(t, filepath.Join(dir, "b.jsonl"), []byte(`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`+"\n\n"+`{"messages": [}`+"\n"))
	cfg := map[string]any{"adapter": "messages", "rows_per_shard": 2}
	out := filepath.Join(t.TempDir(), "documents")
	// A complete output of an earlier run is there.
	writeFile(t, filepath.Join(out, documents.StatsFile), []byte(`{"earlier": true}`))
	c := map[string]any{"input": "file://" + dir}
	for k, v := range cfg {
		c[k] = v
	}
	err := transform(context.Background(), request(t, "dataset/transform", c, "file://"+out), &reporter{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "b.jsonl")) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("want an error naming b.jsonl line 3, got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, documents.StatsFile)); string(b) != `{"earlier": true}` {
		t.Errorf("the earlier stats.json was replaced: %s", b)
	}
	// The shards completed before the bad line are there, whole: the 5 rows
	// of a.jsonl and the first of b.jsonl make 3 shards of 2.
	got := readOutput(t, filepath.Join(out, "default"))
	if strings.Count(got, "== train/shard_") != 3 || strings.Count(got, `"role":"user"`) != 6 {
		t.Errorf("committed shards:\n%s", got)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "default", "train"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}

	// Other malformed files: bad parquet, bad gzip, bad JSON array.
	for name, data := range map[string][]byte{
		"x.parquet":  []byte("PAR1 this is not parquet PAR1"),
		"x.jsonl.gz": []byte("not gzip"),
		"x.json":     []byte("[\n{\"messages\": []},\n{\"messages\": [\n}\n]"),
	} {
		d := t.TempDir()
		writeFile(t, filepath.Join(d, name), data)
		_, _, err := runTransform(t, map[string]any{"adapter": "messages"}, "file://"+d)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(d, name)) {
			t.Errorf("%s: %v", name, err)
		}
		// The bad element starts on line 3.
		if name == "x.json" && !strings.Contains(err.Error(), "line 3") {
			t.Errorf("%s: want line 3: %v", name, err)
		}
	}
}

func TestNoUsableRowsFails(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "d.jsonl"), []byte(`{"prompt":"p","completion":"c"}`+"\n"))
	_, _, err := runTransform(t, map[string]any{"adapter": "messages"}, "file://"+dir)
	var d *sdk.Diagnostic
	if !errors.As(err, &d) || !strings.Contains(err.Error(), "missing_field 1") {
		t.Errorf("got %v", err)
	}
}

func TestShardingAndSplits(t *testing.T) {
	dir := t.TempDir()
	var rows []any
	for i := 0; i < 12; i++ {
		rows = append(rows, map[string]any{"instruction": "q", "response": strings.Repeat("a", i+1)})
	}
	writeFile(t, filepath.Join(dir, "train.jsonl.gz"), gz(t, jsonLines(t, rows...)))
	writeFile(t, filepath.Join(dir, "validation.jsonl"), jsonLines(t, rows[:3]...))
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("ignored"))
	out, _, err := runTransform(t, map[string]any{"adapter": "instruction_response", "splits": []any{"train", "validation"}, "rows_per_shard": 5}, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"default/train/shard_00000.jsonl.gz", "default/train/shard_00001.jsonl.gz", "default/train/shard_00002.jsonl.gz", "default/validation/shard_00000.jsonl.gz"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	s := readStats(t, out)
	if s.RowsWritten != 15 || len(s.Splits) != 2 || s.Splits[0].Shards != 3 || s.Splits[1].RowsWritten != 3 {
		t.Errorf("stats %+v", s.Counts)
	}
	// Two splits, files that name neither: an error that says so.
	d2 := t.TempDir()
	writeFile(t, filepath.Join(d2, "data.jsonl"), jsonLines(t, rows[0]))
	_, _, err = runTransform(t, map[string]any{"adapter": "instruction_response", "splits": []any{"train", "test"}}, "file://"+d2)
	if err == nil || !strings.Contains(err.Error(), "cannot tell which of the splits") {
		t.Errorf("ambiguous split: %v", err)
	}
}

// A local path through get_instruction_dataset, as in
// get_instruction_dataset(path="data/mine.jsonl", adapter="messages").
func TestLocalPathFromScript(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "exp.star")
	writeFile(t, filepath.Join(dir, "data", "mine.jsonl"), jsonLines(t,
		map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}, map[string]any{"role": "assistant", "content": "hello"}}, "tag": "x"}))
	src := `ds = get_instruction_dataset(path="data/mine.jsonl", adapter="messages", fields={"metadata": "tag"})
executor_main(steps=[ds])
`
	writeFile(t, script, []byte(src))
	_, cfg := registryStepsFile(t, script)
	out, _, err := runTransform(t, cfg, cfg["input"].(string))
	if err != nil {
		t.Fatal(err)
	}
	got := readOutput(t, out)
	if !strings.Contains(got, `"source":"data/mine.jsonl","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}],"added":"","created":"","metadata":{"tag":"x"}`) {
		t.Errorf("output:\n%s", got)
	}
}

// TestDownloadThenTransform drives dataset/download against a fake hub
// (tree listing at a revision, resolve with redirect, a 429, a dropped
// connection, a corrupted transfer) and transforms what it fetched.
func TestDownloadThenTransform(t *testing.T) {
	dlCfg, trCfg := registrySteps(t, `get_instruction_dataset("allenai/tulu-3-sft-mixture")`)
	src := t.TempDir()
	adapterCases[0].files(t, src)
	files := map[string][]byte{"README.md": []byte("# tulu 3\n")}
	for _, p := range []string{"data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"} {
		b, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	commit := "55e9fd6d41c3cd1a98270dff07557bc2a1e1ba91"
	hub := hubtest.New(&hubtest.Repo{Type: "dataset", ID: "allenai/tulu-3-sft-mixture", Commit: commit, Branches: []string{"main"},
		Date: time.Date(2024, 11, 21, 16, 0, 0, 0, time.UTC), Files: files,
		LFS: map[string]bool{"data/train-00000-of-00002.parquet": true, "data/train-00001-of-00002.parquet": true}})
	defer hub.Close()
	hub.PageSize = 2
	t.Setenv(hfhub.EndpointEnv, hub.URL())
	t.Setenv(hfhub.TokenEnv, "")
	t.Setenv(hfhub.LegacyTokenEnv, "")
	hub.FailNextAPI(hubtest.Fault{Status: 429, RetryAfter: "0"})
	hub.FailNext("data/train-00000-of-00002.parquet", hubtest.Fault{DropAfter: 100})
	hub.FailNext("data/train-00001-of-00002.parquet", hubtest.Fault{Corrupt: true})

	raw := filepath.Join(t.TempDir(), "raw")
	rep := &reporter{}
	if err := download(context.Background(), request(t, "dataset/download", dlCfg, "file://"+raw), rep); err != nil {
		t.Fatal(err)
	}
	for p, want := range files {
		if p == "README.md" {
			if _, err := os.Stat(filepath.Join(raw, p)); err == nil {
				t.Error("README.md was downloaded though no glob selects it")
			}
			continue
		}
		got, err := os.ReadFile(filepath.Join(raw, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v", p, err)
		}
	}
	var man downloadManifest
	b, _ := os.ReadFile(filepath.Join(raw, manifestFile))
	if err := json.Unmarshal(b, &man); err != nil || man.Commit != commit || man.Revision != "55e9fd6" || len(man.Files) != 2 {
		t.Errorf("manifest %s %v", b, err)
	}
	var sawRange bool
	for _, r := range hub.Requests() {
		sawRange = sawRange || r.Range == "bytes=100-"
	}
	if !sawRange {
		t.Error("the dropped download was not resumed with a Range request")
	}
	if !strings.Contains(strings.Join(rep.logs, "\n"), "corrupt copy fetched again") {
		t.Errorf("logs: %v", rep.logs)
	}
	if last := rep.progress[len(rep.progress)-1]; !strings.Contains(last, "bytes") || !strings.Contains(last, "MB/s") {
		t.Errorf("progress %v", rep.progress)
	}

	// Rerun (a step retried after a later failure): nothing is fetched again.
	hub.ResetRequests()
	if err := download(context.Background(), request(t, "dataset/download", dlCfg, "file://"+raw), &reporter{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range hub.Requests() {
		if r.CDN {
			t.Errorf("rerun downloaded %+v", r)
		}
	}

	// The transform over the download gives the golden documents.
	out, _, err := runTransform(t, trCfg, "file://"+raw)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "tulu-3-sft-mixture.golden", readOutput(t, out))

	// Storage URL outputs (object stores) go through a staging file.
	mem := "mem://dl-test/raw"
	if err := download(context.Background(), request(t, "dataset/download", dlCfg, mem), &reporter{}); err != nil {
		t.Fatal(err)
	}
	out2, _, err := runTransform(t, trCfg, mem)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "tulu-3-sft-mixture.golden", readOutput(t, out2))
}

func TestDownloadErrors(t *testing.T) {
	hub := hubtest.New(
		&hubtest.Repo{Type: "dataset", ID: "meta/gated", Commit: strings.Repeat("a", 40), Branches: []string{"main"}, Gated: true, Files: map[string][]byte{"a.jsonl": []byte("{}\n")}},
		&hubtest.Repo{Type: "dataset", ID: "org/data", Commit: strings.Repeat("b", 40), Branches: []string{"main"}, Files: map[string][]byte{"x.jsonl": []byte("{}\n")}},
	)
	defer hub.Close()
	hub.Token = "hf_tok_secret"
	t.Setenv(hfhub.EndpointEnv, hub.URL())
	t.Setenv(hfhub.TokenEnv, "")
	t.Setenv(hfhub.LegacyTokenEnv, "")
	run := func(cfg map[string]any) error {
		return download(context.Background(), request(t, "dataset/download", cfg, "file://"+t.TempDir()), &reporter{})
	}
	if err := run(map[string]any{"hf_dataset_id": "meta/gated", "revision": "main"}); !errors.Is(err, hfhub.ErrGated) {
		t.Errorf("gated: %v", err)
	}
	if err := run(map[string]any{"hf_dataset_id": "org/missing", "revision": "main"}); !errors.Is(err, hfhub.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if err := run(map[string]any{"hf_dataset_id": "org/data", "revision": "ccccccc"}); !errors.Is(err, hfhub.ErrNotFound) {
		t.Errorf("bad revision: %v", err)
	}
	err := run(map[string]any{"hf_dataset_id": "org/data", "revision": "main", "file_globs": []any{"data/*.parquet"}})
	if err == nil || !strings.Contains(err.Error(), `"data/*.parquet" matches no file (files: x.jsonl)`) {
		t.Errorf("glob: %v", err)
	}
	t.Setenv(hfhub.TokenEnv, "hf_tok_secret")
	rep := &reporter{}
	if err := download(context.Background(), request(t, "dataset/download", map[string]any{"hf_dataset_id": "meta/gated", "revision": "main"}, "file://"+t.TempDir()), rep); err != nil {
		t.Errorf("gated with token: %v", err)
	}
	if strings.Contains(strings.Join(rep.logs, " "), "hf_tok_secret") {
		t.Error("the token was logged")
	}
}

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		glob, path string
		want       bool
	}{
		{"data/train-*.parquet", "data/train-00000-of-00001.parquet", true},
		{"data/train-*.parquet", "data/all/train-00000-of-00001.parquet", false},
		{"*.parquet", "1M-GPT4-Augmented.parquet", true},
		{"*.parquet", "data/x.parquet", false},
		{"**/*.parquet", "data/x.parquet", true},
		{"**/*.parquet", "x.parquet", true},
		{"data/**", "data/a/b.json", true},
	} {
		if got := globMatch(c.glob, c.path); got != c.want {
			t.Errorf("%s ~ %s: %v", c.glob, c.path, got)
		}
	}
}

func TestSplitAndSubsetOf(t *testing.T) {
	if s := splitOf("data/train_sft-00000-of-00003-abc.parquet", []string{"train_sft"}); s != "train_sft" {
		t.Errorf("train_sft: %q", s)
	}
	if s := splitOf("data/test-00000-of-00001.parquet", []string{"train"}); s != "test" {
		t.Errorf("test: %q", s)
	}
	if s := splitOf("databricks-dolly-15k.jsonl", []string{"train"}); s != "" {
		t.Errorf("unnamed: %q", s)
	}
	if s := splitOf("validation/part.jsonl", []string{"train", "validation"}); s != "validation" {
		t.Errorf("dir: %q", s)
	}
	subs := []string{"reasoning-deepseek", "reasoning-flash"}
	if s := subsetOf("dolphin-r1-reasoning-flash.jsonl", subs); s != "reasoning-flash" {
		t.Errorf("flash: %q", s)
	}
	if s := subsetOf("dolphin-r1-nonreasoning.jsonl", subs); s != "" {
		t.Errorf("nonreasoning: %q", s)
	}
}

// Fuzz the readers and adapters: any bytes, read as JSON lines or a JSON
// array and fed to every adapter, never panic.
func FuzzReadersAndAdapters(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`))
	f.Add([]byte(`[{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}]}]`))
	f.Add([]byte(`{"instruction":"i","input":"x","output":"o","responses":[{"response":"r","pass_rate":1}]}`))
	f.Add([]byte("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}\n\n[1]\n"))
	f.Add([]byte(`{"messages":[{"role":"user","content":"q"}],"answer":null}`))
	var ads []*adapter
	for _, name := range adapterNames {
		a, err := newAdapter(name, map[string]any{"metadata": "id,source", "filter_on": "pass_rate", "content": "content"})
		if err != nil {
			a, err = newAdapter(name, nil)
		}
		if err != nil {
			f.Fatal(err)
		}
		ads = append(ads, a)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var n atomic.Int64
		readers := []rowReader{
			&jsonlReader{url: "fuzz.jsonl", r: newBuf(data), close: func() error { return nil }},
			newArrayReader("fuzz.json", bytes.NewReader(data), func() error { return nil }),
		}
		if p, err := newParquetReader("fuzz.parquet", countingReaderAt{bytes.NewReader(data), &n}, int64(len(data)), func() error { return nil }); err == nil {
			readers = append(readers, p)
		}
		for _, rr := range readers {
			for i := 0; i < 1000; i++ {
				rec, err := rr.Next()
				if err != nil {
					if err != io.EOF && !strings.Contains(err.Error(), "fuzz.") {
						t.Fatalf("error does not name the file: %v", err)
					}
					break
				}
				if rec.vals == nil {
					continue
				}
				for _, a := range ads {
					msgs, reason := a.convert(rec.vals)
					if reason == "" {
						if _, err := documents.AppendJSON(nil, &documents.Document{Messages: msgs, Metadata: a.metadata(rec.vals)}); err != nil {
							t.Fatal(err)
						}
						if check(msgs) != "" {
							t.Fatal("an accepted conversation fails the checks")
						}
					}
				}
			}
			rr.Close()
		}
	})
}

// Hub parquet files (pyarrow) make every column nullable; nulls must reach
// the adapters as missing values, not zero values.
func TestParquetNullableColumns(t *testing.T) {
	type optMsg struct {
		Content *string `parquet:"content,optional"`
		Role    *string `parquet:"role,optional"`
	}
	type optRow struct {
		Messages []optMsg `parquet:"messages,list,optional"`
		Tag      *string  `parquet:"tag,optional"`
		Score    *float64 `parquet:"score,optional"`
	}
	s := func(v string) *string { return &v }
	f := func(v float64) *float64 { return &v }
	dir := t.TempDir()
	writeParquet(t, filepath.Join(dir, "train-00000-of-00001.parquet"), []optRow{
		{[]optMsg{{s("q"), s("user")}, {s("a"), s("assistant")}}, s("x"), f(0.5)},
		{[]optMsg{{s("q"), nil}, {s("a"), s("assistant")}}, nil, nil},
		{[]optMsg{{nil, s("user")}, {s("a"), s("assistant")}}, nil, nil},
		{nil, s("no messages"), nil},
	})
	out, _, err := runTransform(t, map[string]any{"adapter": "messages", "fields": map[string]any{"metadata": "tag,score"}}, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	st := readStats(t, out)
	if st.RowsWritten != 1 || st.RowsDropped[reasonMissingRole] != 1 || st.RowsDropped[reasonMissingContent] != 1 || st.RowsDropped[reasonMissingField]+st.RowsDropped[reasonEmptyConversation] != 1 {
		t.Errorf("counts %+v", st.Counts)
	}
	if got := readOutput(t, out); !strings.Contains(got, `"metadata":{"score":0.5,"tag":"x"}`) {
		t.Errorf("output:\n%s", got)
	}
}
