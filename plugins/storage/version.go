package storage

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	gcs "cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/gcerrors"
)

// Version identifies the content an object held when it was read: the S3
// ETag, the GCS generation, or on file:// and mem:// the MD5 of the bytes.
// ReplaceIfVersion replaces an object only while it still has the version
// its caller read, which is how a lease holder refreshes its lease without
// ever overwriting a newer holder's.
type Version string

// ReadVersioned returns the content of the object at rawURL and its
// version, from one read (the version is that of the bytes returned). A
// missing object gives an error matching ErrNotExist.
func ReadVersioned(ctx context.Context, rawURL string) ([]byte, Version, error) {
	b, loc, err := open(ctx, rawURL)
	if err != nil {
		return nil, "", err
	}
	r, err := b.NewReader(ctx, loc.key, nil)
	if err != nil {
		if notFound(err) {
			return nil, "", fmt.Errorf("read %s: %w", rawURL, ErrNotExist)
		}
		return nil, "", opError("read", rawURL, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, "", opError("read", rawURL, err)
	}
	switch loc.scheme {
	case "s3":
		var out s3.GetObjectOutput
		if !r.As(&out) || out.ETag == nil {
			return nil, "", fmt.Errorf("read %s: the S3 reply has no ETag", rawURL)
		}
		return data, Version(*out.ETag), nil
	case "gs":
		var gr *gcs.Reader
		if !r.As(&gr) || gr == nil {
			return nil, "", fmt.Errorf("read %s: no GCS generation", rawURL)
		}
		return data, Version(strconv.FormatInt(gr.Attrs.Generation, 10)), nil
	case "file", "mem":
		return data, contentVersion(data), nil
	}
	return nil, "", fmt.Errorf("read %s: versioned reads are not supported for %s:// URLs", rawURL, loc.scheme)
}

func contentVersion(data []byte) Version {
	sum := md5.Sum(data)
	return Version(hex.EncodeToString(sum[:]))
}

// memCAS serialises compare-and-swap on mem:// buckets (they live in this
// process only).
var memCAS sync.Mutex

// ReplaceIfVersion replaces the object at rawURL with data only while it
// still has version v (from ReadVersioned), and reports whether it did. It
// returns false, nil when the object changed or was deleted in between.
// The check and the write are one atomic step for every writer using this
// function: S3 PUT with If-Match, GCS upload with ifGenerationMatch, an
// exclusive flock(2) on the file for file://, a process-wide lock for
// mem://. As with CreateIfNotExist, a retried request whose first attempt
// already replaced the object counts as done, so data must differ from
// what any other writer could write.
func ReplaceIfVersion(ctx context.Context, rawURL string, data []byte, v Version) (bool, error) {
	_, loc, err := open(ctx, rawURL)
	if err != nil {
		return false, err
	}
	switch loc.scheme {
	case "file":
		return replaceFile(ctx, loc, rawURL, data, v)
	case "mem":
		memCAS.Lock()
		defer memCAS.Unlock()
		cur, err := ReadAll(ctx, rawURL)
		if errors.Is(err, ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if contentVersion(cur) != v {
			return false, nil
		}
		return true, WriteAtomic(ctx, rawURL, data)
	case "s3":
		return conditionalWrite(ctx, rawURL, data, func(as func(any) bool) error {
			var in *transfermanager.UploadObjectInput
			if !as(&in) {
				return errors.New("the S3 driver does not expose its upload request")
			}
			in.IfMatch = aws.String(string(v))
			return nil
		})
	case "gs":
		gen, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return false, fmt.Errorf("replace %s: version %q is not a GCS generation", rawURL, v)
		}
		return conditionalWrite(ctx, rawURL, data, func(as func(any) bool) error {
			var oh **gcs.ObjectHandle
			if !as(&oh) {
				return errors.New("the GCS driver does not expose its object handle")
			}
			*oh = (*oh).If(gcs.Conditions{GenerationMatch: gen})
			return nil
		})
	}
	return false, fmt.Errorf("replace %s: conditional writes are not supported for %s:// URLs", rawURL, loc.scheme)
}

// conditionalWrite writes data with a precondition set by before.
func conditionalWrite(ctx context.Context, rawURL string, data []byte, before func(as func(any) bool) error) (bool, error) {
	sum := md5.Sum(data)
	w, err := create(ctx, rawURL, writeOpts{md5sum: sum[:], before: before})
	if err != nil {
		return false, fmt.Errorf("replace %s: %w", rawURL, err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return false, fmt.Errorf("replace %s: %w", rawURL, err)
	}
	if err := w.Commit(); err != nil {
		switch gcerrors.Code(err) {
		case gcerrors.FailedPrecondition:
			return ownWrite(ctx, rawURL, data)
		case gcerrors.NotFound:
			if notFound(err) {
				return false, nil // S3 answers If-Match on a missing key with 404
			}
		}
		return false, fmt.Errorf("replace %s: %w", rawURL, err)
	}
	return true, nil
}

// replaceFile is ReplaceIfVersion for file://: under an exclusive flock of
// the file now at the path, compare its content and rename the new content
// over it. A writer that waited for the lock finds the path holding a new
// file (the rename) and compares against that one instead.
func replaceFile(ctx context.Context, loc location, rawURL string, data []byte, v Version) (bool, error) {
	path := filepath.FromSlash("/" + loc.key)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("replace %s: %w", rawURL, err)
		}
		ok, again, err := replaceLocked(ctx, f, path, rawURL, data, v)
		f.Close() // releases the lock
		if !again {
			return ok, err
		}
	}
}

func replaceLocked(ctx context.Context, f *os.File, path, rawURL string, data []byte, v Version) (ok, again bool, err error) {
	if err := lockFile(f); err != nil {
		return false, false, fmt.Errorf("replace %s: lock: %w", rawURL, err)
	}
	held, err := f.Stat()
	if err != nil {
		return false, false, fmt.Errorf("replace %s: %w", rawURL, err)
	}
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("replace %s: %w", rawURL, err)
	}
	if !os.SameFile(held, now) {
		return false, true, nil // replaced while we waited: look again
	}
	cur, err := io.ReadAll(f)
	if err != nil {
		return false, false, fmt.Errorf("replace %s: %w", rawURL, err)
	}
	if contentVersion(cur) != v {
		return false, false, nil
	}
	if err := WriteAtomic(ctx, rawURL, data); err != nil {
		return false, false, err
	}
	return true, false, nil
}
