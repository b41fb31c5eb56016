// Package storage reads and writes marin's outputs through storage URLs, so
// the host and the plugins share one notion of where a file lives:
//
//	file:///abs/dir/file   local files (plain paths normalise to this form)
//	mem://name/key         in-process memory buckets, for tests
//	gs://bucket/key, s3://bucket/key, …
//	                       any other scheme whose gocloud.dev/blob driver is
//	                       linked into the binary (a blank import of
//	                       gocloud.dev/blob/gcsblob, s3blob, …)
//
// Every function takes a full URL; the package opens the bucket behind it
// once per bucket root and caches it, so mem:// buckets are shared by
// everything in one process. Writes are atomic per object (Writer,
// WriteAtomic, WriteAtomicFunc: the one way marin writes a file): a reader
// sees the old content or the new, never a torn file, and a write that fails
// (a full disk, an I/O error) leaves the old content on every driver.
// CreateIfNotExist is atomic across processes too, which is what the
// executor's leases are built on. Interpose puts a wrapper (the fault
// injector of plugins/storage/faultblob, in tests) under every operation.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

// ErrNotExist is matched (errors.Is) by the error of a read, stat or
// conditional operation on an object that does not exist. It is
// fs.ErrNotExist so callers may test for either.
var ErrNotExist = fs.ErrNotExist

// Entry is one result of List.
type Entry struct {
	// URL is the object's full URL; for a directory it ends in the delimiter.
	URL string
	// Key is the object's key inside its bucket.
	Key string
	// IsDir marks a common prefix collapsed by the delimiter.
	IsDir   bool
	Size    int64
	ModTime time.Time
}

// Attrs describes a stored object.
type Attrs struct {
	Size    int64
	ModTime time.Time
}

// location is a parsed URL: the bucket root that a cache entry is keyed by
// and the key inside that bucket.
type location struct {
	scheme string
	root   string // "file://", "mem://name", "gs://bucket?query"
	key    string
	query  string // raw query of non-file URLs, kept on rebuilt URLs
}

// url rebuilds the URL of key inside the same bucket.
func (l location) url(key string) string {
	switch l.scheme {
	case "file":
		return "file:///" + key
	default:
		base := l.scheme + "://" + hostOf(l.root)
		u := base + "/" + key
		if l.query != "" {
			u += "?" + l.query
		}
		return u
	}
}

func hostOf(root string) string {
	s := root[strings.Index(root, "://")+3:]
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return s
}

// NormalizeURL turns a user-supplied prefix or path into the canonical URL
// the rest of marin uses: plain paths ("./marin-output", "/data/x") and
// file:// URLs (including relative "file://./x" and "file://localhost/x")
// become absolute, cleaned file:///… URLs; other URLs lose any trailing
// slash. File URLs are taken literally (no percent-decoding), so any local
// path round-trips.
func NormalizeURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("normalize storage URL: empty")
	}
	if !strings.Contains(s, "://") {
		return fileURL(s)
	}
	scheme := s[:strings.Index(s, "://")]
	if scheme == "file" {
		p, err := filePathOf(s)
		if err != nil {
			return "", err
		}
		return fileURL(p)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("normalize storage URL %q: %w", s, err)
	}
	if u.Host == "" && scheme != "mem" {
		return "", fmt.Errorf("normalize storage URL %q: no bucket name", s)
	}
	if u.Path != "" {
		u.Path = path.Clean(u.Path)
		if u.Path == "/" || u.Path == "." {
			u.Path = ""
		}
	}
	if u.Host == "" {
		// url.URL drops the "//" of an empty authority ("mem:" for "mem://").
		out := scheme + "://" + u.EscapedPath()
		if u.RawQuery != "" {
			out += "?" + u.RawQuery
		}
		return out, nil
	}
	return u.String(), nil
}

// fileURL makes an absolute, cleaned file URL from a local path.
func fileURL(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("normalize storage path %q: %w", p, err)
	}
	return "file://" + filepath.ToSlash(abs), nil
}

