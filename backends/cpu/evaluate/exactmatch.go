// Package evaluate holds evaluation ops of the cpu backend.
//
// eval/exact_match generates an answer for every conversation of a
// documents dataset whose last message is the assistant's reference answer,
// greedily, with the chat format's generation prompt, and counts the
// answers that equal the reference exactly (after trimming surrounding
// whitespace). Config:
//
//	model           a model: a training step's output (its latest hf/ export), an HF
//	                directory, a checkpoint directory, or a hub id
//	data            documents: a directory (every *.jsonl.gz and *.jsonl under it) or one file
//	format          the ChatFormat object (default: the format the model was trained with,
//	                from its marin.json)
//	tokenizer       optional: where the tokenizer files are, when not beside the model
//	max_new_tokens  default 32
//	max_examples    0 (default): all
//
// It writes {out}/results.json (accuracy, counts, accuracy by task when
// rows carry metadata.task) and {out}/predictions.jsonl, and logs the
// accuracy.
package evaluate

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/marin-go/marin/backends/cpu/generate"
	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// ExactMatchOp is the op name.
const ExactMatchOp = "eval/exact_match"

// Op is eval/exact_match, for a plugin's op table.
func Op() sdk.Op {
	return sdk.Op{
		Description: "greedy-generate answers to held-out conversations and report exact-match accuracy",
		Schema:      schema.MustFromStruct(Config{}),
		Run:         run,
	}
}

// Config is the op's config.
type Config struct {
	Model        string          `json:"model" schema:"required,nonempty" doc:"an hf/ export, a checkpoint or a training step's output"`
	Data         string          `json:"data" schema:"required,nonempty" doc:"documents holding the held-out conversations"`
	Format       json.RawMessage `json:"format" doc:"the chat format to prompt with (default: the model's)"`
	Tokenizer    string          `json:"tokenizer" doc:"the tokenizer (default: the model directory's)"`
	MaxNewTokens int             `json:"max_new_tokens" schema:"min=0" doc:"answer length limit (0: 64)"`
	MaxExamples  int             `json:"max_examples" schema:"min=0" doc:"examples evaluated (0: all)"`
}

// Results is results.json.
type Results struct {
	Model    string             `json:"model"` // the directory evaluated
	Format   string             `json:"format"`
	Examples int                `json:"examples"`
	Correct  int                `json:"correct"`
	Accuracy float64            `json:"accuracy"`
	ByTask   map[string]TaskAcc `json:"by_task,omitempty"`
	Seconds  float64            `json:"seconds"`
}

