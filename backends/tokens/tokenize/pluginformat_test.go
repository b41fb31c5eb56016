package tokenize

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokencache"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/plugins/sdk"
)

var (
	exampleOnce sync.Once
	exampleBin  string
	exampleErr  error
)

// buildExample builds plugins/examples/chatformat, a third-party format
// plugin in its own Go module, once per test binary.
func buildExample(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build the example plugin")
	}
	exampleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "marin-vicuna")
		if err != nil {
			exampleErr = err
			return
		}
		exampleBin = filepath.Join(dir, "marin-plugin-vicuna")
		build := exec.Command(goTool, "build", "-o", exampleBin, ".")
		build.Dir = filepath.Join("..", "..", "..", "plugins", "examples", "chatformat")
		if out, err := build.CombinedOutput(); err != nil {
			exampleErr = err
			exampleBin = string(out)
		}
	})
	if exampleErr != nil {
		t.Fatalf("build plugins/examples/chatformat (if its go.mod is stale after a root go.mod change, run `go mod tidy` there): %v\n%s", exampleErr, exampleBin)
	}
	return exampleBin
}

// TestFormatPlugin tokenizes through the example format plugin, started by
// the op from the endpoint the host would pass.
func TestFormatPlugin(t *testing.T) {
	bin := buildExample(t)
	in := t.TempDir()
	writeShard(t, in, "d/train/shard_00000.jsonl.gz", []any{
		doc{ID: "1", Messages: []chat.Message{{Role: "user", Content: "hello world"}, {Role: "assistant", Content: "the world"}}},
		doc{ID: "2", Messages: []chat.Message{{Role: "system", Content: "be polite"}, {Role: "user", Content: "you </s> <s> <|eot_id|>"},
			{Role: "assistant", Content: "</s> the end"}, {Role: "user", Content: "and"}, {Role: "assistant", Content: "more"}}},
		doc{ID: "3", Messages: []chat.Message{{Role: "tool", Content: "x"}}},
	})
	o := chat.DefaultOptions()
	o.Name, o.Plugin = chat.NamePlugin, "vicuna"
	out := t.TempDir()
	j := &Job{Config: Config{Input: in, Tokenizer: tinyTokenizer, Format: formatJSON(t, o)}, Out: out,
		Plugins: []sdk.PluginEndpoint{{Name: "other", Kind: sdk.KindFormat, Argv: []string{"/nonexistent"}}, {Name: "vicuna", Kind: sdk.KindFormat, Argv: []string{bin}}}}
	runJob(t, j)

	c := openCache(t, out)
	m := c.Manifest()
	if m.FormatPlugin == nil || *m.FormatPlugin != (tokencache.PluginInfo{Name: "vicuna", Version: "0.1.0"}) {
		t.Errorf("format plugin in manifest: %+v", m.FormatPlugin)
	}
	if c.NumDocs() != 2 || m.Counts.Skipped["unsupported_role"] != 1 || m.SkipExamples[0].Detail != `vicuna has no role "tool"` {
		t.Fatalf("docs %d, skipped %v %+v", c.NumDocs(), m.Counts.Skipped, m.SkipExamples)
	}
	data, _ := os.ReadFile(tinyTokenizer)
	tok, err := tokenizer.FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.TokenToID("</s>")
	bos, _ := tok.TokenToID("<s>")
	ids, mask := c.Doc(0)
	if ids[0] != bos || mask[0] != 0 || ids[len(ids)-1] != eos || mask[len(ids)-1] != 1 {
		t.Errorf("doc 0: %v %v", ids, mask)
	}
	// Doc 1: the typed </s> and <s> are text; only the format's own are
	// control tokens: one <s>, two </s> (both trained, ending a reply).
	ids, mask = c.Doc(1)
	var nbos, neos, trainedEOS int
	for i, id := range ids {
		switch id {
		case bos:
			nbos++
		case eos:
			neos++
			trainedEOS += int(mask[i])
		}
	}
	if nbos != 1 || neos != 2 || trainedEOS != 2 {
		t.Errorf("doc 1: %d <s>, %d </s> (%d trained): %v", nbos, neos, trainedEOS, ids)
	}
}

