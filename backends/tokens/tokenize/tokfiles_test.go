package tokenize

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/hfhub/hubtest"
)

// TestHubTokenizer: a hub id is fetched once into the cache (pinned to the
// commit the revision names) and read from there afterwards.
func TestHubTokenizer(t *testing.T) {
	tokJSON, err := os.ReadFile(tinyTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile("testdata/tiny/tokenizer_config.json")
	commit := strings.Repeat("ab12", 10)
	hub := hubtest.New(&hubtest.Repo{ID: "acme/tiny", Commit: commit, Branches: []string{"main"},
		Files: map[string][]byte{"tokenizer.json": tokJSON, "tokenizer_config.json": cfg, "README.md": []byte("hi")},
		LFS:   map[string]bool{"tokenizer.json": true}})
	defer hub.Close()
	cache := t.TempDir()
	t.Setenv("HF_ENDPOINT", hub.URL())
	t.Setenv("HF_TOKEN", "")
	t.Setenv(hfhub.CacheDirEnv, cache)

	in, docs := testInput(t)
	for _, name := range []string{"acme/tiny", "acme/tiny@main", "acme/tiny@" + commit[:7]} {
		out := t.TempDir()
		runJob(t, &Job{Config: Config{Input: in, Tokenizer: name, Format: formatJSON(t, llama3Options())}, Out: out})
		c := openCache(t, out)
		m := c.Manifest()
		want := filepath.Join(cache, "hub", "models--acme--tiny", commit, "tokenizer.json")
		if c.NumDocs() != int64(len(docs)) || m.Tokenizer.Name != name || m.Tokenizer.File != want {
			t.Errorf("%s: %d docs, tokenizer %+v", name, c.NumDocs(), m.Tokenizer)
		}
	}
	downloads := 0
	for _, r := range hub.Requests() {
		if strings.HasSuffix(r.Path, "/tokenizer.json") && !strings.Contains(r.Path, "/api/") {
			downloads++
		}
	}
	if downloads != 1 {
		t.Errorf("tokenizer.json fetched %d times, want once", downloads)
	}

	_, err = loadTokenizer(context.Background(), "acme/nope", nopReporter{})
	if err == nil || !strings.Contains(err.Error(), `tokenizer "acme/nope" is not a local file`) {
		t.Errorf("unknown repo: %v", err)
	}
	// Paths win over hub ids; a path that does not exist is an error about the path.
	if _, err := loadTokenizer(context.Background(), "./acme/tiny", nopReporter{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("relative path: %v", err)
	}
}
