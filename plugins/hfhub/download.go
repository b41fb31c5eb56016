package hfhub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// IncompleteSuffix is appended to a file's name while it downloads. A file
// with this suffix is the resumable prefix of an interrupted download.
const IncompleteSuffix = ".incomplete"

// ErrChecksum is matched by the error of a download whose content does not
// match the size or hash the hub listed, even after fetching it again.
var ErrChecksum = errors.New("checksum mismatch")

// DownloadResult says what Download did.
type DownloadResult struct {
	// Skipped: the destination already held the verified file.
	Skipped bool
	// ResumedFrom is the offset a download resumed from (0: from scratch).
	ResumedFrom int64
	// Refetched counts the times a corrupt copy (already in place, or just
	// downloaded) was thrown away and fetched again.
	Refetched int
	// Bytes is how much was transferred by this call.
	Bytes int64
}

// Download fetches f of repo at rev into the local file dst, creating its
// directory. The bytes go to dst+IncompleteSuffix first, which a later call
// resumes from with a Range request, and are renamed to dst only once their
// size and hash match f. A dst that already matches f is left as it is; one
// that does not is fetched again. progress, if not nil, is called with the
// number of bytes each write added (it may go backwards by a negative n when
// a corrupt partial download is thrown away).
//
// f usually comes from ListFiles. f.Size < 0 means the size is unknown;
// empty hashes skip that check.
func (c *Client) Download(ctx context.Context, repo Repo, rev string, f File, dst string, progress func(n int64)) (DownloadResult, error) {
	var res DownloadResult
	if err := repo.check(); err != nil {
		return res, err
	}
	if progress == nil {
		progress = func(int64) {}
	}
	fileURL := c.FileURL(repo, rev, f.Path)
	op := "download " + f.Path + " of " + repo.String()

	if ok, err := verifyLocal(dst, f); err != nil {
		return res, fmt.Errorf("%s: check existing %s: %w", op, dst, err)
	} else if ok {
		res.Skipped = true
		return res, nil
	} else if _, err := os.Stat(dst); err == nil {
		// Present but wrong: a corrupt or truncated copy.
		if err := os.Remove(dst); err != nil {
			return res, fmt.Errorf("%s: remove corrupt %s: %w", op, dst, err)
		}
		res.Refetched++
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return res, fmt.Errorf("%s: %w", op, err)
	}
	part := dst + IncompleteSuffix
	for try := 0; ; try++ {
		err := c.fetchInto(ctx, repo, op, fileURL, f, part, progress, &res)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrChecksum) || try >= 2 {
			return res, err
		}
		// Corrupt in transit (or a bad partial file): start again from zero.
		_ = os.Remove(part)
		res.Refetched++
	}
	if err := os.Rename(part, dst); err != nil {
		return res, fmt.Errorf("%s: %w", op, err)
	}
	return res, nil
}

