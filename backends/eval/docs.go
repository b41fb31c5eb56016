package eval

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/marin-go/marin/backends/eval/pyrand"
	"github.com/marin-go/marin/plugins/storage"
)

// Documents layout, as the eval/docs op (plugins/datasets) writes it:
//
//	{docs}/docs.json                      where each task's data came from
//	{docs}/{task}/{split}.jsonl.gz        the split's rows, in dataset order

// DocsManifest is docs.json.
type DocsManifest struct {
	Tasks map[string]DocsTask `json:"tasks"`
}

// DocsTask records one task's data.
type DocsTask struct {
	Dataset  string               `json:"dataset,omitempty"`  // hub id, or the data URL
	Subset   string               `json:"subset,omitempty"`   // dataset_name
	Revision string               `json:"revision,omitempty"` // as asked
	Commit   string               `json:"commit,omitempty"`   // what it resolved to
	Splits   map[string]DocsSplit `json:"splits"`
}

// DocsSplit is one split of a task.
type DocsSplit struct {
	Rows  int        `json:"rows"`
	Files []DocsFile `json:"files"`
}

// DocsFile is a source file of a split.
type DocsFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// DocsPath is where a split's rows live under a documents directory.
func DocsPath(dir, task, split string) string {
	return storage.Join(dir, task, split+".jsonl.gz")
}

// ReadManifest reads {dir}/docs.json.
func ReadManifest(ctx context.Context, dir string) (*DocsManifest, error) {
	b, err := storage.ReadAll(ctx, storage.Join(dir, "docs.json"))
	if err != nil {
		return nil, fmt.Errorf("evaluation documents %s: %w", dir, err)
	}
	var m DocsManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("evaluation documents %s/docs.json: %w", dir, err)
	}
	return &m, nil
}

// ReadSplit reads one split's rows.
func ReadSplit(ctx context.Context, dir, task, split string) ([]map[string]any, error) {
	p := DocsPath(dir, task, split)
	b, err := storage.ReadAll(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("task %s: split %s: %w", task, split, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	defer zr.Close()
	return decodeRows(zr, p)
}

func decodeRows(r io.Reader, name string) ([]map[string]any, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 256<<20)
	var out []map[string]any
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, line, err)
		}
		out = append(out, normalizeValue(m).(map[string]any))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// normalizeValue turns decoded JSON into the values templates and metrics
// see: integers as int, other numbers as float64.
func normalizeValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if n, err := x.Int64(); err == nil {
				return int(n)
			}
		}
		f, _ := x.Float64()
		return f
	case int64:
		return int(x)
	case float64:
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeValue(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeValue(e)
		}
		return x
	}
	return v
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// processDocs applies a named preprocessor (evaltasks.ProcessDocsNames)
// to a split's documents, in place.
func processDocs(name string, docs []map[string]any) error {
	switch name {
	case "":
		return nil
	case "hellaswag":
		return hellaswagDocs(docs)
	case "gpqa":
		return gpqaDocs(docs)
	case "musr":
		return musrDocs(docs)
	}
	return fmt.Errorf("process_docs %q is not implemented", name)
}

var bracketed = regexp.MustCompile(`\[.*?\]`)

// wikiPreprocess is lm-eval's hellaswag/gpqa preprocess: WikiHow's
// " [title]" becomes ". ", other bracketed tags go, double spaces become
// one.
func wikiPreprocess(text string) string {
	text = strings.TrimSpace(text)
	text = strings.ReplaceAll(text, " [title]", ". ")
	text = bracketed.ReplaceAllString(text, "")
	return strings.ReplaceAll(text, "  ", " ")
}

// pyCapitalize is Python's str.capitalize: the first character in title
// case, the rest in lower case.
func pyCapitalize(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[size:])
}

func str(doc map[string]any, key string) (string, error) {
	v, ok := doc[key]
	if !ok {
		return "", fmt.Errorf("no field %q", key)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %q is %T, want a string", key, v)
	}
	return s, nil
}

// hellaswagDocs is lm-eval's hellaswag process_docs: query, choices and
// gold from the activity label, the two context halves and the endings.
func hellaswagDocs(docs []map[string]any) error {
	for i, d := range docs {
		label, err1 := str(d, "activity_label")
		a, err2 := str(d, "ctx_a")
		b, err3 := str(d, "ctx_b")
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("hellaswag document %d: %w", i, err)
		}
		ends, ok := d["endings"].([]any)
		if !ok {
			return fmt.Errorf("hellaswag document %d: endings is %T, want a list", i, d["endings"])
		}
		choices := make([]any, len(ends))
		for j, e := range ends {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("hellaswag document %d: ending %d is %T", i, j, e)
			}
			choices[j] = wikiPreprocess(s)
		}
		d["query"] = wikiPreprocess(label + ": " + a + " " + pyCapitalize(b))
		d["choices"] = choices
		var gold int
		switch l := d["label"].(type) {
		case int:
			gold = l
		case string:
			if _, err := fmt.Sscan(l, &gold); err != nil && l != "" {
				return fmt.Errorf("hellaswag document %d: label %q", i, l)
			}
		}
		d["gold"] = gold
	}
	return nil
}

// gpqaDocs is lm-eval's gpqa process_docs: the four answers, preprocessed,
// shuffled, and the correct one's letter. lm-eval shuffles with Python's
// global random state (seeded 0 by the harness, then consumed by whatever
// ran before); here each split is shuffled with its own Random(0) in
// document order, so results do not depend on task order.
func gpqaDocs(docs []map[string]any) error {
	r := pyrand.New(0)
	pre := func(d map[string]any, k string) string {
		v, ok := d[k].(string)
		if !ok {
			return " "
		}
		return wikiPreprocess(v)
	}
	for _, d := range docs {
		choices := []string{pre(d, "Incorrect Answer 1"), pre(d, "Incorrect Answer 2"), pre(d, "Incorrect Answer 3"), pre(d, "Correct Answer")}
		r.Shuffle(len(choices), func(i, j int) { choices[i], choices[j] = choices[j], choices[i] })
		correct := pre(d, "Correct Answer")
		idx := 0
		for i, c := range choices {
			if c == correct {
				idx = i
				break
			}
		}
		for i, c := range choices {
			d[fmt.Sprintf("choice%d", i+1)] = c
		}
		d["answer"] = fmt.Sprintf("(%c)", 'A'+idx)
	}
	return nil
}

// musrDocs parses each document's choices (a Python list literal) into
// choices_list, which marin's template for lm-eval's Python doc_to_text
// enumerates.
func musrDocs(docs []map[string]any) error {
	for i, d := range docs {
		s, err := str(d, "choices")
		if err != nil {
			return fmt.Errorf("musr document %d: %w", i, err)
		}
		v, err := parsePyLiteral(s)
		if err != nil {
			return fmt.Errorf("musr document %d: choices: %w", i, err)
		}
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("musr document %d: choices is not a list", i)
		}
		d["choices_list"] = l
	}
	return nil
}
