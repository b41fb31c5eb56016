// Package faultblob wraps a gocloud.dev/blob bucket so that one chosen I/O
// operation fails, in the style of SQLite's I/O-error tests: count the
// operations a workload performs, then rerun it once per operation with
// that operation failing, and check that nothing is lost or left half
// done.
//
// Operations are counted per kind, in the order they happen:
//
//	write   one per object written (a new writer)
//	read    one per object read or stat'ed (a reader, Attributes)
//	rename  one per commit of a written object (a writer's close, a copy)
//	list    one per listed page
//	delete  one per delete
//
// A Fault names an operation kind, its 1-based number and how it fails
// (Kinds lists which failures apply to which operation):
//
//	enospc       the device is full: the write takes half of the first
//	             buffer, then fails with ENOSPC (as do later writes)
//	eio          an I/O error (EIO): a write fails half-way like enospc, a
//	             read returns half the object then fails, other
//	             operations fail outright
//	short-write  a write takes only half of its buffer and says so
//	             (io.ErrShortWrite); later writes go through
//	timeout      as eio, with a timeout (os.ErrDeadlineExceeded)
//	torn-write   the write is committed with only the first half of its
//	             bytes, then the close reports EIO: what a store without
//	             atomic commits leaves after a crash
//
// Like a real driver, the wrapper commits what it was given when its writer
// is closed with a live context, even after a failed write, and discards it
// when the context was cancelled; it does not verify ContentMD5 (fileblob
// does not either). Callers that must not commit a cut-off object cancel
// before closing (see storage.Writer).
//
// An Injector wraps any number of buckets (storage.Interpose installs it
// under everything built on plugins/storage) and counts across all of them,
// so it can sweep file://, mem:// and object-store drivers alike.
package faultblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"
)

// Op is a kind of I/O operation.
type Op string

// The operations an Injector counts.
const (
	Write  Op = "write"
	Read   Op = "read"
	Rename Op = "rename"
	List   Op = "list"
	Delete Op = "delete"
)

// Ops lists every Op.
var Ops = []Op{Write, Read, Rename, List, Delete}

// Kind is how a faulted operation fails.
type Kind string

// The fault kinds.
const (
	ENOSPC     Kind = "enospc"
	EIO        Kind = "eio"
	ShortWrite Kind = "short-write"
	Timeout    Kind = "timeout"
	TornWrite  Kind = "torn-write"
)

// Kinds returns the fault kinds that apply to op.
func Kinds(op Op) []Kind {
	switch op {
	case Write:
		return []Kind{ENOSPC, EIO, ShortWrite, Timeout, TornWrite}
	case Rename:
		return []Kind{ENOSPC, EIO, Timeout}
	default:
		return []Kind{EIO, Timeout}
	}
}

func applies(op Op, k Kind) bool {
	for _, x := range Kinds(op) {
		if x == k {
			return true
		}
	}
	return false
}

// Fault makes the N-th (1-based) operation of kind Op fail as Kind says.
type Fault struct {
	Op   Op
	N    int64
	Kind Kind
}

func (f Fault) String() string { return fmt.Sprintf("%s #%d: %s", f.Op, f.N, f.Kind) }

// Event is a fault that fired.
type Event struct {
	Fault
	Key string // the object (or list prefix) it hit
}

// ErrInjected is matched (errors.Is) by every injected failure.
var ErrInjected = errors.New("injected fault")

// FaultError is an injected failure. It matches ErrInjected and the error
// it imitates (syscall.ENOSPC, syscall.EIO, io.ErrShortWrite,
// os.ErrDeadlineExceeded).
type FaultError struct {
	Event
	Err error
}

func (e *FaultError) Error() string {
	return fmt.Sprintf("injected %s on %s #%d (%s): %v", e.Kind, e.Op, e.N, e.Key, e.Err)
}

func (e *FaultError) Unwrap() []error { return []error{e.Err, ErrInjected} }

func newFault(ev Event) *FaultError {
	var err error
	switch ev.Kind {
	case ENOSPC:
		err = syscall.ENOSPC
	case ShortWrite:
		err = io.ErrShortWrite
	case Timeout:
		err = os.ErrDeadlineExceeded
	default:
		err = syscall.EIO
	}
	return &FaultError{Event: ev, Err: err}
}

// Injector counts operations and fires at most one armed fault.
type Injector struct {
	mu     sync.Mutex
	counts map[Op]int64
	armed  *Fault
	fired  []Event
	only   string
}

// New returns an Injector with nothing armed.
func New() *Injector { return &Injector{counts: map[Op]int64{}} }

