package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ScratchDirEnv overrides where staged outputs of remote steps live while
// they are written (default: the system's temporary directory's
// marin-scratch).
const ScratchDirEnv = "MARIN_SCRATCH_DIR"

// Stage is the local working directory of an output URL, for ops whose
// writers need files (memory-mapped caches, safetensors, a shell command).
// For a file:// output it is the output directory itself and Publish does
// nothing; for any other URL it is a scratch directory on this machine
// that the op fills, publishing each part to the URL when the part is
// complete. A part's commit marker is published last, so a reader of the
// URL never takes a part for complete before it is.
type Stage struct {
	URL    string // the output
	Dir    string // where the op writes
	remote bool
}

// NewStage prepares the working directory of outputURL. A remote output's
// scratch directory is keyed by the URL and emptied first: leftovers of a
// crashed attempt are never taken for outputs (what a rerun keeps comes
// from the URL, through Fetch).
func NewStage(outputURL string) (*Stage, error) {
	u, err := NormalizeURL(outputURL)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(u, "file://") {
		p, err := filePathOf(u)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("output %s: %w", u, err)
		}
		return &Stage{URL: u, Dir: p}, nil
	}
	root := os.Getenv(ScratchDirEnv)
	if root == "" {
		root = filepath.Join(os.TempDir(), "marin-scratch")
	}
	sum := sha256.Sum256([]byte(u))
	dir := filepath.Join(root, hex.EncodeToString(sum[:8]))
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("scratch directory of %s: %w", u, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("scratch directory of %s: %w", u, err)
	}
	return &Stage{URL: u, Dir: dir, remote: true}, nil
}

// Remote reports whether the output is elsewhere than Dir.
func (s *Stage) Remote() bool { return s.remote }

// Path is the local path of rel (slash-separated, relative to the output).
func (s *Stage) Path(rel string) string {
	return filepath.Join(s.Dir, filepath.FromSlash(rel))
}

// URLOf is the URL of rel ("" or "." is the output itself).
func (s *Stage) URLOf(rel string) string {
	if rel == "" || rel == "." {
		return s.URL
	}
	return Join(s.URL, rel)
}

// Publish copies the file or directory rel from Dir to the output. For a
// directory, the files named in last (relative to it) go last, in order.
func (s *Stage) Publish(ctx context.Context, rel string, last ...string) error {
	if !s.remote {
		return nil
	}
	p := s.Path(rel)
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("publish %s: %w", s.URLOf(rel), err)
	}
	if fi.IsDir() {
		return UploadDir(ctx, p, s.URLOf(rel), last...)
	}
	return Upload(ctx, p, s.URLOf(rel))
}

// Fetch copies rel from the output into Dir: a file, or every file of a
// directory. It reports whether there was anything to copy. On a local
// output everything is already there.
func (s *Stage) Fetch(ctx context.Context, rel string) (bool, error) {
	if !s.remote {
		_, err := os.Stat(s.Path(rel))
		return err == nil, nil
	}
	err := Download(ctx, s.URLOf(rel), s.Path(rel))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, ErrNotExist) {
		return false, err
	}
	n, err := DownloadDir(ctx, s.URLOf(rel), s.Path(rel))
	return n > 0, err
}

// Remove deletes rel (a file or a directory) from the output and from Dir.
func (s *Stage) Remove(ctx context.Context, rel string) error {
	if err := os.RemoveAll(s.Path(rel)); err != nil {
		return err
	}
	if !s.remote {
		return nil
	}
	if err := Delete(ctx, s.URLOf(rel)); err != nil {
		return err
	}
	return DeleteAll(ctx, s.URLOf(rel))
}

// Close removes a remote output's scratch directory.
func (s *Stage) Close() error {
	if !s.remote {
		return nil
	}
	return os.RemoveAll(s.Dir)
}
