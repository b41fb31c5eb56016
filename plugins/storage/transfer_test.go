package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// transferRoundTrip uploads a directory, lists it, downloads it and checks
// every byte, with one file larger than a part and a download chunk.
func transferRoundTrip(t *testing.T, root string, big int) {
	ctx := context.Background()
	src := t.TempDir()
	files := map[string][]byte{
		"a.txt":            []byte("alpha"),
		"sub/b.bin":        randomBytes(big, 1),
		"sub/deep/c.json":  []byte(`{"c": 1}`),
		"empty":            nil,
		"marker/done.json": []byte("{}"),
	}
	for rel, data := range files {
		p := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := Join(root, "out/dir")
	if err := UploadDir(ctx, src, dir, "marker/done.json"); err != nil {
		t.Fatal(err)
	}
	// A marker the directory lacks (an adapter export has no config.json)
	// is skipped.
	if err := UploadDir(ctx, src, Join(root, "other"), "no-such-marker", "marker/done.json"); err != nil {
		t.Fatalf("UploadDir with a marker the directory lacks: %v", err)
	}
	if ok, err := Exists(ctx, Join(root, "other/no-such-marker")); err != nil || ok {
		t.Fatalf("a missing marker was uploaded (exists %v, %v)", ok, err)
	}
	dst := t.TempDir()
	n, err := DownloadDir(ctx, dir, dst)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Fatalf("downloaded %d files, want %d", n, len(files))
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes (sha %.8s), want %d (sha %.8s)", rel, len(got), sha(got), len(want), sha(want))
		}
	}
	// The content-addressed cache: the same bytes under another URL share
	// the copy; wrong expectations are refused.
	t.Setenv(CacheDirEnv, t.TempDir())
	b := files["sub/b.bin"]
	p1, err := FetchBlob(ctx, Join(dir, "sub/b.bin"), int64(len(b)), sha(b))
	if err != nil {
		t.Fatal(err)
	}
	if IsLocal(root) {
		if want, _ := LocalPath(Join(dir, "sub/b.bin")); p1 != want {
			t.Fatalf("FetchBlob of a local file = %s, want the file itself", p1)
		}
	} else {
		if err := Upload(ctx, filepath.Join(src, "sub/b.bin"), Join(root, "elsewhere/b")); err != nil {
			t.Fatal(err)
		}
		p2, err := FetchBlob(ctx, Join(root, "elsewhere/b"), int64(len(b)), sha(b))
		if err != nil || p2 != p1 {
			t.Fatalf("FetchBlob of the same bytes elsewhere = %s, %v; want the shared copy %s", p2, err, p1)
		}
		if _, err := FetchBlob(ctx, Join(dir, "a.txt"), 5, sha([]byte("other"))); err == nil || !strings.Contains(err.Error(), "damaged or replaced") {
			t.Fatalf("FetchBlob with the wrong sha256: %v", err)
		}
		// LocalDir: a filtered copy, reused while the listing is the same.
		d1, err := LocalDir(ctx, dir, func(rel string) bool { return !strings.HasSuffix(rel, ".bin") })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(d1, "sub/b.bin")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("LocalDir copied a file its filter left out: %v", err)
		}
		if got, _ := os.ReadFile(filepath.Join(d1, "sub/deep/c.json")); string(got) != `{"c": 1}` {
			t.Fatalf("LocalDir copy: c.json = %q", got)
		}
		d2, err := LocalDir(ctx, dir, func(rel string) bool { return !strings.HasSuffix(rel, ".bin") })
		if err != nil || d2 != d1 {
			t.Fatalf("second LocalDir = %s, %v; want the same copy %s", d2, err, d1)
		}
		if err := WriteAtomic(ctx, Join(dir, "a.txt"), []byte("changed")); err != nil {
			t.Fatal(err)
		}
		d3, err := LocalDir(ctx, dir, nil)
		if err != nil || d3 == d1 {
			t.Fatalf("LocalDir after a change = %s, %v; want a new copy", d3, err)
		}
		if got, _ := os.ReadFile(filepath.Join(d3, "a.txt")); string(got) != "changed" {
			t.Fatalf("LocalDir copy after a change: a.txt = %q", got)
		}
	}
	if err := DeleteAll(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if left, err := List(ctx, DirPrefix(dir), ""); err != nil || len(left) != 0 {
		t.Fatalf("after DeleteAll: %v, %v", left, err)
	}
	if err := Download(ctx, Join(dir, "a.txt"), filepath.Join(dst, "x")); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Download of a deleted object: %v", err)
	}
}

