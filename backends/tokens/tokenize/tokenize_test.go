package tokenize

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokencache"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// testInput writes three documents shards (two subsets/splits) with a few
// rows that must be skipped, and returns the directory and the good docs in
// cache order.
func testInput(t *testing.T) (string, []doc) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 8))
	in := t.TempDir()
	a, b, c := genDocs(r, "a", 40, 8), genDocs(r, "b", 25, 8), genDocs(r, "c", 30, 8)
	rowsA := rowsOf(a[:20])
	rowsA = append(rowsA,
		doc{ID: "only-user", Messages: []chat.Message{{Role: "user", Content: "the end."}}},
		map[string]any{"id": "no-messages", "text": "x"},
		map[string]any{"id": "bad-content", "messages": []any{map[string]any{"role": "user", "content": []any{1}}}},
		"",
		map[string]any{"id": "empty", "messages": []any{}},
	)
	rowsA = append(rowsA, rowsOf(a[20:])...)
	writeShard(t, in, "default/train/shard_00000.jsonl.gz", rowsA)
	writeShard(t, in, "default/train/shard_00001.jsonl.gz", rowsOf(b))
	writeShard(t, in, "extra/train/shard_00000.jsonl", rowsOf(c))
	writeShard(t, in, ".executor_info", []any{"{}"})
	writeShard(t, in, "default/train/.shard_00002.jsonl.gz.tmp-1", rowsOf(c))
	return in, append(append(a, b...), c...)
}

func TestTokenize(t *testing.T) {
	in, docs := testInput(t)
	out := t.TempDir()
	ev := &events{}
	j := &Job{Config: Config{Input: in, Tokenizer: tinyTokenizer, Format: formatJSON(t, llama3Options()), IsValidation: true}, Out: out, Report: ev}
	runJob(t, j)

	c := openCache(t, out)
	wantIDs, wantMasks := expect(t, tinyTokenizer, llama3Options(), docs)
	if c.NumDocs() != int64(len(docs)) || len(wantIDs) != len(docs) {
		t.Fatalf("%d documents in the cache, %d expected", c.NumDocs(), len(docs))
	}
	var tokens, trainable int64
	for i := range docs {
		ids, mask := c.Doc(int64(i))
		if !reflect.DeepEqual(ids, wantIDs[i]) || !reflect.DeepEqual(mask, wantMasks[i]) {
			t.Fatalf("document %d (%s) differs from the chat package's encoding", i, docs[i].ID)
		}
		tokens += int64(len(ids))
		for _, m := range mask {
			trainable += int64(m)
		}
	}
	m := c.Manifest()
	if m.Counts.Tokens != tokens || m.Counts.TrainableTokens != trainable || m.Counts.Conversations != int64(len(docs))+4 {
		t.Errorf("counts %+v", m.Counts)
	}
	wantSkips := map[string]int64{chat.SkipNoTrainable: 1, "no_messages_field": 1, "bad_messages": 1, chat.SkipNoMessages: 1}
	if !reflect.DeepEqual(m.Counts.Skipped, wantSkips) {
		t.Errorf("skipped %v, want %v", m.Counts.Skipped, wantSkips)
	}
	if len(m.SkipExamples) != 4 || m.SkipExamples[0].Source != "default/train/shard_00000.jsonl.gz" {
		t.Errorf("skip examples: %+v", m.SkipExamples)
	}
	if !m.IsValidation || m.Tokenizer.Name != tinyTokenizer || len(m.Tokenizer.SHA256) != 64 || m.Tokenizer.VocabSize < 290 || m.Input != in {
		t.Errorf("manifest: %+v", m)
	}
	var f chat.Options
	if err := json.Unmarshal(m.Format, &f); err != nil || f != llama3Options() {
		t.Errorf("format in manifest: %s", m.Format)
	}
	if len(m.Shards) != 3 || m.Shards[2].Source != "extra/train/shard_00000.jsonl" {
		t.Errorf("shards: %+v", m.Shards)
	}
	if j.Stats.Shards != 3 || j.Stats.ShardsReused != 0 || j.Stats.NewTokens != tokens {
		t.Errorf("stats: %+v", j.Stats)
	}
	if !strings.Contains(ev.joined(), "tokens/s") || ev.last[0] != float64(tokens) || ev.last[1] != float64(tokens) {
		t.Errorf("progress: %v\n%s", ev.last, ev.joined())
	}
}

// TestDeterministic: the cache bytes do not depend on the number of workers.
func TestDeterministic(t *testing.T) {
	in, _ := testInput(t)
	var caches []map[string][]byte
	for _, workers := range []int{1, 5} {
		out := t.TempDir()
		runJob(t, &Job{Config: Config{Input: in, Tokenizer: tinyTokenizer, Format: formatJSON(t, llama3Options())}, Out: out, Workers: workers})
		caches = append(caches, cacheFiles(t, out))
	}
	if !reflect.DeepEqual(caches[0], caches[1]) {
		t.Error("1 worker and 5 workers wrote different caches")
	}
}

