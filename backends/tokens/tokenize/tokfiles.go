package tokenize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/sdk"
)

// CacheDirEnv overrides where hub tokenizers are kept
// (default: the user cache directory, …/marin/hub).
const CacheDirEnv = "MARIN_CACHE_DIR"

// tokenizerFiles are a tokenizer's bytes and where they came from.
type tokenizerFiles struct {
	JSONPath string // the tokenizer.json read
	JSON     []byte
	Config   []byte // tokenizer_config.json, nil when there is none
	SHA256   string // of JSON
}

var hubID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$`)

// loadTokenizer reads a tokenizer given as a tokenizer.json path, a
// directory holding one, a file:// URL, or a hub id (org/name[@revision]).
// A relative path is relative to the working directory. Next to a
// tokenizer.json, tokenizer_config.json is read when present (bos/eos tokens
// and the chat template).
func loadTokenizer(ctx context.Context, name string, r sdk.Reporter) (*tokenizerFiles, error) {
	local := name
	isLocal := strings.HasPrefix(name, "file://")
	if isLocal {
		p, err := sdk.LocalPath(name)
		if err != nil {
			return nil, fmt.Errorf("tokenizer %q: %w", name, err)
		}
		local = p
	} else if _, err := os.Stat(name); err == nil || filepath.IsAbs(name) || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".json") || !hubID.MatchString(name) {
		isLocal = true
	}
	if !isLocal {
		dir, err := fetchHub(ctx, name, r)
		if err != nil {
			return nil, err
		}
		local = dir
	}
	jsonPath := local
	if fi, err := os.Stat(local); err != nil {
		return nil, fmt.Errorf("tokenizer %q: %w", name, err)
	} else if fi.IsDir() {
		jsonPath = filepath.Join(local, "tokenizer.json")
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %q: %w", name, err)
	}
	tf := &tokenizerFiles{JSONPath: jsonPath, JSON: data}
	sum := sha256.Sum256(data)
	tf.SHA256 = hex.EncodeToString(sum[:])
	cfg, err := os.ReadFile(filepath.Join(filepath.Dir(jsonPath), "tokenizer_config.json"))
	switch {
	case err == nil:
		tf.Config = cfg
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("tokenizer %q: %w", name, err)
	}
	return tf, nil
}

// fetchHub downloads tokenizer.json (and tokenizer_config.json when the repo
// has it) of a hub model at its revision (default main) into the cache and
// returns the directory. Files already there and verified are not fetched
// again.
func fetchHub(ctx context.Context, name string, r sdk.Reporter) (string, error) {
	id, rev, _ := strings.Cut(name, "@")
	client, err := hfhub.New()
	if err != nil {
		return "", fmt.Errorf("tokenizer %q: %w", name, err)
	}
	repo := hfhub.Repo{Type: hfhub.Model, ID: id}
	commit, err := client.ResolveRevision(ctx, repo, rev)
	if err != nil {
		return "", fmt.Errorf("tokenizer %q is not a local file, and the hub says: %w", name, err)
	}
	files, err := client.ListFiles(ctx, repo, commit.SHA, "")
	if err != nil {
		return "", fmt.Errorf("tokenizer %q: %w", name, err)
	}
	root, err := cacheRoot()
	if err != nil {
		return "", fmt.Errorf("tokenizer %q: %w", name, err)
	}
	dir := filepath.Join(root, "models--"+strings.ReplaceAll(id, "/", "--"), commit.SHA)
	found := false
	for _, f := range files {
		if f.Path != "tokenizer.json" && f.Path != "tokenizer_config.json" {
			continue
		}
		found = found || f.Path == "tokenizer.json"
		res, err := client.Download(ctx, repo, commit.SHA, f, filepath.Join(dir, f.Path), nil)
		if err != nil {
			return "", fmt.Errorf("tokenizer %q: %w", name, err)
		}
		if !res.Skipped {
			r.Log("info", "downloaded tokenizer file", "repo", id, "commit", commit.SHA, "file", f.Path)
		}
	}
	if !found {
		return "", fmt.Errorf("tokenizer %q: the hub repo has no tokenizer.json at commit %s", name, commit.SHA)
	}
	return dir, nil
}

func cacheRoot() (string, error) {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return filepath.Join(d, "hub"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for hub files (set %s): %w", CacheDirEnv, err)
	}
	return filepath.Join(d, "marin", "hub"), nil
}