// TaskAcc is the accuracy on one task.
type TaskAcc struct {
	Examples int     `json:"examples"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
}

// Prediction is one line of predictions.jsonl.
type Prediction struct {
	ID        string `json:"id"`
	Task      string `json:"task,omitempty"`
	Prompt    string `json:"prompt"`
	Reference string `json:"reference"`
	Output    string `json:"output"`
	Correct   bool   `json:"correct"`
}

func run(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	var c Config
	if err := req.Decode(&c); err != nil {
		return err
	}
	stage, err := storage.NewStage(req.OutputPath)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("eval/exact_match output %s: %v", req.OutputPath, err)}
	}
	defer stage.Close()
	res, err := Run(ctx, c, stage.Dir, r)
	if err != nil {
		return err
	}
	// results.json last: it is what readers of the output look for.
	for _, f := range []string{"predictions.jsonl", "results.json"} {
		if err := stage.Publish(ctx, f); err != nil {
			return err
		}
	}
	r.Log("info", fmt.Sprintf("exact match %d/%d = %.1f%%%s (model %s)", res.Correct, res.Examples, 100*res.Accuracy, byTaskText(res), res.Model))
	return nil
}

func byTaskText(res *Results) string {
	if len(res.ByTask) == 0 {
		return ""
	}
	var names []string
	for n := range res.ByTask {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", n, 100*res.ByTask[n].Accuracy))
	}
	return " [" + strings.Join(parts, ", ") + "]"
}

// Run evaluates and writes results.json and predictions.jsonl into out.
func Run(ctx context.Context, c Config, out string, r sdk.Reporter) (*Results, error) {
	start := time.Now()
	if c.Model == "" || c.Data == "" {
		return nil, &sdk.Diagnostic{Summary: "eval/exact_match needs model and data"}
	}
	if c.MaxNewTokens == 0 {
		c.MaxNewTokens = 32
	}
	m, err := sample.Load(ctx, c.Model, c.Tokenizer, func(f string, a ...any) { r.Log("info", fmt.Sprintf(f, a...)) })
	if err != nil {
		return nil, err
	}
	var fo chat.Options
	if len(c.Format) > 0 && string(c.Format) != "null" {
		if fo, err = chat.ParseOptions(c.Format); err != nil {
			return nil, fmt.Errorf("eval/exact_match: format: %w", err)
		}
	} else if fo, err = m.ChatOptions(""); err != nil {
		return nil, err
	}
	p, err := chat.NewPrompter(fo, m.Vocab)
	if err != nil {
		return nil, err
	}
	rows, err := readConversations(ctx, c.Data)
	if err != nil {
		return nil, err
	}
	if c.MaxExamples > 0 && len(rows) > c.MaxExamples {
		rows = rows[:c.MaxExamples]
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("eval/exact_match: %s holds no conversations", c.Data)
	}
	dec, err := generate.NewDecoder(m.Params, 1, 0)
	if err != nil {
		return nil, err
	}
	where, err := weights.Where(ctx, c.Model, m.Dir)
	if err != nil {
		return nil, err
	}
	res := &Results{Model: where, Format: p.Name(), ByTask: map[string]TaskAcc{}}
	var preds []Prediction
	for i, row := range rows {
		if i%16 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			r.Progress(float64(i), float64(len(rows)), "examples", fmt.Sprintf("%d correct", res.Correct))
		}
		n := len(row.Messages)
		if n < 2 || row.Messages[n-1].Role != "assistant" {
			return nil, fmt.Errorf("eval/exact_match: %s: conversation %s does not end with an assistant answer", row.file, row.ID)
		}
		ids, err := p.Encode(row.Messages[:n-1])
		if err != nil {
			return nil, fmt.Errorf("eval/exact_match: conversation %s: %w", row.ID, err)
		}
		dec.Reset()
		maxNew := min(c.MaxNewTokens, dec.MaxLen()-len(ids))
		if maxNew <= 0 {
			return nil, fmt.Errorf("eval/exact_match: conversation %s: the prompt's %d tokens fill the model's %d positions", row.ID, len(ids), dec.MaxLen())
		}
		g, err := sample.Generate(ctx, dec, [][]uint32{ids}, sample.Options{MaxNewTokens: maxNew, Stop: p.Stop()}, nil)
		if err != nil {
			return nil, fmt.Errorf("eval/exact_match: conversation %s: %w", row.ID, err)
		}
		outText := m.Decode(g[0].Tokens)
		ref := row.Messages[n-1].Content
		ok := strings.TrimSpace(outText) == strings.TrimSpace(ref)
		task, _ := row.Metadata["task"].(string)
		preds = append(preds, Prediction{ID: row.ID, Task: task, Prompt: row.Messages[n-2].Content, Reference: ref, Output: outText, Correct: ok})
		res.Examples++
		ta := res.ByTask[task]
		ta.Examples++
		if ok {
			res.Correct++
			ta.Correct++
		}
		ta.Accuracy = float64(ta.Correct) / float64(ta.Examples)
		res.ByTask[task] = ta
	}
	if len(res.ByTask) == 1 {
		if _, ok := res.ByTask[""]; ok {
			res.ByTask = nil
		}
	}
	res.Accuracy = float64(res.Correct) / float64(res.Examples)
	res.Seconds = time.Since(start).Seconds()
	r.Progress(float64(len(rows)), float64(len(rows)), "examples", fmt.Sprintf("%d correct", res.Correct))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("eval/exact_match: %w", err)
	}
	var pl strings.Builder
	for _, p := range preds {
		b, _ := json.Marshal(p)
		pl.Write(b)
		pl.WriteByte('\n')
	}
	if err := storage.WriteAtomic(ctx, filepath.Join(out, "predictions.jsonl"), []byte(pl.String())); err != nil {
		return nil, err
	}
	rj, _ := json.MarshalIndent(res, "", "  ")
	if err := storage.WriteAtomic(ctx, filepath.Join(out, "results.json"), append(rj, '\n')); err != nil {
		return nil, err
	}
	return res, nil
}

type convRow struct {
	ID       string         `json:"id"`
	Messages []chat.Message `json:"messages"`
	Metadata map[string]any `json:"metadata"`
	file     string
}

// readConversations reads every row of the *.jsonl(.gz) files under path
// (sorted by name) or of one such file; a storage URL is read through a
// local copy.
func readConversations(ctx context.Context, path string) ([]convRow, error) {
	local, err := localData(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("eval/exact_match: data %s: %w", path, err)
	}
	var files []string
	fi, err := os.Stat(local)
	if err != nil {
		return nil, fmt.Errorf("eval/exact_match: data: %w", err)
	}
	if fi.IsDir() {
		err = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".jsonl.gz") || strings.HasSuffix(p, ".jsonl")) && !strings.HasPrefix(d.Name(), ".") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("eval/exact_match: data: %w", err)
		}
		sort.Strings(files)
	} else {
		files = []string{local}
	}
	var rows []convRow
	for _, f := range files {
		if err := readFile(f, &rows); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func readFile(path string, rows *[]convRow) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("eval/exact_match: %w", err)
	}
	defer f.Close()
	var rd io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("eval/exact_match: %s: %w", path, err)
		}
		defer gz.Close()
		rd = gz
	}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<16), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var r convRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("eval/exact_match: %s: line %d: %w", path, line, err)
		}
		r.file = fmt.Sprintf("%s:%d", path, line)
		*rows = append(*rows, r)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("eval/exact_match: %s: %w", path, err)
	}
	return nil
}

// localData returns a local path for the data at path: path itself when it
// is local, else a copy of the *.jsonl(.gz) files under the URL, or of the
// one object it names.
func localData(ctx context.Context, path string) (string, error) {
	if storage.IsLocal(path) {
		return storage.LocalPath(path)
	}
	dir, err := storage.LocalDir(ctx, path, func(rel string) bool {
		return strings.HasSuffix(rel, ".jsonl.gz") || strings.HasSuffix(rel, ".jsonl")
	})
	if err == nil || !errors.Is(err, storage.ErrNotExist) {
		return dir, err
	}
	i := strings.LastIndex(path, "/")
	name := path[i+1:]
	dir, err = storage.LocalDir(ctx, path[:i], func(rel string) bool { return rel == name })
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}
