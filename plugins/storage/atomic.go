package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Writer writes one object atomically: nothing appears at its URL until
// Commit succeeds, and a Writer that is aborted, whose Write failed, or
// whose Commit failed leaves the previous object (or none) in place, on
// every driver. It is the one way marin writes a file that others read:
// the host's status and lease files, and the plugins' outputs.
//
// Each driver's writer stages the data (fileblob in a temp file next to
// the target, object stores in an upload) and commits it on close unless
// its context is cancelled; Writer cancels that context before closing
// whenever anything went wrong, so a failed write (a full disk, an I/O
// error) can never commit a cut-off file. On file:// the data is synced
// before the rename and the directory after it, so a committed object
// survives a power loss.
type Writer struct {
	url    string
	w      *blob.Writer
	cancel context.CancelFunc
	f      *os.File // fileblob's temp file, when the driver exposes it
	dir    string   // local directory to sync after the rename (file://)
	err    error    // first Write error; sticky
	done   bool
}

// Create starts an atomic write of the object at rawURL (see Writer).
// On object stores the data streams out in parts as it is written
// (multipart uploads on S3, resumable chunks on GCS), so memory stays
// bounded however large the object.
func Create(ctx context.Context, rawURL string) (*Writer, error) {
	return create(ctx, rawURL, writeOpts{})
}

// writeOpts are the options of one write.
type writeOpts struct {
	md5sum     []byte
	ifNotExist bool
	// before, when set, may change the driver's request (a precondition).
	before func(as func(any) bool) error
	// partSize and concurrency bound a streaming upload's buffers (0:
	// the driver's defaults).
	partSize, concurrency int
}

func create(ctx context.Context, rawURL string, o writeOpts) (*Writer, error) {
	b, loc, err := open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	aw := &Writer{url: rawURL, cancel: cancel}
	if loc.scheme == "file" {
		aw.dir = filepath.Dir(filepath.FromSlash("/" + loc.key))
	}
	opts := &blob.WriterOptions{
		ContentType:    contentType(loc.key),
		ContentMD5:     o.md5sum,
		IfNotExist:     o.ifNotExist,
		BufferSize:     o.partSize,
		MaxConcurrency: o.concurrency,
		BeforeWrite: func(as func(any) bool) error {
			var f *os.File
			if as(&f) {
				aw.f = f
			}
			if o.before != nil {
				return o.before(as)
			}
			return nil
		},
	}
	w, err := b.NewWriter(wctx, loc.key, opts)
	if err != nil {
		cancel()
		return nil, opError("write", rawURL, err)
	}
	aw.w = w
	return aw, nil
}

// Write stages p. After an error every later Write fails the same way and
// Commit aborts.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, fmt.Errorf("write %s: the write was already committed or aborted", w.url)
	}
	n, err := w.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = opError("write", w.url, err)
		return n, w.err
	}
	return n, nil
}

// Commit makes the written bytes the object's content, or returns why it
// could not, leaving the previous content in place. It returns the first
// Write error, if any, without committing.
func (w *Writer) Commit() error {
	if w.done {
		return fmt.Errorf("commit %s: the write was already committed or aborted", w.url)
	}
	if w.err != nil {
		w.Abort()
		return w.err
	}
	if w.f != nil {
		if err := w.f.Sync(); err != nil {
			w.Abort()
			return fmt.Errorf("sync %s: %w", w.url, err)
		}
	}
	w.done = true
	err := w.w.Close()
	w.cancel()
	if err != nil {
		w.removeTemp()
		return opError("commit", w.url, err)
	}
	if w.dir != "" {
		syncDir(w.dir)
	}
	return nil
}

// Abort discards the write; the object keeps its previous content. It is
// safe to call after Commit (it does nothing then), so `defer w.Abort()`
// cleans up every early return.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.cancel() // drivers check their context on close and discard the upload
	_ = w.w.Close()
	w.removeTemp()
}