func TestTransfer(t *testing.T) {
	for scheme, root := range roots(t) {
		t.Run(scheme, func(t *testing.T) {
			defer smallParts()()
			transferRoundTrip(t, root, int(3*DownloadChunk/2+7))
		})
	}
}

func TestStage(t *testing.T) {
	ctx := context.Background()
	t.Setenv(ScratchDirEnv, t.TempDir())
	mem := NewMemURL("stage")
	defer DropMem(mem)
	out := Join(mem, "step-abc")
	s, err := NewStage(out)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Remote() || !strings.HasPrefix(s.Dir, os.Getenv(ScratchDirEnv)) {
		t.Fatalf("stage of %s: remote %v, dir %s", out, s.Remote(), s.Dir)
	}
	if err := os.MkdirAll(s.Path("ck/step-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ck/step-1/w.bin", "ck/step-1/meta.json", "log.txt"} {
		if err := os.WriteFile(s.Path(f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Publish(ctx, "ck/step-1", "meta.json"); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "log.txt"); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadAll(ctx, Join(out, "ck/step-1/meta.json")); string(got) != "ck/step-1/meta.json" {
		t.Fatalf("published meta.json = %q", got)
	}
	// A new stage of the same URL starts empty and fetches what is there.
	s2, err := NewStage(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s2.Path("log.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a new stage kept the old scratch files")
	}
	for _, rel := range []string{"log.txt", "ck/step-1"} {
		if ok, err := s2.Fetch(ctx, rel); err != nil || !ok {
			t.Fatalf("Fetch(%s) = %v, %v", rel, ok, err)
		}
	}
	if got, _ := os.ReadFile(s2.Path("ck/step-1/w.bin")); string(got) != "ck/step-1/w.bin" {
		t.Fatalf("fetched w.bin = %q", got)
	}
	if ok, err := s2.Fetch(ctx, "nothing"); err != nil || ok {
		t.Fatalf("Fetch(nothing) = %v, %v", ok, err)
	}
	if err := s2.Remove(ctx, "ck/step-1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Exists(ctx, Join(out, "ck/step-1/w.bin")); ok {
		t.Fatal("Remove left the remote files")
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s2.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Close left the scratch directory")
	}
	// A local output is its own directory.
	local := t.TempDir()
	s3, err := NewStage(local)
	if err != nil || s3.Remote() || s3.Dir != local {
		t.Fatalf("stage of a local dir: %+v, %v", s3, err)
	}
}

func TestJoinAndOptions(t *testing.T) {
	if got := Join("s3://b/p?region=x&endpoint=http://h:1", "a/", "b"); got != "s3://b/p/a/b?region=x&endpoint=http://h:1" {
		t.Fatalf("Join with a query = %q", got)
	}
	if got := DirPrefix("s3://b/p/?region=x"); got != "s3://b/p/?region=x" {
		t.Fatalf("DirPrefix = %q", got)
	}
	if got := DirPrefix("gs://b/p"); got != "gs://b/p/" {
		t.Fatalf("DirPrefix = %q", got)
	}
	t.Setenv(OptionsEnv, "")
	optionsMu.Lock()
	optionsInit = false
	optionsMu.Unlock()
	clean, err := UseOptions("s3://opt-bucket/runs?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9")
	if err != nil || clean != "s3://opt-bucket/runs" {
		t.Fatalf("UseOptions = %q, %v", clean, err)
	}
	loc, err := parse("s3://opt-bucket/runs/x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc.root, "region=eu-west-1") || loc.query != "" || loc.url("k") != "s3://opt-bucket/k" {
		t.Fatalf("a URL of a bucket with options: root %q, query %q, url %q", loc.root, loc.query, loc.url("k"))
	}
	if env := os.Getenv(OptionsEnv); !strings.Contains(env, "s3://opt-bucket?") {
		t.Fatalf("%s = %q: child processes would not get the options", OptionsEnv, env)
	}
	// A child process reads them back.
	optionsMu.Lock()
	optionsInit, options = false, nil
	optionsMu.Unlock()
	if q := bucketOptions("s3://opt-bucket"); !strings.Contains(q, "endpoint=") {
		t.Fatalf("options read back from the environment: %q", q)
	}
	if _, err := UseOptions("file:///x?y=1"); err == nil {
		t.Fatal("UseOptions accepted a query on a file URL")
	}
	if u, err := UseOptions("gs://b/p"); err != nil || u != "gs://b/p" {
		t.Fatalf("UseOptions without a query = %q, %v", u, err)
	}
}
