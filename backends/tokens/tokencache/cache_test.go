package tokencache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/marin-go/marin/plugins/storage"
)

type doc struct {
	ids  []uint32
	mask []uint8
}

func randomDocs(r *rand.Rand, n int) []doc {
	out := make([]doc, n)
	for i := range out {
		l := r.IntN(50)
		if i%7 == 3 {
			l = 0 // empty documents are allowed
		}
		d := doc{ids: make([]uint32, l), mask: make([]uint8, l)}
		for j := range l {
			d.ids[j] = r.Uint32N(1000)
			d.mask[j] = uint8(r.IntN(2))
		}
		out[i] = d
	}
	return out
}

// writeCache writes shards of docs and the manifest.
func writeCache(t testing.TB, dir string, shards [][]doc) *Manifest {
	t.Helper()
	m := &Manifest{Tokenizer: TokenizerInfo{Name: "test", SHA256: "abc", VocabSize: 1000}, Input: "file:///in", Format: json.RawMessage(`{"name":"chatml"}`)}
	for i, docs := range shards {
		w, err := NewShardWriter(dir, ShardName(i))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if err := w.Append(d.ids, d.mask); err != nil {
				t.Fatal(err)
			}
		}
		info, err := w.Commit(ShardInfo{Source: "train/x.jsonl.gz", Counts: Counts{Conversations: int64(len(docs)) + 2, Skipped: map[string]int64{"no_trainable_tokens": 2}}})
		if err != nil {
			t.Fatal(err)
		}
		m.Shards = append(m.Shards, info)
	}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shards := [][]doc{randomDocs(r, 40), {}, randomDocs(r, 1), randomDocs(r, 25)}
	dir := t.TempDir()
	writeCache(t, dir, shards)

	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	var all []doc
	var tokens, trainable int64
	for _, s := range shards {
		all = append(all, s...)
		for _, d := range s {
			tokens += int64(len(d.ids))
			for _, m := range d.mask {
				trainable += int64(m)
			}
		}
	}
	if c.NumDocs() != int64(len(all)) || c.NumTokens() != tokens || c.TrainableTokens() != trainable {
		t.Fatalf("counts: docs %d tokens %d trainable %d; want %d %d %d", c.NumDocs(), c.NumTokens(), c.TrainableTokens(), len(all), tokens, trainable)
	}
	for i, d := range all {
		ids, mask := c.Doc(int64(i))
		if len(ids) != len(d.ids) || c.DocLen(int64(i)) != len(d.ids) || (len(ids) > 0 && (!reflect.DeepEqual(ids, d.ids) || !reflect.DeepEqual(mask, d.mask))) {
			t.Fatalf("doc %d: got %v %v want %v %v", i, ids, mask, d.ids, d.mask)
		}
	}
	m := c.Manifest()
	if m.Counts.Conversations != tokensConv(shards) || m.Counts.Skipped["no_trainable_tokens"] != 8 || len(m.Shards) != 4 || m.Version != Version {
		t.Errorf("manifest counts: %+v", m.Counts)
	}
	if len(c.Shards()) != 4 || c.Shards()[1].NumDocs() != 0 || len(c.Shards()[0].Offsets()) != 41 {
		t.Errorf("shards: %d", len(c.Shards()))
	}
	// The arrays are plain little-endian files.
	raw, err := os.ReadFile(filepath.Join(dir, "shards", "shard_00003.ids"))
	if err != nil {
		t.Fatal(err)
	}
	if len(shards[3][0].ids) > 0 && binary.LittleEndian.Uint32(raw) != shards[3][0].ids[0] {
		t.Error("ids file is not little-endian uint32")
	}
}

func tokensConv(shards [][]doc) int64 {
	var n int64
	for _, s := range shards {
		n += int64(len(s)) + 2
	}
	return n
}

func TestOpenRefusesDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		openErr string // Open must fail with this
		verErr  string // else Verify must fail with this
	}{
		{"truncated ids", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "shards/shard_00001.ids"), -4) }, "shard_00001.ids: ", ""},
		{"truncated offsets", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "shards/shard_00000.offsets"), -8) }, "shard_00000.offsets", ""},
		{"longer mask", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "shards/shard_00000.mask"), 3) }, "truncated or overwritten", ""},
		{"missing file", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "shards/shard_00001.mask")) }, "shard_00001.mask", ""},
		{"no manifest", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ManifestName)) }, "not complete", ""},
		{"manifest of a newer layout", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { m["version"] = 99 })
		}, "layout version 99", ""},
		{"counts that do not add up", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { m["counts"].(map[string]any)["tokens"] = 1 })
		}, "not the sum", ""},
		{"path outside the cache", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				m["shards"].([]any)[0].(map[string]any)["ids"].(map[string]any)["path"] = "../../etc/passwd"
			})
		}, "not inside the cache", ""},
		{"decreasing offsets", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "shards/shard_00000.offsets")
			b, _ := os.ReadFile(p)
			binary.LittleEndian.PutUint64(b[8:], 1<<40)
			os.WriteFile(p, b, 0o644)
		}, "corrupted", ""},
		{"flipped id byte", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "shards/shard_00001.ids"), 5) }, "", "sha256"},
		{"mask value 2", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "shards/shard_00000.mask")
			b, _ := os.ReadFile(p)
			b[0] = 2
			os.WriteFile(p, b, 0o644)
		}, "", "corrupted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeCache(t, dir, [][]doc{randomDocs(r, 20), randomDocs(r, 20)})
			c.damage(t, dir)
			cache, err := Open(dir)
			if c.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.openErr) {
					t.Fatalf("Open: err = %v, want %q", err, c.openErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer cache.Close()
			if err := cache.Verify(); err == nil || !strings.Contains(err.Error(), c.verErr) {
				t.Fatalf("Verify: err = %v, want %q", err, c.verErr)
			}
		})
	}
}