// removeTemp deletes fileblob's temp file in case its writer could not
// (its close failed before the cleanup it defers).
func (w *Writer) removeTemp() {
	if w.f != nil {
		_ = os.Remove(w.f.Name())
	}
}

// syncDir makes a rename in dir durable where the system allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// WriteAtomic replaces the object at rawURL with data (see Writer): readers
// see the old content or the new, never a part, and a failed write leaves
// the old content.
func WriteAtomic(ctx context.Context, rawURL string, data []byte) error {
	sum := md5.Sum(data)
	w, err := create(ctx, rawURL, writeOpts{md5sum: sum[:]})
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

// WriteAtomicFunc replaces the object at rawURL with what fill writes (see
// Writer); an error from fill aborts the write and is returned.
func WriteAtomicFunc(ctx context.Context, rawURL string, fill func(io.Writer) error) error {
	w, err := Create(ctx, rawURL)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := fill(w); err != nil {
		if w.err != nil && !errors.Is(err, w.err) {
			// fill's own error may not say the write failed.
			return fmt.Errorf("%w (%w)", err, w.err)
		}
		return err
	}
	return w.Commit()
}

// CreateIfNotExist writes data to rawURL only if no object exists there, and
// reports whether it did. Exactly one of any number of concurrent callers, in
// any number of processes, gets true.
//
// fileblob's own IfNotExist is a Stat then Rename, which two writers can
// both pass; for file:// the object is written (atomically, as any other) to
// a temp name next to the target and hard-linked into place, and link(2)
// fails with EEXIST atomically. mem:// checks under the bucket's lock, and
// object stores use their conditional-create precondition.
func CreateIfNotExist(ctx context.Context, rawURL string, data []byte) (bool, error) {
	_, loc, err := open(ctx, rawURL)
	if err != nil {
		return false, err
	}
	if loc.scheme == "file" {
		created, err := linkCreate(ctx, loc, data)
		if err != nil {
			return false, fmt.Errorf("create %s: %w", rawURL, err)
		}
		return created, nil
	}
	sum := md5.Sum(data)
	w, err := create(ctx, rawURL, writeOpts{md5sum: sum[:], ifNotExist: true})
	if err != nil {
		return false, fmt.Errorf("create %s: %w", rawURL, err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return false, fmt.Errorf("create %s: %w", rawURL, err)
	}
	if err := w.Commit(); err != nil {
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return ownWrite(ctx, rawURL, data)
		}
		return false, fmt.Errorf("create %s: %w", rawURL, err)
	}
	return true, nil
}

// ownWrite settles a conditional write whose precondition failed: when
// the object now holds exactly data, it was this write — a retried
// request whose first attempt succeeded but whose reply was lost — and
// counts as done. Callers that race write distinct content (a lease id, a
// holder and time), so another writer's object never matches.
func ownWrite(ctx context.Context, rawURL string, data []byte) (bool, error) {
	cur, err := ReadAll(ctx, rawURL)
	if errors.Is(err, ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s: read back after a failed precondition: %w", rawURL, err)
	}
	return bytes.Equal(cur, data), nil
}

// linkCreate creates the file at loc with data unless it exists, atomically
// across processes.
func linkCreate(ctx context.Context, loc location, data []byte) (created bool, err error) {
	tmpKey := fmt.Sprintf("%s.%s.tmp", loc.key, randHex(8))
	tmpURL := loc.url(tmpKey)
	tmpPath := filepath.FromSlash("/" + tmpKey)
	defer func() {
		// Also after a failed write: a store without atomic commits may
		// have left part of it.
		if Delete(ctx, tmpURL) != nil {
			// Hidden from List either way, but not left behind if the
			// file system lets us.
			_ = os.Remove(tmpPath)
		}
	}()
	if err := WriteAtomic(ctx, tmpURL, data); err != nil {
		return false, err
	}
	if err := os.Link(tmpPath, filepath.FromSlash("/"+loc.key)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, err
	}
	syncDir(filepath.Dir(tmpPath))
	return true, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
