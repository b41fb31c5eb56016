// Package documents writes marin's "documents" format, the output of every
// dataset plugin and the input of tokenization:
//
//	{out}/{subset}/{split}/shard_00000.jsonl.gz   5,000 rows per shard
//	{out}/stats.json                              rows read, written, dropped by reason
//
// Each row is one conversation:
//
//	{"id": "<sha256 hex>", "source": "allenai/tulu-3-sft-mixture",
//	 "messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}],
//	 "added": "2024-11-21T16:00:00Z", "created": "", "metadata": {…}}
//
// The id is the sha256 of the row's "messages" value exactly as written: the
// compact JSON array of {"role","content"} objects, keys in that order, with
// no HTML escaping (Python: json.dumps(messages, separators=(",", ":"),
// ensure_ascii=False), except that U+2028 and U+2029 are escaped). Python
// Marin hashes str(messages), Python's repr, which has no specification
// outside CPython; a hash over the JSON bytes can be recomputed from the row
// by anyone.
//
// Rows carry no wall-clock time, so running a transform twice gives
// byte-identical shards (gzip headers carry no name or time either). Dataset
// plugins set "added" to the date of the pinned source commit when they know
// it, and "created" is "" (the source rows do not say), as in Marin.
//
// Third-party dataset plugins use this package to write the same format:
// a Writer per split directory, a Stats for stats.json.
package documents

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/marin-go/marin/plugins/storage"
)

// RowsPerShard is the documents shard size, as in Python Marin.
const RowsPerShard = 5000

// Roles a message may have.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Document is one row of the documents format.
type Document struct {
	ID       string         `json:"id"`
	Source   string         `json:"source"`
	Messages []Message      `json:"messages"`
	Added    string         `json:"added"`
	Created  string         `json:"created"`
	Metadata map[string]any `json:"metadata"`
}

// ShardName is the file name of shard idx.
func ShardName(idx int) string { return fmt.Sprintf("shard_%05d.jsonl.gz", idx) }

var shardRe = regexp.MustCompile(`^shard_(\d{5,})\.jsonl\.gz$`)