// TestResumeAfterCrash: a run that dies after two of three shards leaves
// two committed shards and no manifest; the rerun keeps them, redoes the
// third, and the cache is byte-identical to an uninterrupted run. A damaged
// shard, or a change of format, is redone.
func TestResumeAfterCrash(t *testing.T) {
	in, _ := testInput(t)
	cfg := Config{Input: in, Tokenizer: tinyTokenizer, Format: formatJSON(t, llama3Options())}
	ref := t.TempDir()
	runJob(t, &Job{Config: cfg, Out: ref})

	out := t.TempDir()
	crash := errors.New("simulated crash")
	j := &Job{Config: cfg, Out: out, afterShard: func(i int) error {
		if i == 1 {
			return crash
		}
		return nil
	}}
	if err := j.Run(context.Background()); !errors.Is(err, crash) {
		t.Fatalf("first run: %v", err)
	}
	if _, err := tokencache.Open(out); err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Fatalf("a crashed run's cache must not open: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "shards", "shard_00002.ids")); !os.IsNotExist(err) {
		t.Fatalf("shard 2 exists after the crash: %v", err)
	}
	// Leftovers of a shard that was being written when the process died.
	os.WriteFile(filepath.Join(out, "shards", ".shard_00002.ids.tmp-123"), []byte("junk"), 0o644)

	ev := &events{}
	j = &Job{Config: cfg, Out: out, Report: ev}
	runJob(t, j)
	if j.Stats.ShardsReused != 2 || !strings.Contains(ev.joined(), "kept a complete shard") {
		t.Errorf("rerun reused %d shards, want 2\n%s", j.Stats.ShardsReused, ev.joined())
	}
	if got, want := cacheFiles(t, out), cacheFiles(t, ref); !reflect.DeepEqual(got, want) {
		t.Errorf("resumed cache differs from an uninterrupted run: %d vs %d files", len(got), len(want))
	}

	// A damaged shard is redone.
	p := filepath.Join(out, "shards", "shard_00001.mask")
	b, _ := os.ReadFile(p)
	b[3] ^= 1
	os.WriteFile(p, b, 0o644)
	ev = &events{}
	j = &Job{Config: cfg, Out: out, Report: ev}
	runJob(t, j)
	if j.Stats.ShardsReused != 2 || !strings.Contains(ev.joined(), "redoing a damaged shard") {
		t.Errorf("damaged shard: reused %d\n%s", j.Stats.ShardsReused, ev.joined())
	}
	if got, want := cacheFiles(t, out), cacheFiles(t, ref); !reflect.DeepEqual(got, want) {
		t.Error("cache after redoing a damaged shard differs")
	}

	// Another format shares nothing.
	o := llama3Options()
	o.TrainEndOfTurn = false
	cfg.Format = formatJSON(t, o)
	j = &Job{Config: cfg, Out: out}
	runJob(t, j)
	if j.Stats.ShardsReused != 0 {
		t.Errorf("a different format reused %d shards", j.Stats.ShardsReused)
	}
}

