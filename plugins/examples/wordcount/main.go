// Command marin-plugin-wordcount is an example third-party marin plugin, and
// the showcase of how small one is. Its op wordcount/count counts the words
// of text files and writes counts.json into the step's output directory.
//
// Install it where marin looks for plugins and it shows up in `marin plugins`:
//
//	go build -o ~/.marin/plugins/marin-plugin-wordcount .
//
// A step then uses it as ExecutorStep(name="wc", fn="wordcount/count",
// config={"input": "file:///data/book.txt"}); input may also be a list.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
)

func main() {
	sdk.Serve(&sdk.Plugin{
		Name: "wordcount", Kind: sdk.KindGeneric, Version: "0.1.0",
		Ops: map[string]sdk.Op{"wordcount/count": {
			Description: "count the words of text files (config: input, a path or file:// URL, or a list)",
			// The config schema, sent to marin, which checks every step
			// against it before anything runs; Plan checks the files exist.
			Schema: schema.MustFromStruct(config{}),
			Plan:   plan,
			Run:    count,
		}},
	})
}

// config is the op's config; its tags are its schema.
type config struct {
	Input any `json:"input" schema:"required" doc:"a text file (path or file:// URL), or a list of them"`
}

// plan reports input files that do not exist, while marin plans.
func plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	res := &sdk.PlanResult{}
	r := &sdk.Request{Config: req.Config}
	inputs, err := r.Strings("input")
	if err != nil {
		res.Errorf("input", "%v", err)
		return res, nil
	}
	for _, in := range inputs {
		if req.IsStepOutput(in) {
			continue // another step writes it
		}
		if path, err := sdk.LocalPath(in); err == nil {
			if _, err := os.Stat(path); err != nil {
				res.Errorf("input", "%v", err)
			}
		}
	}
	return res, nil
}

// Counts is the content of counts.json.
type Counts struct {
	Words    map[string]int `json:"words"` // lower-cased word → occurrences
	Total    int            `json:"total_words"`
	Distinct int            `json:"distinct_words"`
	Files    int            `json:"files"`
}

func count(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	inputs, err := req.Strings("input")
	if err != nil {
		return err
	}
	c := Counts{Words: map[string]int{}, Files: len(inputs)}
	for i, in := range inputs {
		path, err := sdk.LocalPath(in)
		if err != nil {
			return &sdk.Diagnostic{Summary: fmt.Sprintf("input %q: %v", in, err), Attribute: "input"}
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
		for _, w := range strings.FieldsFunc(strings.ToLower(string(text)), notWordRune) {
			if w = strings.Trim(w, "'"); w != "" {
				c.Words[w]++
				c.Total++
			}
		}
		r.Progress(float64(i+1), float64(len(inputs)), "files", path)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	c.Distinct = len(c.Words)
	out, err := sdk.LocalPath(req.OutputPath)
	if err != nil {
		return fmt.Errorf("output path: %w", err)
	}
	body, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	// Write under a temporary name, then rename: counts.json appears complete or not at all.
	tmp := filepath.Join(out, ".counts.json.tmp")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return fmt.Errorf("write counts: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(out, "counts.json")); err != nil {
		return fmt.Errorf("write counts: %w", err)
	}
	r.Log("info", "counted words", "total", strconv.Itoa(c.Total), "distinct", strconv.Itoa(c.Distinct))
	return nil
}

// notWordRune splits text into words of letters, digits and apostrophes.
func notWordRune(r rune) bool {
	return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
}
