// Command marin-plugin-csvpairs is an example third-party dataset plugin:
// its op csvpairs/convert turns prompt/response pairs in CSV files into
// marin documents, so they can be tokenized and mixed like any dataset.
//
// Install it where marin looks for plugins:
//
//	go build -o ~/.marin/plugins/marin-plugin-csvpairs .
//
// and use it from an experiment script:
//
//	pairs = ExecutorStep(
//	    name="documents/faq",
//	    fn="csvpairs/convert",
//	    config={"input": "file:///data/faq.csv", "system": "You answer FAQs."},
//	)
//	tokenized = default_tokenize(dataset=pairs, tokenizer=llama3_instruct_tokenizer)
//
// Config: input (a path or file:// URL, or a list), prompt_column (default
// "prompt"), response_column (default "response"), system (optional system
// prompt), split (default "train"). The CSV needs a header row.
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/marin-go/marin/plugins/documents"
	"github.com/marin-go/marin/plugins/sdk"
)

func main() {
	sdk.Serve(&sdk.Plugin{
		Name: "csvpairs", Kind: sdk.KindDataset, Version: "0.1.0",
		Ops: map[string]sdk.Op{"csvpairs/convert": {
			Description: "convert prompt,response CSV files to documents (config: input, prompt_column, response_column, system, split)",
			Run:         convert,
		}},
	})
}

type config struct {
	PromptColumn   string `json:"prompt_column"`
	ResponseColumn string `json:"response_column"`
	System         string `json:"system"`
	Split          string `json:"split"`
}

func convert(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	inputs, err := req.Strings("input")
	if err != nil {
		return err
	}
	cfg := config{PromptColumn: "prompt", ResponseColumn: "response", Split: "train"}
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	stats := documents.NewStats(strings.Join(inputs, ","), "csvpairs")
	split := stats.Split("default", cfg.Split)
	w := documents.NewWriter(ctx, strings.TrimRight(req.OutputPath, "/")+"/default/"+cfg.Split, documents.WriterOptions{})
	for _, in := range inputs {
		if err := convertFile(in, cfg, w, stats, split); err != nil {
			w.Abort()
			return err
		}
		r.Progress(float64(stats.RowsRead), 0, "rows", "converted "+in)
	}
	res, err := w.Close()
	if err != nil {
		return err
	}
	split.Shards = res.Shards
	if err := stats.Write(ctx, req.OutputPath); err != nil {
		return err
	}
	r.Log("info", "converted", "rows", fmt.Sprint(res.Rows), "dropped", stats.DropSummary())
	if res.Rows == 0 {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("no usable rows in %s (dropped: %s)", strings.Join(inputs, ", "), stats.DropSummary())}
	}
	return nil
}

func convertFile(in string, cfg config, w *documents.Writer, stats *documents.Stats, split *documents.SplitStats) error {
	path, err := sdk.LocalPath(in)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("input %q: %v", in, err), Attribute: "input"}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	defer f.Close()
	split.Files = append(split.Files, filepath.Base(path))
	cr := csv.NewReader(f)
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("read %s: header: %w", path, err)
	}
	pi, ri := index(header, cfg.PromptColumn), index(header, cfg.ResponseColumn)
	if pi < 0 || ri < 0 {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("%s: want columns %q and %q, the header has %q", path, cfg.PromptColumn, cfg.ResponseColumn, header)}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err) // csv errors name the line
		}
		stats.Read(split)
		where := fmt.Sprintf("%s:%d", filepath.Base(path), line)
		prompt, response := rec[pi], rec[ri]
		switch {
		case !utf8.ValidString(prompt + response):
			stats.Dropped(split, "invalid_utf8", where)
			continue
		case strings.TrimSpace(prompt) == "" || strings.TrimSpace(response) == "":
			stats.Dropped(split, "empty_content", where)
			continue
		}
		var msgs []documents.Message
		if cfg.System != "" {
			msgs = append(msgs, documents.Message{Role: documents.RoleSystem, Content: cfg.System})
		}
		msgs = append(msgs, documents.Message{Role: documents.RoleUser, Content: prompt}, documents.Message{Role: documents.RoleAssistant, Content: response})
		if err := w.Write(&documents.Document{Source: "csvpairs:" + filepath.Base(path), Messages: msgs, Metadata: map[string]any{"line": line}}); err != nil {
			return err
		}
		stats.Written(split)
	}
}

func index(header []string, col string) int {
	for i, h := range header {
		if strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) == col {
			return i
		}
	}
	return -1
}
