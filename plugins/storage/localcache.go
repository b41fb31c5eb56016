package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// CacheDirEnv overrides where copies of remote files are kept:
// $MARIN_CACHE_DIR/storage (default: the user cache directory's
// marin/storage). It is the variable the hub cache uses too.
const CacheDirEnv = "MARIN_CACHE_DIR"

// CacheRoot is the directory local copies of remote files live under.
func CacheRoot() (string, error) {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return filepath.Join(d, "storage"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for copies of remote files (set %s): %w", CacheDirEnv, err)
	}
	return filepath.Join(d, "marin", "storage"), nil
}

// IsLocal reports whether rawURL is a local path or file:// URL.
func IsLocal(rawURL string) bool {
	i := strings.Index(rawURL, "://")
	return i < 0 || rawURL[:i] == "file"
}

// LocalPath returns the local path of a plain path or file:// URL.
func LocalPath(rawURL string) (string, error) {
	u, err := NormalizeURL(rawURL)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(u, "file://") {
		return "", fmt.Errorf("%s is not a local path", rawURL)
	}
	return filePathOf(u)
}

// FetchBlob returns a local copy of the object at rawURL whose content has
// the given size and sha256 (hex): a content-addressed cache, so any number
// of URLs, steps and runs holding the same bytes share one copy, and a
// copy is verified once, when it is made. A local rawURL is returned as
// its path, unverified (readers check what they read).
func FetchBlob(ctx context.Context, rawURL string, size int64, sha string) (string, error) {
	if IsLocal(rawURL) {
		return LocalPath(rawURL)
	}
	if len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		return "", fmt.Errorf("fetch %s: %q is not a sha256", rawURL, sha)
	}
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	final := filepath.Join(root, "sha256", sha[:2], sha)
	if fi, err := os.Stat(final); err == nil && fi.Size() == size {
		return final, nil
	}
	tmp := final + ".download-" + randHex(6)
	defer os.Remove(tmp)
	if err := Download(ctx, rawURL, tmp); err != nil {
		return "", err
	}
	n, got, err := HashFile(tmp)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	if n != size || got != sha {
		return "", fmt.Errorf("fetch %s: %d bytes with sha256 %.12s…, expected %d bytes with sha256 %.12s… (damaged or replaced)", rawURL, n, got, size, sha)
	}
	_ = os.Chmod(tmp, 0o444)
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	return final, nil
}

// HashFile returns the size and hex SHA-256 of the local file p.
func HashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// staleCopy is how long a superseded copy of a directory is kept.
const staleCopy = time.Hour

// listing is what a cached copy of a remote directory was made from.
type listing struct {
	URL   string        `json:"url"`
	Files []listingFile `json:"files"`
}

type listingFile struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// LocalDir returns a local directory holding the files under dirURL: the
// directory itself for a local URL, else a copy in the cache (CacheRoot).
// keep, when not nil, selects the files to copy by their path relative to
// dirURL. The copy is reused while the remote listing (names, sizes,
// modification times) is unchanged, so a model read by many steps is
// downloaded once per machine.
func LocalDir(ctx context.Context, dirURL string, keep func(rel string) bool) (string, error) {
	if IsLocal(dirURL) {
		return LocalPath(dirURL)
	}
	dirURL = strings.TrimRight(dirURL, "/")
	entries, err := List(ctx, DirPrefix(dirURL), "")
	if err != nil {
		return "", err
	}
	base, err := parse(dirURL + "/")
	if err != nil {
		return "", err
	}
	l := listing{URL: dirURL}
	for _, e := range entries {
		rel := strings.TrimPrefix(e.Key, base.key)
		if e.IsDir || rel == "" || (keep != nil && !keep(rel)) {
			continue
		}
		l.Files = append(l.Files, listingFile{Path: rel, Size: e.Size, ModTime: e.ModTime.UTC()})
	}
	if len(l.Files) == 0 {
		return "", fmt.Errorf("%s: %w (no objects under it)", dirURL, ErrNotExist)
	}
	sort.Slice(l.Files, func(i, j int) bool { return l.Files[i].Path < l.Files[j].Path })
	raw, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	us := sha256.Sum256([]byte(dirURL))
	ls := sha256.Sum256(raw)
	stem := filepath.Join(root, "dirs", hex.EncodeToString(us[:8]))
	final := stem + "-" + hex.EncodeToString(ls[:8])
	if _, err := os.Stat(filepath.Join(final, ".marin-listing.json")); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", fmt.Errorf("copy %s: %w", dirURL, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), filepath.Base(final)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", dirURL, err)
	}
	defer os.RemoveAll(tmp)
	logf(ctx, "info", fmt.Sprintf("copying %s to the local cache", dirURL), "files", fmt.Sprint(len(l.Files)))
	for _, f := range l.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			return "", fmt.Errorf("copy %s: object %q would land outside the copy", dirURL, f.Path)
		}
	}
	if err := parallel(ctx, paths(l.Files), 2, func(ctx context.Context, rel string) error {
		return Download(ctx, Join(dirURL, rel), filepath.Join(tmp, filepath.FromSlash(rel)))
	}); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".marin-listing.json"), raw, 0o644); err != nil {
		return "", fmt.Errorf("copy %s: %w", dirURL, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another process made the same copy first: use it.
		if _, serr := os.Stat(filepath.Join(final, ".marin-listing.json")); serr == nil {
			return final, nil
		}
		return "", fmt.Errorf("copy %s: %w", dirURL, err)
	}
	// Older copies of the same URL are stale now; those untouched for a
	// while go (a process may still be reading a recent one).
	if old, _ := filepath.Glob(stem + "-*"); len(old) > 1 {
		for _, o := range old {
			fi, err := os.Stat(o)
			if o != final && err == nil && time.Since(fi.ModTime()) > staleCopy {
				_ = os.RemoveAll(o)
			}
		}
	}
	return final, nil
}

func paths(fs []listingFile) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Path
	}
	return out
}