// filePathOf returns the local path of a file:// URL (possibly relative).
func filePathOf(s string) (string, error) {
	rest := strings.TrimPrefix(s, "file://")
	host, p := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, p = rest[:i], rest[i:]
	}
	switch host {
	case "", "localhost":
		if p == "" {
			p = "/"
		}
		return filepath.FromSlash(p), nil
	case ".", "..":
		return filepath.FromSlash(host + p), nil
	default:
		return "", fmt.Errorf("storage URL %q: file URLs name no host (use file:///abs/path or file://./rel/path)", s)
	}
}

// Join appends slash-separated elements to a URL's path; a query stays
// at the end ("s3://b/p?region=x" + "a" is "s3://b/p/a?region=x").
func Join(base string, elems ...string) string {
	query := ""
	if i := strings.Index(base, "://"); i > 0 && base[:i] != "file" {
		if q := strings.IndexByte(base, '?'); q >= 0 {
			base, query = base[:q], base[q:]
		}
	}
	out := strings.TrimRight(base, "/")
	for _, e := range elems {
		e = strings.Trim(e, "/")
		if e != "" {
			out += "/" + e
		}
	}
	return out + query
}

// DirPrefix is the List prefix of everything inside the directory URL u:
// u with one trailing slash (before its query, if any).
func DirPrefix(u string) string {
	query := ""
	if i := strings.Index(u, "://"); i > 0 && u[:i] != "file" {
		if q := strings.IndexByte(u, '?'); q >= 0 {
			u, query = u[:q], u[q:]
		}
	}
	return strings.TrimRight(u, "/") + "/" + query
}

func parse(raw string) (location, error) {
	i := strings.Index(raw, "://")
	if i <= 0 {
		// A bare path is a local file, as NormalizeURL would make it.
		n, err := NormalizeURL(raw)
		if err != nil {
			return location{}, err
		}
		raw, i = n, len("file")
	}
	scheme := raw[:i]
	if scheme == "file" {
		p, err := filePathOf(raw)
		if err != nil {
			return location{}, err
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return location{}, fmt.Errorf("storage URL %q: %w", raw, err)
		}
		// filepath.Abs cleans, but Clean drops a trailing slash that a list
		// prefix may need ("dir/" lists inside dir only).
		key := strings.TrimPrefix(filepath.ToSlash(abs), "/")
		if strings.HasSuffix(raw, "/") && key != "" {
			key += "/"
		}
		return location{scheme: "file", root: "file://", key: key}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return location{}, fmt.Errorf("parse storage URL %q: %w", raw, err)
	}
	root := scheme + "://" + u.Host
	// The bucket opens with the URL's own query, else with the options
	// registered for it (UseOptions); rebuilt URLs keep only their own.
	q := u.RawQuery
	if q == "" && u.Host != "" {
		q = bucketOptions(root)
	}
	if q != "" {
		root += "?" + q
	}
	return location{scheme: scheme, root: root, key: strings.TrimPrefix(u.Path, "/"), query: u.RawQuery}, nil
}

var (
	bucketsMu sync.Mutex
	buckets   = map[string]*blob.Bucket{}
	memSeq    atomic.Int64
	// interposer, when set, wraps every bucket (wrapped caches the
	// results by root); see Interpose.
	interposer func(scheme string, b *blob.Bucket) *blob.Bucket
	wrapped    = map[string]*blob.Bucket{}
)

// Interpose makes every storage operation of this process, from now until
// restore is called, go through wrap(scheme, bucket) instead of the bucket
// itself. It exists for tests that inject faults under everything built on
// storage (see plugins/storage/faultblob); production code never calls it.
// Only one interposer is active at a time; a second call replaces the first.
func Interpose(wrap func(scheme string, b *blob.Bucket) *blob.Bucket) (restore func()) {
	bucketsMu.Lock()
	defer bucketsMu.Unlock()
	interposer, wrapped = wrap, map[string]*blob.Bucket{}
	return func() {
		bucketsMu.Lock()
		defer bucketsMu.Unlock()
		interposer, wrapped = nil, map[string]*blob.Bucket{}
	}
}

