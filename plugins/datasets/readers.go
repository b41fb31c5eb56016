package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// record is one row read from an input file.
type record struct {
	vals map[string]any
	// loc is the 1-based line (jsonl, JSON arrays) or row (parquet) number.
	loc int64
	// bad is a drop reason found while reading (invalid_utf8, wrong_type);
	// vals is nil then.
	bad string
}

// rowReader yields the rows of one file. A row that cannot be used is a
// record with bad set; an error means the file itself is malformed and
// names the file and line.
type rowReader interface {
	// Next returns io.EOF after the last row.
	Next() (record, error)
	// NumRows is the row count if the format records it, else -1.
	NumRows() int64
	Close() error
}

// Formats a file can be read as.
const (
	formatParquet = "parquet"
	formatJSONL   = "jsonl"
	formatJSON    = "json" // a JSON array of objects, or JSON lines
)

// formatOf returns the format of a file from its name, and whether it is
// gzip-compressed. "" means not a data file.
func formatOf(name string) (format string, gz bool) {
	n := strings.ToLower(name)
	if s, ok := strings.CutSuffix(n, ".gz"); ok {
		n, gz = s, true
	}
	switch {
	case strings.HasSuffix(n, ".parquet") && !gz:
		return formatParquet, false
	case strings.HasSuffix(n, ".jsonl"), strings.HasSuffix(n, ".ndjson"):
		return formatJSONL, gz
	case strings.HasSuffix(n, ".json"):
		return formatJSON, gz
	}
	return "", false
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n *atomic.Int64
}

func (c countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// seekReaderAt makes a ReaderAt of a ReadSeeker (a storage object reader).
type seekReaderAt struct {
	mu sync.Mutex
	r  io.ReadSeeker
}

func (s *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.r.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(s.r, p)
}

// openInput opens a file by URL for reading: local files directly, other
// storage URLs through the storage package. size is the object size.
func openInput(ctx context.Context, url string) (r io.ReadSeeker, ra io.ReaderAt, size int64, closeFn func() error, err error) {
	if p, perr := sdk.LocalPath(url); perr == nil {
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, 0, nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, 0, nil, err
		}
		return f, f, st.Size(), f.Close, nil
	}
	b, key, err := storage.Open(ctx, url)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	br, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	return br, &seekReaderAt{r: br}, br.Size(), br.Close, nil
}

// openRows opens url as format, counting bytes read into n.
func openRows(ctx context.Context, url, format string, gz bool, n *atomic.Int64) (rowReader, error) {
	r, ra, size, closeFn, err := openInput(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", url, err)
	}
	if format == formatParquet {
		pr, err := newParquetReader(url, countingReaderAt{ra, n}, size, closeFn)
		if err != nil {
			closeFn()
			return nil, err
		}
		return pr, nil
	}
	var in io.Reader = countingReader{r, n}
	closeAll := closeFn
	if gz {
		zr, err := gzip.NewReader(bufio.NewReaderSize(in, 1<<20))
		if err != nil {
			closeFn()
			return nil, fmt.Errorf("read %s: %w", url, err)
		}
		in = zr
		closeAll = func() error { zr.Close(); return closeFn() }
	}
	br := bufio.NewReaderSize(in, 1<<20)
	if format == formatJSON {
		// A .json file is a JSON array, or (as many hub datasets are) JSON lines.
		first, err := firstNonSpace(br)
		if err != nil && err != io.EOF {
			closeAll()
			return nil, fmt.Errorf("read %s: %w", url, err)
		}
		if first == '[' {
			return newArrayReader(url, br, closeAll), nil
		}
	}
	return &jsonlReader{url: url, r: br, close: closeAll}, nil
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for i := 1; ; i++ {
		b, err := br.Peek(i)
		if len(b) < i {
			return 0, err
		}
		switch c := b[i-1]; c {
		case ' ', '\t', '\r', '\n':
			continue
		case 0xEF: // a UTF-8 byte order mark
			if bytes.HasPrefix(b[i-1:], []byte{0xEF}) {
				if bb, _ := br.Peek(i + 2); len(bb) == i+2 && bb[i] == 0xBB && bb[i+1] == 0xBF {
					i += 2
					continue
				}
			}
			return c, nil
		default:
			return c, nil
		}
	}
}