func TestFailures(t *testing.T) {
	in, _ := testInput(t)
	onlyUser := t.TempDir()
	writeShard(t, onlyUser, "d/train/shard_00000.jsonl.gz", []any{
		doc{ID: "1", Messages: []chat.Message{{Role: "user", Content: "a"}}},
		doc{ID: "2", Messages: []chat.Message{{Role: "user", Content: "b"}, {Role: "assistant", Content: ""}}},
	})
	broken := t.TempDir()
	writeShard(t, broken, "d/train/shard_00000.jsonl", []any{doc{ID: "1", Messages: []chat.Message{{Role: "user", Content: "a"}}}, "", `{"id": "2", "messages": [`})
	noGen := chat.DefaultOptions()
	noGen.Template = "{% for m in messages %}{{ m.content }}{% endfor %}"
	noTrainEOT := llama3Options()
	noTrainEOT.TrainEndOfTurn = false
	plugin := chat.DefaultOptions()
	plugin.Name, plugin.Plugin = chat.NamePlugin, "nope"
	cases := []struct {
		name      string
		cfg       Config
		want      string
		attribute string
	}{
		{"every conversation skipped", Config{Input: onlyUser, Tokenizer: tinyTokenizer, Format: formatJSON(t, noTrainEOT)},
			"every one of the 2 conversations was skipped (no_trainable_tokens: 2)", "format"},
		{"malformed line", Config{Input: broken, Tokenizer: tinyTokenizer, Format: formatJSON(t, llama3Options())},
			"shard_00000.jsonl: line 3: not a JSON object", ""},
		{"template without generation", Config{Input: in, Tokenizer: tinyTokenizer, Format: formatJSON(t, noGen)}, "no {% generation %}", "format"},
		{"hf_template without a template", Config{Input: in, Tokenizer: tinyTokenizer, Format: formatJSON(t, chat.DefaultOptions())}, "no chat_template", "format"},
		{"unknown format plugin", Config{Input: in, Tokenizer: tinyTokenizer, Format: formatJSON(t, plugin)}, `no plugin named "nope"`, "format"},
		{"bad format", Config{Input: in, Tokenizer: tinyTokenizer, Format: json.RawMessage(`{"name": "llama3_instruct", "colour": 1}`)}, `unknown field "colour"`, "format"},
		{"alpaca, tokenizer given as a directory", Config{Input: in, Tokenizer: "testdata/tiny", Format: json.RawMessage(`{"name": "alpaca"}`)}, "", ""},
		{"no input", Config{Tokenizer: tinyTokenizer}, `"input": missing`, "input"},
		{"no such input", Config{Input: filepath.Join(in, "nope"), Tokenizer: tinyTokenizer, Format: formatJSON(t, llama3Options())}, "no *.jsonl.gz or *.jsonl files", "input"},
		{"no such tokenizer", Config{Input: in, Tokenizer: "testdata/nope.json", Format: formatJSON(t, llama3Options())}, "nope.json", "tokenizer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := (&Job{Config: c.cfg, Out: t.TempDir()}).Run(context.Background())
			if c.want == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			var d *sdk.Diagnostic
			if c.attribute != "" && (!errors.As(err, &d) || d.Attribute != c.attribute) {
				t.Errorf("diagnostic attribute: %+v, want %q", d, c.attribute)
			}
		})
	}
}

func TestInputGlob(t *testing.T) {
	in, _ := testInput(t)
	got, err := listInputs(context.Background(), in+"/**/*.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, g := range got {
		rels = append(rels, g.Rel)
	}
	if want := []string{"default/train/shard_00000.jsonl.gz", "default/train/shard_00001.jsonl.gz"}; !reflect.DeepEqual(rels, want) {
		t.Errorf("glob: %v, want %v", rels, want)
	}
	got, err = listInputs(context.Background(), "file://"+in+"/extra/*/shard_*.jsonl")
	if err != nil || len(got) != 1 || got[0].Rel != "train/shard_00000.jsonl" {
		t.Errorf("file:// glob: %+v %v", got, err)
	}
	for pat, name := range map[string]string{"**": "a/b", "a/**/c": "a/c", "*.gz": "x.gz"} {
		if !globMatch(pat, name) {
			t.Errorf("%s should match %s", pat, name)
		}
	}
	if globMatch("a/*", "a/b/c") || globMatch("**/x", "y") {
		t.Error("glob matched too much")
	}
}

// TestRunThroughSDK drives the op as its plugin does: a Request with the
// step's config, a file:// output, a Reporter.
func TestRunThroughSDK(t *testing.T) {
	in, docs := testInput(t)
	out := filepath.Join(t.TempDir(), "tokenized", "x-abc123")
	cfg, _ := json.Marshal(map[string]any{"input": "file://" + in, "tokenizer": tinyTokenizer, "format": json.RawMessage(formatJSON(t, llama3Options())), "is_validation": false})
	req := &sdk.Request{Op: OpName, StepName: "tokenized/x", ConfigJSON: cfg, OutputPath: "file://" + out}
	if err := Run(context.Background(), req, &events{}); err != nil {
		t.Fatal(err)
	}
	if c := openCache(t, out); c.NumDocs() != int64(len(docs)) || c.IsValidation() {
		t.Errorf("%d docs", c.NumDocs())
	}
	// A bucket output: written in scratch, published shard by shard and
	// the manifest last; it opens from the URL with the same documents.
	t.Setenv(storage.CacheDirEnv, t.TempDir())
	t.Setenv(storage.ScratchDirEnv, t.TempDir())
	req.OutputPath = "mem://tokenize-sdk/x-abc123"
	t.Cleanup(func() { storage.DropMem(req.OutputPath) })
	if err := Run(context.Background(), req, &events{}); err != nil {
		t.Fatalf("remote output: %v", err)
	}
	c, err := tokencache.OpenURL(context.Background(), req.OutputPath)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.NumDocs() != int64(len(docs)) {
		t.Errorf("remote cache: %d docs, want %d", c.NumDocs(), len(docs))
	}
	if ok, err := storage.Exists(context.Background(), storage.Join(req.OutputPath, tokencache.ManifestName)); err != nil || !ok {
		t.Errorf("remote cache has no manifest (%v, %v)", ok, err)
	}
}
