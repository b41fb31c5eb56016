package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gcs "cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
)

// Transfers between local files and storage URLs. Both directions stream
// with bounded memory: an upload goes out in parts of UploadPartSize,
// UploadConcurrency at a time (S3 multipart upload, GCS resumable chunks);
// a download reads ranges of DownloadChunk, DownloadConcurrency at a time,
// each straight into its place in the local file. A download pins the
// object's version (S3 If-Match on the ETag, GCS generation), so an object
// replaced half-way fails the download instead of mixing two versions.
// Local files appear only complete (written under a temporary name, synced,
// renamed), and uploads are atomic per object (see Writer). Memory in
// flight is about UploadPartSize×UploadConcurrency per upload and a 1 MiB
// buffer per download worker. Tests lower the sizes to exercise several
// parts with small files (S3's smallest part is 5 MiB).
var (
	UploadPartSize            = 16 << 20
	UploadConcurrency         = 4
	DownloadChunk       int64 = 16 << 20
	DownloadConcurrency       = 4
)

// progressEvery is how often a long transfer logs its progress.
const progressEvery = 10 * time.Second

// Upload copies the local file at localPath to the object at rawURL.
func Upload(ctx context.Context, localPath, rawURL string) error {
	return upload(ctx, localPath, rawURL, nil)
}

func upload(ctx context.Context, localPath, rawURL string, done *atomic.Int64) error {
	f, err := os.Open(localPath)
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", localPath, rawURL, err)
	}
	defer f.Close()
	w, err := create(ctx, rawURL, writeOpts{partSize: UploadPartSize, concurrency: UploadConcurrency})
	if err != nil {
		return err
	}
	defer w.Abort()
	buf := make([]byte, 1<<20)
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if done != nil {
				done.Add(int64(n))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("upload %s to %s: %w", localPath, rawURL, rerr)
		}
	}
	return w.Commit()
}

// Download copies the object at rawURL to the local file localPath
// (replacing it), with ranged reads in parallel. A missing object gives an
// error matching ErrNotExist.
func Download(ctx context.Context, rawURL, localPath string) error {
	_, err := download(ctx, rawURL, localPath, nil)
	return err
}