// fetchInto completes part from its current size to the whole file and
// verifies it.
func (c *Client) fetchInto(ctx context.Context, repo Repo, op, fileURL string, f File, part string, progress func(int64), res *DownloadResult) error {
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer out.Close()
	st, err := out.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	offset := st.Size()
	if f.Size >= 0 && offset > f.Size {
		offset = 0
	}
	h := newVerifier(f)
	if offset > 0 {
		// Hash the prefix we keep, so the final check covers the whole file.
		if n, err := io.Copy(h, io.NewSectionReader(out, 0, offset)); err != nil || n != offset {
			offset = 0
			h = newVerifier(f)
		}
	}
	restart := func() error {
		progress(-offset)
		offset = 0
		h = newVerifier(f)
		return out.Truncate(0)
	}
	if err := out.Truncate(offset); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if offset > 0 && res.ResumedFrom == 0 {
		res.ResumedFrom = offset
	}
	progress(offset)

	total := f.Size
	for bodyTry := 0; total < 0 || offset < total; {
		resp, err := c.do(ctx, op, repo, func() (*http.Request, error) {
			r, err := http.NewRequest(http.MethodGet, fileURL, nil)
			if err == nil && offset > 0 {
				r.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
			}
			return r, err
		})
		if err != nil {
			return err
		}
		switch resp.StatusCode {
		case http.StatusRequestedRangeNotSatisfiable:
			resp.Body.Close()
			if total < 0 && offset > 0 {
				total = offset // we already have everything the server has
				continue
			}
			if err := restart(); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			continue
		case http.StatusPartialContent:
			start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
			if !ok || start != offset {
				resp.Body.Close()
				if err := restart(); err != nil {
					return fmt.Errorf("%s: %w", op, err)
				}
				continue
			}
			if total < 0 && size >= 0 {
				total = size
			}
		case http.StatusOK:
			if offset > 0 {
				// The server ignored the Range header: take the whole body.
				if err := restart(); err != nil {
					resp.Body.Close()
					return fmt.Errorf("%s: %w", op, err)
				}
			}
			if total < 0 && resp.ContentLength >= 0 {
				total = resp.ContentLength
			}
		default:
			resp.Body.Close()
			return fmt.Errorf("%s: %s: unexpected HTTP %d", op, redactURL(fileURL), resp.StatusCode)
		}
		if _, err := out.Seek(offset, io.SeekStart); err != nil {
			resp.Body.Close()
			return fmt.Errorf("%s: %w", op, err)
		}
		var body io.Reader = resp.Body
		if total >= 0 {
			// Never write past the listed size: a longer body is corrupt.
			body = io.LimitReader(resp.Body, total-offset+1)
		}
		n, cerr := io.Copy(io.MultiWriter(out, h, progressWriter(progress)), body)
		resp.Body.Close()
		offset += n
		res.Bytes += n
		if total >= 0 && offset > total {
			return fmt.Errorf("%s: %s: %w: got more than the listed %d bytes", op, redactURL(fileURL), ErrChecksum, total)
		}
		if cerr == nil && total < 0 {
			total = offset
		}
		if cerr == nil && offset == total {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		// The connection broke (or ended early): resume from offset.
		bodyTry++
		if bodyTry > c.MaxRetries {
			if cerr == nil {
				cerr = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%s: %s: interrupted at byte %d of %d, giving up after %d attempts: %w", op, redactURL(fileURL), offset, total, bodyTry, cerr)
		}
		if err := c.sleep(ctx, c.backoff(bodyTry)); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if f.Size >= 0 && offset != f.Size {
		return fmt.Errorf("%s: %s: %w: size %d, the hub lists %d", op, redactURL(fileURL), ErrChecksum, offset, f.Size)
	}
	if err := h.check(); err != nil {
		return fmt.Errorf("%s: %s: %w", op, redactURL(fileURL), err)
	}
	return nil
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) {
	p(int64(len(b)))
	return len(b), nil
}

// parseContentRange reads "bytes START-END/SIZE" (SIZE may be "*": -1).
func parseContentRange(s string) (start, size int64, ok bool) {
	s, found := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, size, true
}

// verifier hashes content as it is written and checks it against a File.
type verifier struct {
	h    hash.Hash
	want string
	kind string
}

func newVerifier(f File) *verifier {
	switch {
	case f.SHA256 != "":
		return &verifier{h: sha256.New(), want: strings.ToLower(f.SHA256), kind: "sha256"}
	case f.GitOID != "" && f.Size >= 0:
		h := sha1.New()
		fmt.Fprintf(h, "blob %d\x00", f.Size)
		return &verifier{h: h, want: strings.ToLower(f.GitOID), kind: "git blob id"}
	}
	return &verifier{}
}

func (v *verifier) Write(b []byte) (int, error) {
	if v.h != nil {
		v.h.Write(b)
	}
	return len(b), nil
}

func (v *verifier) check() error {
	if v.h == nil {
		return nil
	}
	if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
		return fmt.Errorf("%w: %s %s, the hub lists %s", ErrChecksum, v.kind, got, v.want)
	}
	return nil
}

// Verify checks the local file at path against f's size and hash.
func Verify(path string, f File) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if f.Size >= 0 && st.Size() != f.Size {
		return fmt.Errorf("%s: %w: size %d, want %d", path, ErrChecksum, st.Size(), f.Size)
	}
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	v := newVerifier(f)
	if _, err := io.Copy(v, in); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := v.check(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// verifyLocal reports whether path holds f; a missing file is (false, nil).
func verifyLocal(path string, f File) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	err := Verify(path, f)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrChecksum) {
		return false, nil
	}
	return false, err
}
