package hfhub

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// CacheDirEnv overrides where hub files are kept: $MARIN_CACHE_DIR/hub
// (default: the user cache directory's marin/hub). Models and tokenizers
// fetched by any op or command share it.
const CacheDirEnv = "MARIN_CACHE_DIR"

// CacheRoot is the directory hub files are kept under.
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

var refPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$`)

// IsRef reports whether name has the form of a hub model reference,
// "org/name" or "org/name@revision". Whether a local path of that name
// wins is the caller's rule.
func IsRef(name string) bool { return refPattern.MatchString(name) }

// ParseRef splits a model reference "org/name[@revision]" into its repo
// and revision ("" for the default branch).
func ParseRef(name string) (Repo, string) {
	id, rev, _ := strings.Cut(name, "@")
	return Repo{Type: Model, ID: id}, rev
}

// Snapshot is the files of a repo at one commit, downloaded into the cache.
type Snapshot struct {
	Dir    string // CacheRoot()/models--org--name/COMMIT (datasets--… for datasets)
	Commit string
	Files  []File // the files fetched, in the listing's order
}

// Has reports whether the snapshot holds a file of that path.
func (s Snapshot) Has(path string) bool {
	for _, f := range s.Files {
		if f.Path == path {
			return true
		}
	}
	return false
}

// Fetch resolves rev (default main) to a commit, lists the repo's
// top-level files there, and downloads the ones keep selects into that
// commit's directory of the cache (Download: resumable, verified). Files
// already there and verified are not fetched again. logf, when not nil, is
// told about each file downloaded.
func (c *Client) Fetch(ctx context.Context, repo Repo, rev string, keep func(path string) bool, logf func(format string, args ...any)) (Snapshot, error) {
	commit, err := c.ResolveRevision(ctx, repo, rev)
	if err != nil {
		return Snapshot{}, err
	}
	files, err := c.ListFiles(ctx, repo, commit.SHA, "")
	if err != nil {
		return Snapshot{}, err
	}
	root, err := CacheRoot()
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Dir: filepath.Join(root, repo.apiPrefix()+"--"+strings.ReplaceAll(repo.ID, "/", "--"), commit.SHA), Commit: commit.SHA}
	for _, f := range files {
		if strings.Contains(f.Path, "/") || !keep(f.Path) {
			continue
		}
		res, err := c.Download(ctx, repo, commit.SHA, f, filepath.Join(s.Dir, f.Path), nil)
		if err != nil {
			return Snapshot{}, err
		}
		if !res.Skipped && logf != nil {
			logf("downloaded %s of %s at %s (%d bytes)", f.Path, repo, commit.SHA[:12], res.Bytes)
		}
		s.Files = append(s.Files, f)
	}
	return s, nil
}
