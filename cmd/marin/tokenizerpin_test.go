package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tokenizePath returns the dry run's output path of the tokenize step.
func tokenizePath(t *testing.T, dir, script string) string {
	t.Helper()
	r := marin(t, dir, nil, script, "--dry-run", "--json", "--prefix", "out")
	if r.code != 0 {
		t.Fatalf("dry run: exit %d: %s", r.code, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var d struct {
			Name    string `json:"name"`
			RelPath string `json:"rel_path"`
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		if d.Name == "tokenized/t" {
			return d.RelPath
		}
	}
	t.Fatalf("no tokenize step in %s", r.stdout)
	return ""
}

// TestEditingATokenizerMovesTheTokenizeStep: the tokenizer's content is part
// of the tokenize step's version — its tokenizer.json, and its chat template
// when the format renders with it — so an edited tokenizer never reuses a
// stale cache, while edits the format does not read keep the path.
func TestEditingATokenizerMovesTheTokenizeStep(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	if err := os.CopyFS(tok, os.DirFS(filepath.Join(repo, "experiments", "quickstart", "tokenizer"))); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "data.jsonl"), `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}`+"\n")
	script := func(format string) string {
		return `
docs = get_instruction_dataset(path = "data.jsonl")
t = default_tokenize(name = "t", dataset = docs, tokenizer = "tok", format = ` + format + `)
executor_main(t)
`
	}
	write(t, filepath.Join(dir, "tpl.star"), script(`ChatFormat(name = "hf_template")`))
	write(t, filepath.Join(dir, "own.star"), script(`ChatFormat(name = "hf_template", template = "{% for m in messages %}{{ m['content'] }}{% endfor %}")`))

	tplBefore, ownBefore := tokenizePath(t, dir, "tpl.star"), tokenizePath(t, dir, "own.star")
	if tplBefore != tokenizePath(t, dir, "tpl.star") {
		t.Fatal("planning twice gave two paths")
	}
	cfgPath := filepath.Join(tok, "tokenizer_config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["chat_template"] = cfg["chat_template"].(string) + "{# edited #}"
	edited, _ := json.MarshalIndent(cfg, "", "  ")
	write(t, cfgPath, string(edited))

	if got := tokenizePath(t, dir, "tpl.star"); got == tplBefore {
		t.Errorf("editing the chat template kept the tokenize step at %s", got)
	}
	if got := tokenizePath(t, dir, "own.star"); got != ownBefore {
		t.Errorf("a format with its own template moved from %s to %s when the tokenizer's template changed", ownBefore, got)
	}
	// tokenizer.json itself counts for every format.
	js, err := os.ReadFile(filepath.Join(tok, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tok, "tokenizer.json"), string(js)+"\n")
	if got := tokenizePath(t, dir, "own.star"); got == ownBefore {
		t.Error("editing tokenizer.json kept the tokenize step's path")
	}
	// The pinned digest is recorded in the version, where explain shows it.
	r := marin(t, dir, nil, "explain", "own.star", "tokenized/t", "--prefix", "out")
	mustContain(t, r.stdout, "tokenizer_digest", "sha256:")
}