// Only restricts counting (and faults) to keys starting with prefix; other
// operations pass through uncounted. "" counts everything.
func (in *Injector) Only(prefix string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.only = prefix
}

// Arm makes f fire when its operation comes; counting restarts at zero.
func (in *Injector) Arm(f Fault) error {
	if f.N < 1 {
		return fmt.Errorf("faultblob: operation number %d: want 1 or more", f.N)
	}
	if !applies(f.Op, f.Kind) {
		return fmt.Errorf("faultblob: %s does not apply to %s (want one of %v)", f.Kind, f.Op, Kinds(f.Op))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.counts, in.fired = map[Op]int64{}, nil
	in.armed = &f
	return nil
}

// Reset disarms and restarts counting at zero.
func (in *Injector) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.counts, in.fired, in.armed = map[Op]int64{}, nil, nil
}

// Counts returns how many operations of each kind happened since the last
// Arm or Reset.
func (in *Injector) Counts() map[Op]int64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[Op]int64, len(in.counts))
	for k, v := range in.counts {
		out[k] = v
	}
	return out
}

// Fired returns the faults that fired since the last Arm or Reset.
func (in *Injector) Fired() []Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Event(nil), in.fired...)
}

// next counts an operation on key and returns the fault to inject, if any.
func (in *Injector) next(op Op, key string) *FaultError {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.only != "" && !strings.HasPrefix(key, in.only) {
		return nil
	}
	in.counts[op]++
	f := in.armed
	if f == nil || f.Op != op || f.N != in.counts[op] {
		return nil
	}
	in.armed = nil
	ev := Event{Fault: *f, Key: key}
	in.fired = append(in.fired, ev)
	return newFault(ev)
}

// Wrap returns a bucket that performs b's operations through in. Closing it
// does not close b.
func (in *Injector) Wrap(b *blob.Bucket) *blob.Bucket {
	return blob.NewBucket(&bucket{in: in, b: b})
}

// bucket is the driver.Bucket of a wrapped bucket.
type bucket struct {
	in *Injector
	b  *blob.Bucket
}

var _ driver.Bucket = (*bucket)(nil)

func (d *bucket) ErrorCode(err error) gcerrors.ErrorCode {
	var fe *FaultError
	if errors.As(err, &fe) {
		switch fe.Kind {
		case ENOSPC:
			return gcerrors.ResourceExhausted
		case Timeout:
			return gcerrors.DeadlineExceeded
		}
		return gcerrors.Internal
	}
	return gcerrors.Code(err)
}

func (d *bucket) As(i any) bool                 { return d.b.As(i) }
func (d *bucket) ErrorAs(err error, i any) bool { return d.b.ErrorAs(err, i) }
func (d *bucket) Close() error                  { return nil }
func (d *bucket) SignedURL(context.Context, string, *driver.SignedURLOptions) (string, error) {
	return "", errors.New("faultblob: signed URLs are not supported")
}

func (d *bucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	if fe := d.in.next(Read, key); fe != nil {
		return nil, fe
	}
	a, err := d.b.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return &driver.Attributes{
		CacheControl: a.CacheControl, ContentDisposition: a.ContentDisposition,
		ContentEncoding: a.ContentEncoding, ContentLanguage: a.ContentLanguage,
		ContentType: a.ContentType, Metadata: a.Metadata, CreateTime: a.CreateTime,
		ModTime: a.ModTime, Size: a.Size, MD5: a.MD5, ETag: a.ETag, AsFunc: a.As,
	}, nil
}

func (d *bucket) ListPaged(ctx context.Context, opts *driver.ListOptions) (*driver.ListPage, error) {
	if fe := d.in.next(List, opts.Prefix); fe != nil {
		return nil, fe
	}
	token := opts.PageToken
	if len(token) == 0 {
		token = blob.FirstPageToken
	}
	size := opts.PageSize
	if size <= 0 {
		size = 1000
	}
	objs, next, err := d.b.ListPage(ctx, token, size, &blob.ListOptions{
		Prefix: opts.Prefix, Delimiter: opts.Delimiter, BeforeList: opts.BeforeList,
	})
	if err != nil {
		return nil, err
	}
	page := &driver.ListPage{NextPageToken: next}
	for _, o := range objs {
		page.Objects = append(page.Objects, &driver.ListObject{
			Key: o.Key, ModTime: o.ModTime, Size: o.Size, MD5: o.MD5, IsDir: o.IsDir, AsFunc: o.As,
		})
	}
	return page, nil
}