// decodeObject decodes one JSON value; a non-object is a wrong_type row.
func decodeObject(b []byte) (map[string]any, string, error) {
	if !utf8.Valid(b) {
		// encoding/json would silently replace bad bytes with U+FFFD.
		return nil, reasonInvalidUTF8, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, "", err
	}
	if dec.More() {
		return nil, "", errors.New("more than one JSON value on the line")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, reasonWrongType, nil
	}
	return m, "", nil
}

// jsonlReader reads one JSON object per line; blank lines are skipped.
type jsonlReader struct {
	url   string
	r     *bufio.Reader
	line  int64
	close func() error
}

func (j *jsonlReader) NumRows() int64 { return -1 }
func (j *jsonlReader) Close() error   { return j.close() }

func (j *jsonlReader) Next() (record, error) {
	for {
		b, err := j.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: collect it whole.
			buf := append([]byte(nil), b...)
			for err == bufio.ErrBufferFull {
				b, err = j.r.ReadSlice('\n')
				buf = append(buf, b...)
			}
			b = buf
		}
		if err != nil && err != io.EOF {
			return record{}, fmt.Errorf("read %s: line %d: %w", j.url, j.line+1, err)
		}
		if len(b) == 0 && err == io.EOF {
			return record{}, io.EOF
		}
		j.line++
		t := bytes.TrimSpace(b)
		if j.line == 1 {
			t = bytes.TrimPrefix(t, []byte{0xEF, 0xBB, 0xBF})
		}
		if len(t) == 0 {
			if err == io.EOF {
				return record{}, io.EOF
			}
			continue
		}
		m, bad, derr := decodeObject(t)
		if derr != nil {
			return record{}, fmt.Errorf("read %s: line %d: malformed JSON: %w", j.url, j.line, derr)
		}
		return record{vals: m, loc: j.line, bad: bad}, nil
	}
}

// arrayReader streams the elements of a top-level JSON array.
type arrayReader struct {
	url     string
	lc      *lineCounter
	dec     *json.Decoder
	started bool
	done    bool
	close   func() error
}

// lineCounter counts newlines in what the decoder has consumed, so errors
// can name a line: json.Decoder reports byte offsets only.
type lineCounter struct {
	r     io.Reader
	buf   []byte // everything read but not yet known consumed (bounded)
	base  int64  // offset of buf[0]
	lines int64  // newlines before base
}

func (l *lineCounter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.buf = append(l.buf, p[:n]...)
	return n, err
}

// lineAt returns the 1-based line of byte offset off, forgetting what
// comes before it.
func (l *lineCounter) lineAt(off int64) int64 {
	k := off - l.base
	if k < 0 {
		k = 0
	}
	if k > int64(len(l.buf)) {
		k = int64(len(l.buf))
	}
	l.lines += int64(bytes.Count(l.buf[:k], []byte{'\n'}))
	l.buf = append(l.buf[:0], l.buf[k:]...)
	l.base += k
	return l.lines + 1
}

func newArrayReader(url string, r io.Reader, closeFn func() error) *arrayReader {
	lc := &lineCounter{r: r}
	dec := json.NewDecoder(lc)
	dec.UseNumber()
	return &arrayReader{url: url, lc: lc, dec: dec, close: closeFn}
}

func (a *arrayReader) NumRows() int64 { return -1 }
func (a *arrayReader) Close() error   { return a.close() }

func (a *arrayReader) fail(err error) error {
	off := a.dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset > off {
		// The decoder's syntax errors carry the stream offset where the
		// bad value starts.
		off = se.Offset
	}
	return fmt.Errorf("read %s: line %d: malformed JSON array: %w", a.url, a.lc.lineAt(off), err)
}