func truncate(t *testing.T, p string, delta int64) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, fi.Size()+delta); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, p string, at int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x40
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editManifest(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, ManifestName)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestShardCommitIsAtomic: an aborted or crashed shard leaves no shard
// files, only temporaries that Clean removes; VerifyShard accepts a committed
// shard and refuses a damaged one.
func TestShardCommitIsAtomic(t *testing.T) {
	dir := t.TempDir()
	w, err := NewShardWriter(dir, ShardName(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]uint32{1, 2}, []uint8{0, 1}); err != nil {
		t.Fatal(err)
	}
	// A crash: the writer is simply never committed.
	if _, err := ReadShardInfo(dir, ShardName(0)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("uncommitted shard: %v", err)
	}
	// In flight, the files exist only under the storage layer's temporary
	// names, which Clean removes after a crash.
	entries, _ := filepath.Glob(filepath.Join(dir, "shards", "*"))
	for _, e := range entries {
		if !storage.IsTempName(filepath.Base(e)) {
			t.Fatalf("file visible before commit: %s", e)
		}
	}
	if len(entries) != 3 {
		t.Fatalf("in-flight files %v, want the three arrays'", entries)
	}
	os.WriteFile(filepath.Join(dir, "shards", ".shard_00009.ids.tmp-123"), nil, 0o644) // an older writer's
	if err := Clean(dir); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "shards", "*")); len(left) != 0 {
		t.Fatalf("Clean left %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "shards", ".*")); len(left) != 0 {
		t.Fatalf("Clean left %v", left)
	}

	w, err = NewShardWriter(dir, ShardName(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]uint32{1}, []uint8{0, 1}); err == nil {
		t.Fatal("Append accepted ids and mask of different lengths")
	}
	if err := w.Append([]uint32{1}, []uint8{3}); err == nil {
		t.Fatal("Append accepted mask value 3")
	}
	w.Abort()
	w.Abort()
	if err := w.Append([]uint32{1}, []uint8{1}); err == nil {
		t.Fatal("Append after Abort")
	}

	w, _ = NewShardWriter(dir, ShardName(1))
	w.Append([]uint32{7, 8, 9}, []uint8{1, 1, 0})
	info, err := w.Commit(ShardInfo{Source: "a/b.jsonl.gz", SourceBytes: 12})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadShardInfo(dir, ShardName(1))
	if err != nil || !reflect.DeepEqual(got, info) {
		t.Fatalf("ReadShardInfo: %+v %v, want %+v", got, err, info)
	}
	if info.Counts.Tokens != 3 || info.Counts.TrainableTokens != 2 || info.Counts.Documents != 1 || info.Source != "a/b.jsonl.gz" {
		t.Errorf("info: %+v", info)
	}
	if err := VerifyShard(dir, info); err != nil {
		t.Fatal(err)
	}
	flip(t, filepath.Join(dir, "shards", "shard_00001.ids"), 0)
	if err := VerifyShard(dir, info); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("VerifyShard of a damaged shard: %v", err)
	}
	if _, err := NewShardWriter(dir, "../x"); err == nil {
		t.Fatal("a shard name with a path")
	}
}

// FuzzOpen: whatever the manifest and the offsets file say, Open, Verify
// and reading every document never panic.
func FuzzOpen(f *testing.F) {
	seedDir := f.TempDir()
	m := writeCache(f, seedDir, [][]doc{{{ids: []uint32{1, 2, 3}, mask: []uint8{0, 1, 1}}, {}}})
	manifest, _ := os.ReadFile(filepath.Join(seedDir, ManifestName))
	offsets, _ := os.ReadFile(filepath.Join(seedDir, "shards", "shard_00000.offsets"))
	f.Add(manifest, offsets, uint8(0))
	f.Add(manifest, []byte{0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}, uint8(1))
	_ = m
	ids, _ := os.ReadFile(filepath.Join(seedDir, "shards", "shard_00000.ids"))
	mask, _ := os.ReadFile(filepath.Join(seedDir, "shards", "shard_00000.mask"))
	f.Fuzz(func(t *testing.T, manifest, offsets []byte, cut uint8) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "shards"), 0o755)
		os.WriteFile(filepath.Join(dir, ManifestName), manifest, 0o644)
		os.WriteFile(filepath.Join(dir, "shards", "shard_00000.offsets"), offsets, 0o644)
		os.WriteFile(filepath.Join(dir, "shards", "shard_00000.ids"), ids[:len(ids)-int(cut)%(len(ids)+1)], 0o644)
		os.WriteFile(filepath.Join(dir, "shards", "shard_00000.mask"), mask, 0o644)
		c, err := Open(dir)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.Verify()
		for i := int64(0); i < c.NumDocs(); i++ {
			ids, mask := c.Doc(i)
			if len(ids) != len(mask) || len(ids) != c.DocLen(i) {
				t.Fatalf("doc %d: %d ids, %d mask", i, len(ids), len(mask))
			}
		}
	})
}