// appendString appends s as a JSON string without HTML escaping.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
			}
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript parsers;
		// encoding/json escapes them, and so do we. Invalid UTF-8 never
		// reaches here (adapters drop such rows), but is replaced like
		// encoding/json would, to be safe.
		r, size := decodeRune(s[i:])
		if r == 0x2028 || r == 0x2029 || r == 0xFFFD && size == 1 {
			buf = append(buf, s[start:i]...)
			if r == 0xFFFD {
				buf = append(buf, `\ufffd`...)
			} else {
				buf = append(buf, '\\', 'u', '2', '0', '2', hexDigit[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

const hexDigit = "0123456789abcdef"

// AppendMessages appends the JSON array of msgs, the bytes the id hashes.
func AppendMessages(buf []byte, msgs []Message) []byte {
	buf = append(buf, '[')
	for i, m := range msgs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"role":`...)
		buf = appendString(buf, m.Role)
		buf = append(buf, `,"content":`...)
		buf = appendString(buf, m.Content)
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// ID returns the id of a conversation: the hex sha256 of its messages JSON.
func ID(msgs []Message) string {
	sum := sha256.Sum256(AppendMessages(nil, msgs))
	return hex.EncodeToString(sum[:])
}

// AppendJSON appends d as one JSON line (with the trailing newline). If
// d.ID is empty it is computed from the messages.
func AppendJSON(buf []byte, d *Document) ([]byte, error) {
	buf = append(buf, `{"id":`...)
	idAt := len(buf)
	buf = append(buf, `"0000000000000000000000000000000000000000000000000000000000000000"`...)
	buf = append(buf, `,"source":`...)
	buf = appendString(buf, d.Source)
	buf = append(buf, `,"messages":`...)
	msgStart := len(buf)
	buf = AppendMessages(buf, d.Messages)
	if d.ID == "" {
		sum := sha256.Sum256(buf[msgStart:])
		hex.Encode(buf[idAt+1:idAt+65], sum[:])
	} else {
		// A caller-chosen id: rewrite the placeholder.
		tail := append([]byte(nil), buf[idAt+66:]...)
		buf = appendString(buf[:idAt], d.ID)
		buf = append(buf, tail...)
	}
	buf = append(buf, `,"added":`...)
	buf = appendString(buf, d.Added)
	buf = append(buf, `,"created":`...)
	buf = appendString(buf, d.Created)
	buf = append(buf, `,"metadata":`...)
	var err error
	if buf, err = appendValue(buf, d.Metadata); err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return append(buf, '}', '\n'), nil
}

// appendValue appends a JSON value built from decoded JSON or parquet data:
// nil, bool, string, json.Number, the Go number types, []byte (as a
// string), []any and map[string]any (keys sorted). Non-finite floats
// become null.
func appendValue(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case bool:
		return strconv.AppendBool(buf, x), nil
	case string:
		return appendString(buf, x), nil
	case []byte:
		return appendString(buf, string(x)), nil
	case json.Number:
		if !json.Valid([]byte(x)) {
			return nil, fmt.Errorf("invalid number %q", string(x))
		}
		return append(buf, x...), nil
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case uint:
		return strconv.AppendUint(buf, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(buf, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(buf, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(buf, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(buf, x, 10), nil
	case float32:
		return appendFloat(buf, float64(x), 32), nil
	case float64:
		return appendFloat(buf, x, 64), nil
	case []any:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendValue(buf, e); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			var err error
			if buf, err = appendValue(buf, x[k]); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	}
	// Anything else (time.Time, structs): whatever encoding/json makes of it.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(buf, b...), nil
}

func appendFloat(buf []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(buf, "null"...)
	}
	// encoding/json's choice of format, so floats look the same as there.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(buf)
		if n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf
}

// WriterOptions tunes a Writer.
type WriterOptions struct {
	// RowsPerShard defaults to RowsPerShard.
	RowsPerShard int
	// Parallel is how many shards are compressed and written at once
	// (default 2). Rows are buffered per shard, so memory is about
	// (Parallel+1) shards of uncompressed JSON.
	Parallel int
	// Level is the gzip level, 1 (fastest) to 9; 0 means 1. Compression is
	// most of a transform's CPU time, and level 1 makes shards only about
	// a tenth larger than the default level.
	Level int
	// OnShard, if set, is called after each shard is committed, with its
	// index, rows and compressed size. Calls come from writer goroutines.
	OnShard func(idx, rows int, bytes int64)
}

// Writer writes documents into numbered shards under one directory URL. A
// shard appears only complete (written to a temporary name, then renamed,
// or committed on close by object stores); a Writer that fails or is
// aborted leaves the shards committed before intact and no partial one.
type Writer struct {
	ctx    context.Context
	cancel context.CancelFunc
	dir    string
	opts   WriterOptions

	buf      []byte
	rows     int
	next     int // index of the shard being filled
	jobs     chan shardJob
	wg       sync.WaitGroup
	mu       sync.Mutex
	err      error
	written  int64
	bytes    int64
	closed   bool
	freeBufs chan []byte
}

type shardJob struct {
	idx  int
	rows int
	data []byte
}

// NewWriter starts a Writer for the directory URL dir (file://, gs://, …).
func NewWriter(ctx context.Context, dir string, opts WriterOptions) *Writer {
	if opts.RowsPerShard <= 0 {
		opts.RowsPerShard = RowsPerShard
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	if opts.Level == 0 {
		opts.Level = gzip.BestSpeed
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Writer{ctx: ctx, cancel: cancel, dir: strings.TrimRight(dir, "/"), opts: opts,
		jobs: make(chan shardJob), freeBufs: make(chan []byte, opts.Parallel+1)}
	for i := 0; i < opts.Parallel; i++ {
		w.wg.Add(1)
		go w.worker()
	}
	return w
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
		w.cancel()
	}
}

func (w *Writer) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) worker() {
	defer w.wg.Done()
	for job := range w.jobs {
		if w.firstErr() != nil {
			continue
		}
		n, err := writeShard(w.ctx, storage.Join(w.dir, ShardName(job.idx)), job.data, w.opts.Level)
		select {
		case w.freeBufs <- job.data[:0]:
		default:
		}
		if err != nil {
			w.fail(err)
			continue
		}
		w.mu.Lock()
		w.written += int64(job.rows)
		w.bytes += n
		w.mu.Unlock()
		if w.opts.OnShard != nil {
			w.opts.OnShard(job.idx, job.rows, n)
		}
	}
}

// writeShard gzips data into the object at url, atomically
// (storage.Writer: a failed write leaves no shard, or the previous one).
func writeShard(ctx context.Context, url string, data []byte, level int) (int64, error) {
	sw, err := storage.Create(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("write shard %s: %w", url, err)
	}
	cw := &countWriter{w: sw}
	// Whole megabytes per write: flate emits small blocks, and a syscall per
	// block costs more than the compression on local disks.
	bufw := bufio.NewWriterSize(cw, 1<<20)
	zw, err := gzip.NewWriterLevel(bufw, level)
	if err == nil {
		_, err = zw.Write(data)
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = bufw.Flush()
	}
	if err != nil {
		sw.Abort()
		return 0, fmt.Errorf("write shard %s: %w", url, err)
	}
	if err := sw.Commit(); err != nil {
		return 0, fmt.Errorf("write shard %s: %w", url, err)
	}
	return cw.n, nil
}

type countWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// Write adds a document. It returns the error of an earlier failed shard
// write, if any.
func (w *Writer) Write(d *Document) error {
	var err error
	if w.buf, err = AppendJSON(w.buf, d); err != nil {
		return err
	}
	return w.added()
}

// WriteLine adds one already encoded document line (ending in "\n").
func (w *Writer) WriteLine(line []byte) error {
	w.buf = append(w.buf, line...)
	return w.added()
}

func (w *Writer) added() error {
	w.rows++
	if w.rows >= w.opts.RowsPerShard {
		return w.flush()
	}
	return w.firstErr()
}

func (w *Writer) flush() error {
	if w.rows == 0 {
		return w.firstErr()
	}
	job := shardJob{idx: w.next, rows: w.rows, data: w.buf}
	select {
	case w.jobs <- job:
	case <-w.ctx.Done():
		if err := w.firstErr(); err != nil {
			return err
		}
		return w.ctx.Err()
	}
	w.next++
	w.rows = 0
	select {
	case b := <-w.freeBufs:
		w.buf = b
	default:
		w.buf = make([]byte, 0, len(job.data)+len(job.data)/8)
	}
	return w.firstErr()
}

// Result is what a closed Writer wrote.
type Result struct {
	Rows   int64 // documents written
	Shards int   // shard files
	Bytes  int64 // compressed bytes
}

// Close writes the last partial shard, waits for all shards, and removes
// shards numbered past the last one (left by an earlier run of the same
// step over different input), so the directory holds exactly this run's
// shards.
func (w *Writer) Close() (Result, error) {
	if w.closed {
		return Result{}, errors.New("documents writer closed twice")
	}
	w.closed = true
	ferr := w.flush()
	close(w.jobs)
	w.wg.Wait()
	defer w.cancel()
	if err := w.firstErr(); err != nil {
		return Result{}, err
	}
	if ferr != nil {
		return Result{}, ferr
	}
	res := Result{Rows: w.written, Shards: w.next, Bytes: w.bytes}
	entries, err := storage.List(w.ctx, w.dir+"/", "/")
	if err != nil {
		return res, fmt.Errorf("list %s: %w", w.dir, err)
	}
	for _, e := range entries {
		name := e.Key[strings.LastIndex(e.Key, "/")+1:]
		m := shardRe.FindStringSubmatch(name)
		if m == nil || e.IsDir {
			continue
		}
		if idx, _ := strconv.Atoi(m[1]); idx >= w.next {
			if err := storage.Delete(w.ctx, e.URL); err != nil {
				return res, fmt.Errorf("remove stale shard: %w", err)
			}
		}
	}
	return res, nil
}

// Abort stops the Writer without writing the partial shard. Complete
// shards already handed to the writer goroutines are still committed (a
// failure later in the input loses nothing before it); cancel the
// Writer's context to stop those too.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	close(w.jobs)
	w.wg.Wait()
	w.cancel()
}

// Shards returns how many shards have been handed to the writer goroutines.
func (w *Writer) Shards() int { return w.next }

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }
