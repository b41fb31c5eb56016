package weights

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/sdk"
)

// CacheDirEnv overrides where hub files are kept (default: the user cache
// directory, …/marin/hub), shared with the tokenize op.
const CacheDirEnv = "MARIN_CACHE_DIR"

var hubID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$`)

// IsHubID reports whether name reads as a hub id ("org/name" or
// "org/name@revision") rather than a local path: it matches the id pattern
// and no such local file exists.
func IsHubID(name string) bool {
	if strings.HasPrefix(name, "file://") || strings.HasPrefix(name, ".") || filepath.IsAbs(name) {
		return false
	}
	if _, err := os.Stat(name); err == nil {
		return false
	}
	return hubID.MatchString(name)
}

// Logf reports what a long operation does; nil is quiet.
type Logf func(format string, args ...any)

// Resolve turns a model name into a local directory holding it in HF
// layout: a local path or file:// URL goes through FindModelDir; a hub id
// ("org/name", "org/name@revision", revision default main) is downloaded
// into the cache with plugins/hfhub (HF_ENDPOINT, HF_TOKEN): config.json,
// generation_config.json, the safetensors files (single or sharded with
// their index) and the tokenizer files. Files already in the cache and
// verified are not fetched again.
func Resolve(ctx context.Context, name string, logf Logf) (string, error) {
	if name == "" {
		return "", fmt.Errorf("model: empty name")
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

// FetchHub downloads a hub model (see Resolve) and returns its directory.
func FetchHub(ctx context.Context, name string, logf Logf) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	id, rev, _ := strings.Cut(name, "@")
	client, err := hfhub.New()
	if err != nil {
		return "", fmt.Errorf("model %q: %w", name, err)
	}
	repo := hfhub.Repo{Type: hfhub.Model, ID: id}
	commit, err := client.ResolveRevision(ctx, repo, rev)
	if err != nil {
		return "", fmt.Errorf("model %q is not a local directory, and the hub says: %w", name, err)
	}
	files, err := client.ListFiles(ctx, repo, commit.SHA, "")
	if err != nil {
		return "", fmt.Errorf("model %q: %w", name, err)
	}
	root, err := CacheRoot()
	if err != nil {
		return "", fmt.Errorf("model %q: %w", name, err)
	}
	dir := filepath.Join(root, "models--"+strings.ReplaceAll(id, "/", "--"), commit.SHA)
	want := map[string]bool{ConfigName: true, "generation_config.json": true}
	for _, t := range TokenizerFiles {
		want[t] = true
	}
	hasConfig, hasWeights := false, false
	var picked []hfhub.File
	for _, f := range files {
		if strings.Contains(f.Path, "/") {
			continue
		}
		if want[f.Path] || strings.HasSuffix(f.Path, ".safetensors") || f.Path == "model.safetensors.index.json" {
			picked = append(picked, f)
			hasConfig = hasConfig || f.Path == ConfigName
			hasWeights = hasWeights || strings.HasSuffix(f.Path, ".safetensors")
		}
	}
	if !hasConfig {
		return "", fmt.Errorf("model %q: the hub repo has no config.json at commit %s", name, commit.SHA)
	}
	if !hasWeights {
		return "", fmt.Errorf("model %q: the hub repo has no .safetensors weights at commit %s (PyTorch .bin files are not read)", name, commit.SHA)
	}
	for _, f := range picked {
		res, err := client.Download(ctx, repo, commit.SHA, f, filepath.Join(dir, f.Path), nil)
		if err != nil {
			return "", fmt.Errorf("model %q: %w", name, err)
		}
		if !res.Skipped {
			logf("downloaded %s of %s at %s (%d bytes)", f.Path, id, commit.SHA[:12], res.Bytes)
		}
	}
	return dir, nil
}

// CacheRoot is where hub files are kept.
func CacheRoot() (string, error) {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return filepath.Join(d, "hub"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for hub files (set %s): %w", CacheDirEnv, err)
	}
	return filepath.Join(d, "marin", "hub"), nil
}

// ResolveTokenizer returns the directory holding a tokenizer's files: the
// directory of a tokenizer.json path, a directory, or a hub id whose
// tokenizer files are downloaded into the cache (the same place the
// tokenize op puts them).
func ResolveTokenizer(ctx context.Context, name string, logf Logf) (string, error) {
	if name == "" {
		return "", fmt.Errorf("tokenizer: empty name")
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
	if logf == nil {
		logf = func(string, ...any) {}
	}
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
	root, err := CacheRoot()
	if err != nil {
		return "", fmt.Errorf("tokenizer %q: %w", name, err)
	}
	dir := filepath.Join(root, "models--"+strings.ReplaceAll(id, "/", "--"), commit.SHA)
	found := false
	for _, f := range files {
		keep := false
		for _, t := range TokenizerFiles {
			keep = keep || f.Path == t
		}
		if !keep {
			continue
		}
		found = found || f.Path == "tokenizer.json"
		res, err := client.Download(ctx, repo, commit.SHA, f, filepath.Join(dir, f.Path), nil)
		if err != nil {
			return "", fmt.Errorf("tokenizer %q: %w", name, err)
		}
		if !res.Skipped {
			logf("downloaded %s of %s at %s", f.Path, id, commit.SHA[:12])
		}
	}
	if !found {
		return "", fmt.Errorf("tokenizer %q: the hub repo has no tokenizer.json at commit %s", name, commit.SHA)
	}
	return dir, nil
}