func download(ctx context.Context, rawURL, localPath string, done *atomic.Int64) (int64, error) {
	b, loc, err := open(ctx, rawURL)
	if err != nil {
		return 0, err
	}
	attrs, err := b.Attributes(ctx, loc.key)
	if err != nil {
		if notFound(err) {
			return 0, fmt.Errorf("download %s: %w", rawURL, ErrNotExist)
		}
		return 0, opError("download", rawURL, err)
	}
	pin := pinVersion(loc.scheme, attrs)
	if err := os.MkdirAll(filepath.Dir(localPath), 0o755); err != nil {
		return 0, fmt.Errorf("download %s: %w", rawURL, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(localPath), "."+filepath.Base(localPath)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", rawURL, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	size := attrs.Size
	if err := tmp.Truncate(size); err != nil {
		return 0, fmt.Errorf("download %s to %s: %w", rawURL, localPath, err)
	}
	chunks := int((size + DownloadChunk - 1) / DownloadChunk)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  atomic.Int64
	)
	workers := min(DownloadConcurrency, chunks) // none for an empty object
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for {
				i := next.Add(1) - 1
				if i >= int64(chunks) || dctx.Err() != nil {
					return
				}
				off := i * DownloadChunk
				n := min(DownloadChunk, size-off)
				if err := readRange(dctx, b, loc.key, off, n, pin, tmp, buf, done); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		if notFound(first) {
			return 0, fmt.Errorf("download %s: %w", rawURL, ErrNotExist)
		}
		return 0, opError("download", rawURL, first)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("download %s to %s: %w", rawURL, localPath, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("download %s to %s: %w", rawURL, localPath, err)
	}
	if err := os.Rename(tmp.Name(), localPath); err != nil {
		return 0, fmt.Errorf("download %s to %s: %w", rawURL, localPath, err)
	}
	ok = true
	return size, nil
}

// readRange copies bytes [off, off+n) of key into f at off.
func readRange(ctx context.Context, b *blob.Bucket, key string, off, n int64, pin func(func(any) bool) error, f *os.File, buf []byte, done *atomic.Int64) error {
	r, err := b.NewRangeReader(ctx, key, off, n, &blob.ReaderOptions{BeforeRead: pin})
	if err != nil {
		if errors.Is(classifyPrecondition(err), errChanged) {
			return errChanged
		}
		return err
	}
	defer r.Close()
	w := io.NewOffsetWriter(f, off)
	var got int64
	for got < n {
		m, rerr := r.Read(buf[:min(int64(len(buf)), n-got)])
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return err
			}
			got += int64(m)
			if done != nil {
				done.Add(int64(m))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if got != n {
		return fmt.Errorf("range at %d: got %d bytes, want %d (the object was cut short)", off, got, n)
	}
	return nil
}

// errChanged: the object was replaced while being downloaded.
var errChanged = errors.New("the object was replaced during the download")

func classifyPrecondition(err error) error {
	if err != nil && (strings.Contains(err.Error(), "PreconditionFailed") || strings.Contains(err.Error(), "conditionNotMet")) {
		return errChanged
	}
	return err
}

// pinVersion returns a BeforeRead that makes every ranged read of the
// download read the version attrs describe, or nil where the driver has no
// such precondition (file://, mem://: their writes replace files whole, so
// an open reader keeps the old content anyway).
func pinVersion(scheme string, attrs *blob.Attributes) func(func(any) bool) error {
	switch scheme {
	case "s3":
		if attrs.ETag == "" {
			return nil
		}
		etag := attrs.ETag
		return func(as func(any) bool) error {
			var in *s3.GetObjectInput
			if as(&in) {
				in.IfMatch = aws.String(etag)
			}
			return nil
		}
	case "gs":
		var oa gcs.ObjectAttrs
		if !attrs.As(&oa) || oa.Generation == 0 {
			return nil
		}
		gen := oa.Generation
		return func(as func(any) bool) error {
			var oh **gcs.ObjectHandle
			if as(&oh) {
				*oh = (*oh).Generation(gen)
			}
			return nil
		}
	}
	return nil
}

// UploadDir copies every file under localDir to the same relative keys
// under dirURL, several at a time, and then the files named in last (paths
// relative to localDir, slash-separated), one after another in that order:
// the commit markers a reader checks, so that a reader who sees them sees
// everything else. Names in last that localDir lacks are skipped.
func UploadDir(ctx context.Context, localDir, dirURL string, last ...string) error {
	var files []string
	var total int64
	isLast, present := map[string]bool{}, map[string]bool{}
	for _, l := range last {
		isLast[l] = true
	}
	err := filepath.WalkDir(localDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(localDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.Contains(filepath.Base(rel), ".tmp-") {
			return nil // a writer's temporary file
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		if isLast[rel] {
			present[rel] = true
		} else {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", localDir, dirURL, err)
	}
	sort.Strings(files)
	prog := newProgress(ctx, "upload", localDir, dirURL, total)
	defer prog.stop()
	if err := parallel(ctx, files, UploadConcurrency, func(ctx context.Context, rel string) error {
		return upload(ctx, filepath.Join(localDir, filepath.FromSlash(rel)), Join(dirURL, rel), &prog.done)
	}); err != nil {
		return err
	}
	for _, rel := range last {
		if !present[rel] {
			continue
		}
		if err := upload(ctx, filepath.Join(localDir, filepath.FromSlash(rel)), Join(dirURL, rel), &prog.done); err != nil {
			return err
		}
	}
	return nil
}

// DownloadDir copies every object under dirURL into localDir at the same
// relative paths and returns how many it copied (0 when there are none).
func DownloadDir(ctx context.Context, dirURL, localDir string) (int, error) {
	entries, err := List(ctx, DirPrefix(dirURL), "")
	if err != nil {
		return 0, err
	}
	base, err := parse(DirPrefix(dirURL))
	if err != nil {
		return 0, err
	}
	var rels []string
	var total int64
	for _, e := range entries {
		rel := strings.TrimPrefix(e.Key, base.key)
		if rel == "" || e.IsDir || strings.HasSuffix(rel, "/") {
			continue
		}
		if !filepath.IsLocal(filepath.FromSlash(rel)) {
			return 0, fmt.Errorf("download %s: object %q would land outside %s", dirURL, e.Key, localDir)
		}
		rels = append(rels, rel)
		total += e.Size
	}
	prog := newProgress(ctx, "download", dirURL, localDir, total)
	defer prog.stop()
	err = parallel(ctx, rels, 2, func(ctx context.Context, rel string) error {
		_, err := download(ctx, Join(dirURL, rel), filepath.Join(localDir, filepath.FromSlash(rel)), &prog.done)
		return err
	})
	return len(rels), err
}

// DeleteAll removes every object under dirURL (a directory: the keys that
// start with dirURL + "/").
func DeleteAll(ctx context.Context, dirURL string) error {
	entries, err := List(ctx, DirPrefix(dirURL), "")
	if err != nil {
		return err
	}
	urls := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir {
			urls = append(urls, e.URL)
		}
	}
	return parallel(ctx, urls, 8, Delete)
}

// parallel runs fn on every item, at most n at a time, and returns the
// first error (cancelling the rest).
func parallel(ctx context.Context, items []string, n int, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, n)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(it string) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}(it)
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// progress logs a long transfer's bytes, rate and ETA every progressEvery.
type progress struct {
	done  atomic.Int64
	quit  chan struct{}
	ended sync.WaitGroup
}

func newProgress(ctx context.Context, verb, from, to string, total int64) *progress {
	p := &progress{quit: make(chan struct{})}
	p.ended.Add(1)
	go func() {
		defer p.ended.Done()
		start := time.Now()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			d := p.done.Load()
			el := time.Since(start).Seconds()
			rate := float64(d) / el
			eta := "?"
			if rate > 0 {
				eta = (time.Duration(float64(total-d)/rate) * time.Second).Round(time.Second).String()
			}
			logf(ctx, "info", fmt.Sprintf("%s %s → %s: %.1f of %.1f MB, %.1f MB/s, ETA %s", verb, from, to, float64(d)/1e6, float64(total)/1e6, rate/1e6, eta))
		}
	}()
	return p
}

func (p *progress) stop() {
	close(p.quit)
	p.ended.Wait()
}