// bucketFor returns the cached bucket behind loc, opening it on first use,
// as the installed interposer (see Interpose) sees it.
func bucketFor(ctx context.Context, loc location) (*blob.Bucket, error) {
	bucketsMu.Lock()
	defer bucketsMu.Unlock()
	b, err := rawBucketLocked(ctx, loc)
	if err != nil || interposer == nil {
		return b, err
	}
	if w, ok := wrapped[loc.root]; ok {
		return w, nil
	}
	w := interposer(loc.scheme, b)
	wrapped[loc.root] = w
	return w, nil
}

// rawBucketLocked returns the driver's own bucket; bucketsMu is held.
func rawBucketLocked(ctx context.Context, loc location) (*blob.Bucket, error) {
	if b, ok := buckets[loc.root]; ok {
		return b, nil
	}
	var (
		b   *blob.Bucket
		err error
	)
	switch loc.scheme {
	case "file":
		// One bucket rooted at "/" serves every file URL. Temp files go
		// next to their target (no_tmp_dir) so the final rename never
		// crosses filesystems; no sidecar metadata files (metadata=skip).
		b, err = fileblob.OpenBucket(string(filepath.Separator), &fileblob.Options{
			Metadata:  fileblob.MetadataDontWrite,
			NoTempDir: true,
			CreateDir: true,
		})
	case "mem":
		b = memblob.OpenBucket(nil)
	default:
		var ok bool
		if b, ok, err = openObjectStore(ctx, loc.root); !ok {
			b, err = blob.OpenBucket(ctx, loc.root)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s://%s: %w", loc.scheme, hostOf(loc.root), err)
	}
	buckets[loc.root] = b
	return b, nil
}

// Open returns the bucket holding rawURL and the key of rawURL inside it,
// for callers that need the full gocloud.dev/blob API (streaming readers and
// writers). The bucket is shared and must not be closed by the caller.
func Open(ctx context.Context, rawURL string) (*blob.Bucket, string, error) {
	loc, err := parse(rawURL)
	if err != nil {
		return nil, "", err
	}
	b, err := bucketFor(ctx, loc)
	if err != nil {
		return nil, "", err
	}
	return b, loc.key, nil
}

// NewMemURL returns the root URL of a fresh, empty mem:// bucket; tests use
// it to get isolated storage within one process.
func NewMemURL(name string) string {
	if name == "" {
		name = "test"
	}
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, name)
	root := fmt.Sprintf("mem://%s-%d", strings.ToLower(name), memSeq.Add(1))
	bucketsMu.Lock()
	defer bucketsMu.Unlock()
	buckets[root] = memblob.OpenBucket(nil)
	return root
}

// DropMem forgets the mem:// bucket behind rawURL, freeing its contents.
func DropMem(rawURL string) {
	loc, err := parse(rawURL)
	if err != nil || loc.scheme != "mem" {
		return
	}
	bucketsMu.Lock()
	defer bucketsMu.Unlock()
	if b, ok := buckets[loc.root]; ok {
		_ = b.Close()
		delete(buckets, loc.root)
		delete(wrapped, loc.root)
	}
}

// notFound reports whether err says an object does not exist (and not
// that its bucket does not, or that it may not be seen: gocloud reports
// those as not found too).
func notFound(err error) bool {
	return (gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, fs.ErrNotExist)) && classify(err) == nil
}

func open(ctx context.Context, rawURL string) (*blob.Bucket, location, error) {
	loc, err := parse(rawURL)
	if err != nil {
		return nil, location{}, err
	}
	b, err := bucketFor(ctx, loc)
	if err != nil {
		return nil, location{}, fmt.Errorf("%s: %w", rawURL, err)
	}
	if loc.key == "" || strings.HasSuffix(loc.key, "/") {
		return nil, location{}, fmt.Errorf("storage URL %s names no object", rawURL)
	}
	return b, loc, nil
}

// ReadAll returns the content of the object at rawURL. A missing object gives
// an error matching ErrNotExist.
func ReadAll(ctx context.Context, rawURL string) ([]byte, error) {
	b, loc, err := open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	data, err := b.ReadAll(ctx, loc.key)
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("read %s: %w", rawURL, ErrNotExist)
		}
		return nil, opError("read", rawURL, err)
	}
	return data, nil
}