func (a *arrayReader) Next() (record, error) {
	if a.done {
		return record{}, io.EOF
	}
	if !a.started {
		a.started = true
		tok, err := a.dec.Token()
		if err != nil {
			return record{}, a.fail(err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return record{}, a.fail(fmt.Errorf("want [, got %v", tok))
		}
	}
	if !a.dec.More() {
		if _, err := a.dec.Token(); err != nil {
			return record{}, a.fail(err)
		}
		if _, err := a.dec.Token(); err != io.EOF {
			return record{}, a.fail(errors.New("data after the closing ]"))
		}
		a.done = true
		return record{}, io.EOF
	}
	// The line where the element starts (skipping the separator and spaces).
	line := a.lc.lineAt(a.dec.InputOffset())
	var raw json.RawMessage
	if err := a.dec.Decode(&raw); err != nil {
		return record{}, a.fail(err)
	}
	line += int64(bytes.Count(leadingSpace(raw), []byte{'\n'}))
	m, bad, err := decodeObject(raw)
	if err != nil {
		return record{}, a.fail(err)
	}
	return record{vals: m, loc: line, bad: bad}, nil
}

func leadingSpace(b []byte) []byte {
	return b[:len(b)-len(bytes.TrimLeft(b, " \t\r\n,"))]
}

// parquetReader reads the rows of a parquet file as maps, the way
// pyarrow's to_pylist would: lists are []any, structs map[string]any.
type parquetReader struct {
	url    string
	file   *parquet.File
	rows   *parquet.Reader
	buf    []parquet.Row
	n, i   int
	row    int64
	total  int64
	close  func() error
	schema *parquet.Schema
}

func newParquetReader(url string, ra io.ReaderAt, size int64, closeFn func() error) (p *parquetReader, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read %s: malformed parquet file: %v", url, r)
		}
	}()
	f, err := parquet.OpenFile(ra, size)
	if err != nil {
		return nil, fmt.Errorf("read %s: malformed parquet file: %w", url, err)
	}
	return &parquetReader{url: url, file: f, rows: parquet.NewReader(f), buf: make([]parquet.Row, 128),
		total: f.NumRows(), close: closeFn, schema: f.Schema()}, nil
}

func (p *parquetReader) NumRows() int64 { return p.total }

func (p *parquetReader) Close() error {
	p.rows.Close()
	return p.close()
}

func (p *parquetReader) Next() (rec record, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read %s: row %d: malformed parquet data: %v", p.url, p.row+1, r)
		}
	}()
	if p.i >= p.n {
		n, err := p.rows.ReadRows(p.buf)
		if n == 0 {
			if err == nil || err == io.EOF {
				return record{}, io.EOF
			}
			return record{}, fmt.Errorf("read %s: row %d: %w", p.url, p.row+1, err)
		}
		p.n, p.i = n, 0
	}
	row := p.buf[p.i]
	p.i++
	p.row++
	var v any
	if err := p.schema.Reconstruct(&v, row); err != nil {
		return record{}, fmt.Errorf("read %s: row %d: %w", p.url, p.row, err)
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		return record{loc: p.row, bad: reasonWrongType}, nil
	}
	if !validUTF8(m) {
		return record{loc: p.row, bad: reasonInvalidUTF8}, nil
	}
	return record{vals: m, loc: p.row}, nil
}

// normalize turns parquet-go's reconstructed values into JSON-like ones:
// byte arrays become strings (parquet strings are bytes with a UTF-8
// annotation that old writers leave out).
func normalize(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	}
	return v
}

// validUTF8 reports whether every string in v is valid UTF-8.
func validUTF8(v any) bool {
	switch x := v.(type) {
	case string:
		return utf8.ValidString(x)
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) || !validUTF8(e) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !validUTF8(e) {
				return false
			}
		}
	}
	return true
}
