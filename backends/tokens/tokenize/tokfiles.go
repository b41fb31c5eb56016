package tokenize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/sdk"
)

// tokenizerFiles are a tokenizer's bytes and where they came from.
type tokenizerFiles struct {
	JSONPath string // the tokenizer.json read
	JSON     []byte
	Config   []byte // tokenizer_config.json, nil when there is none
	SHA256   string // of JSON
}

// loadTokenizer reads a tokenizer given as a tokenizer.json path, a
// directory holding one, a file:// URL, or a hub id (org/name[@revision]).
// A relative path is relative to the working directory. Next to a
// tokenizer.json, tokenizer_config.json is read when present (bos/eos tokens
// and the chat template).
func loadTokenizer(ctx context.Context, name string, r sdk.Reporter) (*tokenizerFiles, error) {
	local := name
	if strings.HasPrefix(name, "file://") {
		p, err := sdk.LocalPath(name)
		if err != nil {
			return nil, fmt.Errorf("tokenizer %q: %w", name, err)
		}
		local = p
	}
	if !isLocalTokenizer(name) {
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

// isLocalTokenizer says whether a tokenizer name is a local path (a
// file:// URL, something that exists, an absolute or ./ path, a .json file,
// or anything that is not shaped like a hub id) rather than a hub id.
func isLocalTokenizer(name string) bool {
	if strings.HasPrefix(name, "file://") {
		return true
	}
	_, err := os.Stat(name)
	return err == nil || filepath.IsAbs(name) || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".json") || !hfhub.IsRef(name)
}

// fetchHub downloads tokenizer.json (and tokenizer_config.json when the repo
// has it) of a hub model at its revision (default main) into the hub cache
// and returns the directory. Files already there and verified are not
// fetched again.
func fetchHub(ctx context.Context, name string, r sdk.Reporter) (string, error) {
	client, err := hfhub.New()
	if err != nil {
		return "", fmt.Errorf("tokenizer %q: %w", name, err)
	}
	repo, rev := hfhub.ParseRef(name)
	keep := func(p string) bool { return p == "tokenizer.json" || p == "tokenizer_config.json" }
	snap, err := client.Fetch(ctx, repo, rev, keep, func(format string, args ...any) { r.Log("info", fmt.Sprintf(format, args...)) })
	if err != nil {
		return "", fmt.Errorf("tokenizer %q is not a local file; fetching it from the hub: %w", name, err)
	}
	if !snap.Has("tokenizer.json") {
		return "", fmt.Errorf("tokenizer %q: the hub repo has no tokenizer.json at commit %s", name, snap.Commit)
	}
	return snap.Dir, nil
}
