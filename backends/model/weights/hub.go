package weights

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// IsHubID reports whether name reads as a hub id ("org/name" or
// "org/name@revision") rather than a local path: it has that form
// (hfhub.IsRef) and no such local file exists.
func IsHubID(name string) bool {
	if strings.HasPrefix(name, "file://") || strings.HasPrefix(name, ".") || filepath.IsAbs(name) {
		return false
	}
	if _, err := os.Stat(name); err == nil {
		return false
	}
	return hfhub.IsRef(name)
}

// Logf reports what a long operation does; nil is quiet.
type Logf func(format string, args ...any)

// Resolve turns a model name into a local directory holding it in HF
// layout: a local path or file:// URL goes through FindModelDir; a storage
// URL (gs://, s3://, …) through FindModelURL and a local copy; a hub id
// ("org/name", "org/name@revision", revision default main) is downloaded
// into the cache with plugins/hfhub (HF_ENDPOINT, HF_TOKEN): config.json,
// generation_config.json, the safetensors files (single or sharded with
// their index) and the tokenizer files. Files already in the cache and
// verified are not fetched again.
func Resolve(ctx context.Context, name string, logf Logf) (string, error) {
	if name == "" {
		return "", fmt.Errorf("model: empty name")
	}
	if !storage.IsLocal(name) {
		return resolveURL(ctx, name, logf)
	}
	if !IsHubID(name) {
		p, err := sdk.LocalPath(name)
		if err != nil {
			return "", fmt.Errorf("model %q: %w", name, err)
		}
		return FindModelDir(p)
	}
	return FetchHub(ctx, name, logf)
}

// FetchHub downloads a hub model (see Resolve) into the hub cache
// (hfhub.CacheRoot) and returns its directory.
func FetchHub(ctx context.Context, name string, logf Logf) (string, error) {
	want := map[string]bool{ConfigName: true, "generation_config.json": true, "model.safetensors.index.json": true}
	for _, t := range TokenizerFiles {
		want[t] = true
	}
	snap, err := fetch(ctx, name, func(p string) bool { return want[p] || strings.HasSuffix(p, ".safetensors") }, logf)
	if err != nil {
		return "", fmt.Errorf("model %q is not a local directory; fetching it from the hub: %w", name, err)
	}
	if !snap.Has(ConfigName) {
		return "", fmt.Errorf("model %q: the hub repo has no config.json at commit %s", name, snap.Commit)
	}
	hasWeights := false
	for _, f := range snap.Files {
		hasWeights = hasWeights || strings.HasSuffix(f.Path, ".safetensors")
	}
	if !hasWeights {
		return "", fmt.Errorf("model %q: the hub repo has no .safetensors weights at commit %s (PyTorch .bin files are not read)", name, snap.Commit)
	}
	return snap.Dir, nil
}

// fetch downloads the files keep selects of the hub model name
// ("org/name[@revision]").
func fetch(ctx context.Context, name string, keep func(string) bool, logf Logf) (hfhub.Snapshot, error) {
	client, err := hfhub.New()
	if err != nil {
		return hfhub.Snapshot{}, err
	}
	repo, rev := hfhub.ParseRef(name)
	return client.Fetch(ctx, repo, rev, keep, logf)
}

// ResolveTokenizer returns the directory holding a tokenizer's files: the
// directory of a tokenizer.json path, a directory, or a hub id whose
// tokenizer files are downloaded into the cache (the same place the
// tokenize op puts them).
func ResolveTokenizer(ctx context.Context, name string, logf Logf) (string, error) {
	if name == "" {
		return "", fmt.Errorf("tokenizer: empty name")
	}
	if !storage.IsLocal(name) {
		return resolveTokenizerURL(ctx, name)
	}
	if !IsHubID(name) {
		p, err := sdk.LocalPath(name)
		if err != nil {
			return "", fmt.Errorf("tokenizer %q: %w", name, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("tokenizer %q: %w", name, err)
		}
		if !fi.IsDir() {
			p = filepath.Dir(p)
		}
		if _, err := os.Stat(filepath.Join(p, "tokenizer.json")); err != nil {
			return "", fmt.Errorf("tokenizer %q: %w", name, err)
		}
		return p, nil
	}
	tokenizerFile := map[string]bool{}
	for _, t := range TokenizerFiles {
		tokenizerFile[t] = true
	}
	snap, err := fetch(ctx, name, func(p string) bool { return tokenizerFile[p] }, logf)
	if err != nil {
		return "", fmt.Errorf("tokenizer %q is not a local file; fetching it from the hub: %w", name, err)
	}
	if !snap.Has("tokenizer.json") {
		return "", fmt.Errorf("tokenizer %q: the hub repo has no tokenizer.json at commit %s", name, snap.Commit)
	}
	return snap.Dir, nil
}
