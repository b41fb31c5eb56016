package tokencache

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/plugins/storage"
)

// dataFile is one array being written atomically (plugins/storage.Writer).
type dataFile struct {
	final string // path once committed
	rel   string // final path relative to the cache, slash-separated
	w     *storage.Writer
	buf   *bufio.Writer
	sum   hash.Hash
	n     int64
}

func createData(dir, name, ext string) (*dataFile, error) {
	final := filepath.Join(dir, ShardsDir, name+"."+ext)
	w, err := storage.Create(context.Background(), final)
	if err != nil {
		return nil, fmt.Errorf("create token cache shard %s.%s: %w", name, ext, err)
	}
	d := &dataFile{final: final, rel: ShardsDir + "/" + name + "." + ext, w: w, sum: sha256.New()}
	d.buf = bufio.NewWriterSize(io.MultiWriter(w, d.sum), 1<<20)
	return d, nil
}

func (d *dataFile) Write(p []byte) (int, error) {
	n, err := d.buf.Write(p)
	d.n += int64(n)
	return n, err
}

// finish flushes the file and commits it (synced, renamed into place).
func (d *dataFile) finish() (FileInfo, error) {
	if err := d.buf.Flush(); err != nil {
		d.w.Abort()
		return FileInfo{}, fmt.Errorf("write %s: %w", d.final, err)
	}
	if err := d.w.Commit(); err != nil {
		return FileInfo{}, fmt.Errorf("commit %s: %w", d.final, err)
	}
	return FileInfo{Path: d.rel, Bytes: d.n, SHA256: hex.EncodeToString(d.sum.Sum(nil))}, nil
}

func (d *dataFile) abort() { d.w.Abort() }

// ShardWriter writes one shard. Append documents, then Commit; Abort (or a
// crash) leaves no shard behind, only temporary files that the next writer
// in the directory ignores and Clean removes.
type ShardWriter struct {
	dir, name string
	ids, mask *dataFile
	offsets   *dataFile
	counts    Counts
	scratch   []byte
	done      bool
}

// NewShardWriter starts shard name in cache directory dir (created if
// needed).
func NewShardWriter(dir, name string) (*ShardWriter, error) {
	if !validShardName(name) {
		return nil, fmt.Errorf("token cache shard name %q is not a plain file name", name)
	}
	if err := os.MkdirAll(filepath.Join(dir, ShardsDir), 0o755); err != nil {
		return nil, fmt.Errorf("create token cache directory: %w", err)
	}
	w := &ShardWriter{dir: dir, name: name}
	var err error
	if w.ids, err = createData(dir, name, "ids"); err != nil {
		return nil, err
	}
	if w.mask, err = createData(dir, name, "mask"); err != nil {
		w.ids.abort()
		return nil, err
	}
	if w.offsets, err = createData(dir, name, "offsets"); err != nil {
		w.ids.abort()
		w.mask.abort()
		return nil, err
	}
	var zero [8]byte
	if _, err := w.offsets.Write(zero[:]); err != nil {
		w.Abort()
		return nil, fmt.Errorf("write %s: %w", w.offsets.final, err)
	}
	return w, nil
}

// Append adds one document. ids and mask must have the same length.
func (w *ShardWriter) Append(ids []uint32, mask []uint8) error {
	if w.done {
		return errors.New("token cache: Append after Commit or Abort")
	}
	if len(ids) != len(mask) {
		return fmt.Errorf("token cache shard %s: document %d has %d ids but %d mask values", w.name, w.counts.Documents, len(ids), len(mask))
	}
	if cap(w.scratch) < 4*len(ids) {
		w.scratch = make([]byte, 4*len(ids))
	}
	b := w.scratch[:4*len(ids)]
	for i, id := range ids {
		binary.LittleEndian.PutUint32(b[4*i:], id)
	}
	if _, err := w.ids.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", w.ids.final, err)
	}
	var trainable int64
	for _, m := range mask {
		if m > 1 {
			return fmt.Errorf("token cache shard %s: document %d has mask value %d (want 0 or 1)", w.name, w.counts.Documents, m)
		}
		trainable += int64(m)
	}
	if _, err := w.mask.Write(mask); err != nil {
		return fmt.Errorf("write %s: %w", w.mask.final, err)
	}
	w.counts.Documents++
	w.counts.Tokens += int64(len(ids))
	w.counts.TrainableTokens += trainable
	w.counts.MaxDocTokens = max(w.counts.MaxDocTokens, int64(len(ids)))
	var off [8]byte
	binary.LittleEndian.PutUint64(off[:], uint64(w.counts.Tokens))
	if _, err := w.offsets.Write(off[:]); err != nil {
		return fmt.Errorf("write %s: %w", w.offsets.final, err)
	}
	return nil
}

