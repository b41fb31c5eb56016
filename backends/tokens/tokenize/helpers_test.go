package tokenize

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokencache"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// words are in testdata/tiny's vocabulary (make_tiny_tokenizer.py).
var words = strings.Fields(`the of and to a in is it you that he was for on are with as his they be at one have this from
or had by hot word but what some we can out other were all there when up use your how said an each she which do their
time if will way about many then them write would like so these her long make thing see him two has look more day could
go come did number sound no most people my over know water than call first who may down side been now find any new work`)

const tinyTokenizer = "testdata/tiny/tokenizer.json"

// doc is one documents row.
type doc struct {
	ID       string         `json:"id"`
	Source   string         `json:"source,omitempty"`
	Messages []chat.Message `json:"messages"`
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func sentence(r *rand.Rand, n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[r.IntN(len(words))]
	}
	return strings.Join(ws, " ") + "."
}

// genDocs makes n conversations of 1–3 turns, some with a system prompt.
func genDocs(r *rand.Rand, prefix string, n, wordsPerTurn int) []doc {
	out := make([]doc, n)
	for i := range out {
		d := doc{ID: fmt.Sprintf("%s-%d", prefix, i), Source: "test"}
		if r.IntN(3) == 0 {
			d.Messages = append(d.Messages, chat.Message{Role: "system", Content: sentence(r, 5)})
		}
		for range 1 + r.IntN(3) {
			d.Messages = append(d.Messages, chat.Message{Role: "user", Content: sentence(r, 1+r.IntN(wordsPerTurn))},
				chat.Message{Role: "assistant", Content: sentence(r, 1+r.IntN(2*wordsPerTurn))})
		}
		out[i] = d
	}
	return out
}

// writeShard writes rows as {dir}/{rel}, gzipped when rel ends in .gz.
func writeShard(t testing.TB, dir, rel string, rows []any) {
	t.Helper()
	var buf bytes.Buffer
	for _, r := range rows {
		var line []byte
		switch r := r.(type) {
		case string:
			line = []byte(r)
		default:
			var err error
			if line, err = json.Marshal(r); err != nil {
				t.Fatal(err)
			}
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	if strings.HasSuffix(rel, ".gz") {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(data)
		w.Close()
		data = z.Bytes()
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func rowsOf(docs []doc) []any {
	out := make([]any, len(docs))
	for i, d := range docs {
		out[i] = d
	}
	return out
}

func formatJSON(t testing.TB, o chat.Options) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func llama3Options() chat.Options {
	o := chat.DefaultOptions()
	o.Name = chat.NameLlama3Instruct
	return o
}

// events records what an op reports.
type events struct {
	mu       sync.Mutex
	progress []string
	logs     []string
	last     [2]float64
}

func (e *events) Progress(done, total float64, unit, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.progress = append(e.progress, fmt.Sprintf("%.0f/%.0f %s %s", done, total, unit, msg))
	e.last = [2]float64{done, total}
}

func (e *events) Log(level, msg string, kv ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logs = append(e.logs, level+" "+msg+" "+strings.Join(kv, " "))
}

func (e *events) joined() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.logs, "\n") + "\n" + strings.Join(e.progress, "\n")
}

// runJob runs a tokenize job and fails the test on error.
func runJob(t testing.TB, j *Job) {
	t.Helper()
	if err := j.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// expect tokenizes docs directly with the chat package, to compare with
// what the op wrote.
func expect(t testing.TB, tokPath string, o chat.Options, docs []doc) (ids [][]uint32, masks [][]uint8) {
	t.Helper()
	data, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(filepath.Dir(tokPath), "tokenizer_config.json"))
	v, err := chat.NewVocab(tok, data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := chat.New(o, v)
	if err != nil {
		t.Fatal(err)
	}
	convs := make([]chat.Conversation, len(docs))
	for i, d := range docs {
		convs[i] = chat.Conversation{ID: d.ID, Messages: d.Messages}
	}
	rendered, err := f.Render(context.Background(), convs)
	if err != nil {
		t.Fatal(err)
	}
	enc := chat.NewEncoder(v)
	for _, r := range rendered {
		if r.Skip != "" {
			continue
		}
		i, m, err := enc.Encode(r.Segments)
		if err != nil {
			t.Fatal(err)
		}
		trained := false
		for _, x := range m {
			trained = trained || x == 1
		}
		if trained {
			ids, masks = append(ids, i), append(masks, m)
		}
	}
	return ids, masks
}

func openCache(t testing.TB, dir string) *tokencache.Cache {
	t.Helper()
	c, err := tokencache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	return c
}

// cacheFiles reads every file of a cache directory, by relative path.
func cacheFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