func (d *bucket) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	fe := d.in.next(Read, key)
	r, err := d.b.NewRangeReader(ctx, key, offset, length, &blob.ReaderOptions{BeforeRead: opts.BeforeRead})
	if err != nil {
		if fe != nil {
			return nil, fe
		}
		return nil, err
	}
	rr := &reader{r: r, limit: -1}
	if fe != nil {
		n := length
		if n < 0 {
			n = r.Size() - offset
		}
		if n <= 1 {
			r.Close()
			return nil, fe
		}
		rr.limit, rr.fault = n/2, fe
	}
	return rr, nil
}

// reader fails with fault after limit bytes (limit < 0: never).
type reader struct {
	r     *blob.Reader
	limit int64
	fault error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.limit == 0 {
		return 0, r.fault
	}
	if r.limit > 0 && int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	n, err := r.r.Read(p)
	if r.limit > 0 {
		r.limit -= int64(n)
	}
	return n, err
}

func (r *reader) Close() error  { return r.r.Close() }
func (r *reader) As(i any) bool { return r.r.As(i) }
func (r *reader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{ContentType: r.r.ContentType(), ModTime: r.r.ModTime(), Size: r.r.Size()}
}

func (d *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	fe := d.in.next(Write, key)
	wctx, cancel := context.WithCancel(ctx)
	// ContentMD5 is deliberately not passed on: the wrapper plays a driver
	// that does not verify it, so what it commits is what it was given.
	w, err := d.b.NewWriter(wctx, key, &blob.WriterOptions{
		BufferSize: opts.BufferSize, MaxConcurrency: opts.MaxConcurrency,
		CacheControl: opts.CacheControl, ContentDisposition: opts.ContentDisposition,
		ContentEncoding: opts.ContentEncoding, ContentLanguage: opts.ContentLanguage,
		ContentType: contentType, Metadata: opts.Metadata, BeforeWrite: opts.BeforeWrite,
		IfNotExist: opts.IfNotExist, DisableContentTypeDetection: opts.DisableContentTypeDetection,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return &writer{d: d, key: key, w: w, ctx: wctx, cancel: cancel, fault: fe}, nil
}

// writer is a driver.Writer over an inner blob.Writer.
type writer struct {
	d      *bucket
	key    string
	w      *blob.Writer
	ctx    context.Context
	cancel context.CancelFunc
	fault  *FaultError // armed for this write, not yet fired
	failed error       // a fired write failure: later writes fail too
	torn   []byte      // torn-write: everything written, committed in part on close
}

func (w *writer) Write(p []byte) (int, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	if w.fault != nil {
		switch w.fault.Kind {
		case TornWrite:
			w.torn = append(w.torn, p...)
			return len(p), nil
		case ShortWrite:
			fe := w.fault
			w.fault = nil
			n, err := w.w.Write(p[:len(p)/2])
			if err != nil {
				return n, err
			}
			return n, fe
		default: // enospc, eio, timeout: half of this buffer lands
			fe := w.fault
			w.fault, w.failed = nil, fe
			n, err := w.w.Write(p[:len(p)/2])
			if err != nil {
				return n, err
			}
			return n, fe
		}
	}
	return w.w.Write(p)
}

func (w *writer) Close() error {
	defer w.cancel()
	if w.failed != nil {
		// Like fileblob: close commits what the writer was given unless
		// its context was cancelled. The caller saw the write fail.
		return w.w.Close()
	}
	if fe := w.fault; fe != nil {
		w.fault = nil
		if fe.Kind == TornWrite {
			if _, err := w.w.Write(w.torn[:len(w.torn)/2]); err != nil {
				w.abort()
				return err
			}
			if err := w.w.Close(); err != nil {
				return err
			}
			return &FaultError{Event: fe.Event, Err: syscall.EIO}
		}
		// Nothing was written: the failure comes at the close.
		w.abort()
		return fe
	}
	if w.ctx.Err() != nil {
		// An abandoned write is no commit.
		return w.w.Close()
	}
	if fe := w.d.in.next(Rename, w.key); fe != nil {
		w.abort()
		return fe
	}
	return w.w.Close()
}

// abort discards the inner write.
func (w *writer) abort() {
	w.cancel()
	_ = w.w.Close()
}

// Copy counts as a rename.
func (d *bucket) Copy(ctx context.Context, dstKey, srcKey string, opts *driver.CopyOptions) error {
	if fe := d.in.next(Rename, dstKey); fe != nil {
		return fe
	}
	return d.b.Copy(ctx, dstKey, srcKey, &blob.CopyOptions{BeforeCopy: opts.BeforeCopy})
}

func (d *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if fe := d.in.next(Delete, key); fe != nil {
		return fe
	}
	return d.b.Delete(ctx, key)
}