// Counts returns the documents and tokens appended so far.
func (w *ShardWriter) Counts() Counts { return w.counts }

// Commit finishes the shard: its data files are synced and renamed into
// place, then its .json is written. info supplies Source, SourceBytes, the
// conversation and skip counts and SkipExamples; the document and token
// counts and the files are filled in. It returns the ShardInfo written.
func (w *ShardWriter) Commit(info ShardInfo) (ShardInfo, error) {
	if w.done {
		return ShardInfo{}, errors.New("token cache: Commit after Commit or Abort")
	}
	w.done = true
	info.Name = w.name
	skipped := info.Counts.Skipped
	conversations := info.Counts.Conversations
	info.Counts = w.counts
	info.Counts.Skipped = skipped
	info.Counts.Conversations = conversations
	if info.Counts.Skipped == nil {
		info.Counts.Skipped = map[string]int64{}
	}
	var err error
	if info.IDs, err = w.ids.finish(); err != nil {
		w.mask.abort()
		w.offsets.abort()
		return ShardInfo{}, err
	}
	if info.Mask, err = w.mask.finish(); err != nil {
		w.offsets.abort()
		return ShardInfo{}, err
	}
	if info.Offsets, err = w.offsets.finish(); err != nil {
		return ShardInfo{}, err
	}
	raw, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return ShardInfo{}, err
	}
	if err := storage.WriteAtomic(context.Background(), shardInfoPath(w.dir, w.name), append(raw, '\n')); err != nil {
		return ShardInfo{}, err
	}
	return info, nil
}

// Abort discards the shard.
func (w *ShardWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.ids.abort()
	w.mask.abort()
	w.offsets.abort()
}

func shardInfoPath(dir, name string) string {
	return filepath.Join(dir, ShardsDir, name+".json")
}

// ReadShardInfo reads a committed shard's .json; an error matching
// os.ErrNotExist means the shard was never committed.
func ReadShardInfo(dir, name string) (ShardInfo, error) {
	p := shardInfoPath(dir, name)
	raw, err := os.ReadFile(p)
	if err != nil {
		return ShardInfo{}, fmt.Errorf("token cache shard %s: %w", p, err)
	}
	var info ShardInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return ShardInfo{}, fmt.Errorf("token cache shard %s: %w", p, err)
	}
	if info.Name != name {
		return ShardInfo{}, fmt.Errorf("token cache shard %s: it names itself %q", p, info.Name)
	}
	return info, nil
}

// VerifyShard checks that a committed shard's files are all there with the
// sizes and sha256 its .json records, and that sizes and counts agree; a
// resuming writer keeps the shard only if this passes.
func VerifyShard(dir string, info ShardInfo) error {
	if err := checkSizes(info); err != nil {
		return fmt.Errorf("token cache %s: shard %s: %w", dir, info.Name, err)
	}
	for _, f := range info.Files() {
		if err := verifyFile(dir, f); err != nil {
			return err
		}
	}
	return nil
}

// checkSizes: the recorded file sizes agree with the recorded counts.
func checkSizes(info ShardInfo) error {
	c := info.Counts
	if c.Documents < 0 || c.Tokens < 0 || c.TrainableTokens < 0 || c.TrainableTokens > c.Tokens {
		return fmt.Errorf("impossible counts %+v", c)
	}
	if info.IDs.Bytes != 4*c.Tokens || info.Mask.Bytes != c.Tokens || info.Offsets.Bytes != 8*(c.Documents+1) {
		return fmt.Errorf("file sizes (ids %d, mask %d, offsets %d bytes) do not fit %d documents of %d tokens",
			info.IDs.Bytes, info.Mask.Bytes, info.Offsets.Bytes, c.Documents, c.Tokens)
	}
	return nil
}

// verifyFile checks one file's size and sha256.
func verifyFile(dir string, fi FileInfo) error {
	p := filepath.Join(dir, filepath.FromSlash(fi.Path))
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("token cache file %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("token cache file %s: read: %w", p, err)
	}
	if n != fi.Bytes {
		return fmt.Errorf("token cache file %s: %d bytes, the manifest says %d (truncated or overwritten)", p, n, fi.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != fi.SHA256 {
		return fmt.Errorf("token cache file %s: sha256 %s, the manifest says %s (corrupted)", p, got, fi.SHA256)
	}
	return nil
}

// Clean removes temporary files that crashed writers left in dir: the
// storage layer's in-flight files (NAME.<hex>.tmp) and those of older
// writers (.NAME.tmp-*).
func Clean(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, ShardsDir)} {
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := e.Name()
			old, _ := filepath.Match(".*.tmp-*", name)
			if e.IsDir() || !(old || storage.IsTempName(name)) {
				continue
			}
			if err := os.Remove(filepath.Join(d, name)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("remove stale temporary file: %w", err)
			}
		}
	}
	return nil
}
