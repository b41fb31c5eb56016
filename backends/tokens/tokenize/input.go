package tokenize

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/plugins/storage"
)

// inputShard is one documents file.
type inputShard struct {
	URL  string
	Rel  string // relative to the input root, slash-separated
	Size int64
}

// listInputs finds the documents files of input: every *.jsonl.gz and
// *.jsonl under a directory, or the files matching a glob whose last
// segments may hold *, ? and ** (any number of directories).
func listInputs(ctx context.Context, input string) ([]inputShard, error) {
	root, pattern := splitGlob(input)
	rootURL, err := storage.NormalizeURL(root)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", input, err)
	}
	prefix := strings.TrimSuffix(rootURL, "/") + "/"
	entries, err := storage.List(ctx, prefix, "")
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", input, err)
	}
	var out []inputShard
	for _, e := range entries {
		if e.IsDir {
			continue
		}
		rel := strings.TrimPrefix(e.URL, prefix)
		if hidden(rel) {
			continue
		}
		if pattern != "" {
			if !globMatch(pattern, rel) {
				continue
			}
		} else if !strings.HasSuffix(rel, ".jsonl.gz") && !strings.HasSuffix(rel, ".jsonl") {
			continue
		}
		out = append(out, inputShard{URL: e.URL, Rel: rel, Size: e.Size})
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Rel < out[k].Rel })
	if len(out) == 0 {
		what := "*.jsonl.gz or *.jsonl files"
		if pattern != "" {
			what = "files matching " + pattern
		}
		return nil, fmt.Errorf("input %q: no %s under %s (is it the output of a documents step?)", input, what, rootURL)
	}
	return out, nil
}

// hidden: a path with a segment starting with "." (the executor's files,
// temporaries).
func hidden(rel string) bool {
	for _, seg := range strings.Split(rel, "/") {
		if strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

// splitGlob splits "root/a/**/*.gz" into the root before the first segment
// with a glob character and the pattern after it.
func splitGlob(input string) (root, pattern string) {
	i := strings.IndexAny(input, "*?[")
	if i < 0 {
		return input, ""
	}
	slash := strings.LastIndex(input[:i], "/")
	if slash < 0 {
		return ".", input
	}
	return input[:slash], input[slash+1:]
}

// globMatch matches a slash-separated path against a pattern of path.Match
// segments where "**" matches any number of segments.
func globMatch(pattern, name string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for k := 0; k <= len(name); k++ {
				if matchSegs(pat[1:], name[k:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// openInput opens a documents file, decompressing .gz.
// consumed counts the bytes read from storage (compressed).
func openInput(ctx context.Context, in inputShard, consumed *atomic.Int64) (io.ReadCloser, error) {
	b, key, err := storage.Open(ctx, in.URL)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", in.URL, err)
	}
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", in.URL, err)
	}
	counted := &countingReader{r: r, n: consumed, c: r}
	if !strings.HasSuffix(in.Rel, ".gz") {
		return counted, nil
	}
	gz, err := gzip.NewReader(bufio.NewReaderSize(counted, 1<<20))
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("read %s: gzip: %w", in.URL, err)
	}
	return &gzipCloser{gz, r}, nil
}

type gzipCloser struct {
	*gzip.Reader
	under io.Closer
}

func (g *gzipCloser) Close() error {
	return errors.Join(g.Reader.Close(), g.under.Close())
}

// countingReader counts the bytes read from storage, for progress.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
	c io.Closer
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.c.Close() }

// row is one documents line, parsed.
type row struct {
	conv       chat.Conversation
	skip       string // set: the row is counted as skipped
	skipDetail string
}

// parseRow decodes one JSON line; the messages are read from field. A line
// that is not a JSON object is an error (a corrupt file); a row without
// usable messages is a counted skip.
func parseRow(line []byte, field string) (row, error) {
	var id, raw json.RawMessage
	if field == "messages" {
		// The usual field: decode into a struct, about twice as fast as a map.
		var obj struct {
			ID       json.RawMessage `json:"id"`
			Messages json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(line, &obj); err != nil {
			return row{}, fmt.Errorf("not a JSON object: %w", err)
		}
		id, raw = obj.ID, obj.Messages
	} else {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(line, &obj); err != nil {
			return row{}, fmt.Errorf("not a JSON object: %w", err)
		}
		id, raw = obj["id"], obj[field]
	}
	var r row
	if len(id) > 0 {
		if err := json.Unmarshal(id, &r.conv.ID); err != nil {
			r.conv.ID = string(id) // a numeric id is still an id
		}
	}
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		r.skip, r.skipDetail = "no_messages_field", fmt.Sprintf("the row has no %q field", field)
		return r, nil
	}
	var msgs []struct {
		Role    *string `json:"role"`
		Content *string `json:"content"` // null or absent: empty, as templates' (content or '') do
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		r.skip, r.skipDetail = "bad_messages", fmt.Sprintf("%q is not a list of {role, content} strings: %v", field, err)
		return r, nil
	}
	r.conv.Messages = make([]chat.Message, len(msgs))
	for i, m := range msgs {
		if m.Role == nil {
			r.skip, r.skipDetail = "bad_messages", fmt.Sprintf("message %d has no role", i+1)
			return r, nil
		}
		r.conv.Messages[i].Role = *m.Role
		if m.Content != nil {
			r.conv.Messages[i].Content = *m.Content
		}
	}
	return r, nil
}