func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".json"):
		return "application/json"
	default:
		// Set explicitly so drivers never sniff (and so never buffer) content.
		return "application/octet-stream"
	}
}

// tempFile matches the in-flight temp files of fileblob ("key.<hex>.tmp")
// and linkCreate, which List hides: they are not objects yet.
var tempFile = regexp.MustCompile(`\.[0-9a-f]+\.tmp$`)

// IsTempName reports whether a file name is that of an in-flight write
// (see Writer): what a crashed writer leaves behind on file://, safe to
// remove once no writer runs.
func IsTempName(name string) bool { return tempFile.MatchString(name) }

// ReadAllLimit is ReadAll of an object that must not be larger than limit
// bytes: a larger one is an error before anything is allocated for it (for
// files whose size a damaged or hostile writer controls, such as a model's
// config.json).
func ReadAllLimit(ctx context.Context, rawURL string, limit int64) ([]byte, error) {
	b, loc, err := open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	r, err := b.NewReader(ctx, loc.key, nil)
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("read %s: %w", rawURL, ErrNotExist)
		}
		return nil, fmt.Errorf("read %s: %w", rawURL, err)
	}
	defer r.Close()
	if r.Size() > limit {
		return nil, fmt.Errorf("read %s: %d bytes, more than the %d a file of its kind can be", rawURL, r.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rawURL, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: more than the %d bytes a file of its kind can be", rawURL, limit)
	}
	return data, nil
}

// Exists reports whether an object exists at rawURL.
func Exists(ctx context.Context, rawURL string) (bool, error) {
	b, loc, err := open(ctx, rawURL)
	if err != nil {
		return false, err
	}
	ok, err := b.Exists(ctx, loc.key)
	if err != nil {
		return false, opError("check", rawURL, err)
	}
	return ok, nil
}

// Stat returns the size and modification time of the object at rawURL. A
// missing object gives an error matching ErrNotExist.
func Stat(ctx context.Context, rawURL string) (Attrs, error) {
	b, loc, err := open(ctx, rawURL)
	if err != nil {
		return Attrs{}, err
	}
	a, err := b.Attributes(ctx, loc.key)
	if err != nil {
		if notFound(err) {
			return Attrs{}, fmt.Errorf("stat %s: %w", rawURL, ErrNotExist)
		}
		return Attrs{}, opError("stat", rawURL, err)
	}
	return Attrs{Size: a.Size, ModTime: a.ModTime}, nil
}

// Delete removes the object at rawURL. Deleting a missing object is not an
// error, so cleanup can be retried.
func Delete(ctx context.Context, rawURL string) error {
	b, loc, err := open(ctx, rawURL)
	if err != nil {
		return err
	}
	if err := b.Delete(ctx, loc.key); err != nil && !notFound(err) {
		return opError("delete", rawURL, err)
	}
	return nil
}

// List returns the objects whose URLs start with prefixURL, in key order.
// With a delimiter (usually "/"), keys that continue past the next delimiter
// after the prefix collapse into one directory entry. A prefix ending in "/"
// lists inside a directory; one without lists siblings sharing a name stem
// ("…/tokenized/tulu-" finds "tulu-1a2b3c/").
func List(ctx context.Context, prefixURL, delimiter string) ([]Entry, error) {
	loc, err := parse(prefixURL)
	if err != nil {
		return nil, err
	}
	b, err := bucketFor(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefixURL, err)
	}
	it := b.List(&blob.ListOptions{Prefix: loc.key, Delimiter: delimiter})
	var out []Entry
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, opError("list", prefixURL, err)
		}
		if loc.scheme == "file" && !obj.IsDir && tempFile.MatchString(obj.Key) {
			continue
		}
		out = append(out, Entry{
			URL:     loc.url(obj.Key),
			Key:     obj.Key,
			IsDir:   obj.IsDir,
			Size:    obj.Size,
			ModTime: obj.ModTime,
		})
	}
	return out, nil
}