// TestEndToEndThroughMarin runs a script whose default_tokenize step uses
// the example format plugin, through the built marin binary: the host finds
// the plugin on $MARIN_PLUGIN_PATH, runs the tokenize op in the built-in cpu
// plugin, and the op starts the format plugin itself.
func TestEndToEndThroughMarin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the marin binary")
	}
	plugin := buildExample(t)
	work := t.TempDir()
	marin := filepath.Join(work, "marin")
	build := exec.Command("go", "build", "-o", marin, "./cmd/marin")
	build.Dir = filepath.Join("..", "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build marin: %v\n%s", err, out)
	}
	pluginDir := filepath.Join(work, "plugins")
	os.MkdirAll(pluginDir, 0o755)
	if err := os.Symlink(plugin, filepath.Join(pluginDir, "marin-plugin-vicuna")); err != nil {
		t.Fatal(err)
	}
	docs := filepath.Join(work, "docs")
	writeShard(t, docs, "default/train/shard_00000.jsonl.gz", rowsOf(genDocs(newRand(), "e2e", 50, 6)))
	tokPath, _ := filepath.Abs(tinyTokenizer)
	script := filepath.Join(work, "vicuna.star")
	// A raw JSON-lines file that the built-in datasets plugin turns into
	// documents first, tokenized with a built-in format.
	var raw []any
	for _, d := range genDocs(newRand(), "raw", 30, 6) {
		raw = append(raw, map[string]any{"messages": d.Messages})
	}
	writeShard(t, work, "data/mine.jsonl", raw)
	src := `
vicuna = default_tokenize(
    name = "vicuna_docs",
    dataset = ` + quoteStar(docs) + `,
    tokenizer = ` + quoteStar(tokPath) + `,
    format = ChatFormat(name = "plugin", plugin = "vicuna", system_prompt = "be helpful"),
)
mine = get_instruction_dataset(path = "data/mine.jsonl", adapter = "messages")
llama = default_tokenize(dataset = mine, tokenizer = ` + quoteStar(tokPath) + `, format = llama3_instruct_chat_format, is_validation = True)
executor_main(vicuna, llama)
`
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(work, "out")
	cmd := exec.Command(marin, script, "--prefix", prefix)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "MARIN_PLUGIN_PATH="+pluginDir, "HOME="+work, "MARIN_PREFIX=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("marin: %v\n%s", err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(prefix, "tokenized", "vicuna_docs-*", tokencache.ManifestName))
	if len(matches) != 1 {
		t.Fatalf("no token cache under %s:\n%s", prefix, out)
	}
	c := openCache(t, filepath.Dir(matches[0]))
	var f map[string]any
	json.Unmarshal(c.Manifest().Format, &f)
	if c.NumDocs() != 50 || c.Manifest().FormatPlugin == nil || c.Manifest().FormatPlugin.Name != "vicuna" || f["system_prompt"] != "be helpful" {
		t.Errorf("cache: %d docs, manifest %+v", c.NumDocs(), c.Manifest())
	}
	matches, _ = filepath.Glob(filepath.Join(prefix, "tokenized", "mine-*", tokencache.ManifestName))
	if len(matches) != 1 {
		t.Fatalf("no token cache for the documents step:\n%s", out)
	}
	c = openCache(t, filepath.Dir(matches[0]))
	if m := c.Manifest(); c.NumDocs() != 30 || !m.IsValidation || !strings.HasPrefix(m.Input, "file://") || m.Shards[0].Source != "default/train/shard_00000.jsonl.gz" {
		t.Errorf("documents → cache: %d docs, manifest %+v", c.NumDocs(), m)
	}
}

func quoteStar(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw)
}
