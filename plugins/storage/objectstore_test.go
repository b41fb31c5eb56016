package storage

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/marin-go/marin/plugins/storage/storetest"
)

// The tests in this file run against the real S3 server and GCS emulator
// that scripts/test starts (storetest); without them they skip.

func TestObjectStoreBasics(t *testing.T) {
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		ctx := context.Background()
		u := Join(s.URL, "run/step-abc/.executor_info")
		if _, err := ReadAll(ctx, u); !errors.Is(err, ErrNotExist) {
			t.Fatalf("ReadAll(missing) err = %v, want ErrNotExist", err)
		}
		if err := WriteAtomic(ctx, u, []byte("info")); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadAll(ctx, u); err != nil || string(got) != "info" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
		if a, err := Stat(ctx, u); err != nil || a.Size != 4 {
			t.Fatalf("Stat = %+v, %v", a, err)
		}
		ents, err := List(ctx, Join(s.URL, "run/step-"), "/")
		if err != nil || len(ents) != 1 || !ents[0].IsDir || ents[0].URL != Join(s.URL, "run/step-abc")+"/" {
			t.Fatalf("List = %+v, %v", ents, err)
		}
		if err := Delete(ctx, u); err != nil {
			t.Fatal(err)
		}
		if ok, err := Exists(ctx, u); err != nil || ok {
			t.Fatalf("Exists after Delete = %v, %v", ok, err)
		}
	})
}

// TestObjectStoreConditionalCreate checks the server honours the
// conditional create leases are built on (S3 If-None-Match: *, GCS
// ifGenerationMatch=0): many goroutines race for each of many keys, one
// wins each, and the object holds the winner's bytes.
func TestObjectStoreConditionalCreate(t *testing.T) {
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		ctx := context.Background()
		const keys, racers = 20, 6
		var wg sync.WaitGroup
		winners := make([][]int, keys)
		var mu sync.Mutex
		errs := make(chan error, keys*racers)
		for k := 0; k < keys; k++ {
			for r := 0; r < racers; r++ {
				wg.Add(1)
				go func(k, r int) {
					defer wg.Done()
					ok, err := CreateIfNotExist(ctx, Join(s.URL, "locks", strconv.Itoa(k)), []byte("racer "+strconv.Itoa(r)))
					if err != nil {
						errs <- err
						return
					}
					if ok {
						mu.Lock()
						winners[k] = append(winners[k], r)
						mu.Unlock()
					}
				}(k, r)
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for k, w := range winners {
			if len(w) != 1 {
				t.Fatalf("key %d: winners %v, want exactly one", k, w)
			}
			got, err := ReadAll(ctx, Join(s.URL, "locks", strconv.Itoa(k)))
			if err != nil || string(got) != "racer "+strconv.Itoa(w[0]) {
				t.Fatalf("key %d holds %q (%v), winner was racer %d", k, got, err, w[0])
			}
		}
	})
}

// TestObjectStoreConditionalCreateProcesses races separate processes (the
// TestMain helper) on one bucket.
func TestObjectStoreConditionalCreateProcesses(t *testing.T) {
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		const locks, procs = 30, 3
		var cmds []*exec.Cmd
		var outs []*strings.Builder
		for p := 0; p < procs; p++ {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(append(os.Environ(), s.Env...), "MARIN_STORAGE_RACE_DIR="+Join(s.URL, "procs"), "MARIN_STORAGE_RACE_N="+strconv.Itoa(locks))
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, os.Stderr
			cmds, outs = append(cmds, cmd), append(outs, &out)
		}
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		owner := map[string]int{}
		for p, out := range outs {
			for _, k := range strings.Split(strings.TrimSpace(out.String()), ",") {
				if k == "" {
					continue
				}
				if q, dup := owner[k]; dup {
					t.Fatalf("lock %s won by processes %d and %d", k, q, p)
				}
				owner[k] = p
			}
		}
		if len(owner) != locks {
			t.Fatalf("%d of %d locks were won", len(owner), locks)
		}
	})
}

// TestObjectStoreReplaceIfVersion checks the conditional overwrite
// heartbeats use (S3 If-Match on the ETag, GCS ifGenerationMatch).
func TestObjectStoreReplaceIfVersion(t *testing.T) {
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		ctx := context.Background()
		u := Join(s.URL, "lock")
		if ok, err := ReplaceIfVersion(ctx, u, []byte("x"), stale(s.Scheme)); err != nil || ok {
			t.Fatalf("ReplaceIfVersion(missing) = %v, %v", ok, err)
		}
		if err := WriteAtomic(ctx, u, []byte("one")); err != nil {
			t.Fatal(err)
		}
		_, v1, err := ReadVersioned(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := ReplaceIfVersion(ctx, u, []byte("two"), v1); err != nil || !ok {
			t.Fatalf("replace on the current version = %v, %v", ok, err)
		}
		if ok, err := ReplaceIfVersion(ctx, u, []byte("three"), v1); err != nil || ok {
			t.Fatalf("replace on a stale version = %v, %v", ok, err)
		}
		if got, _ := ReadAll(ctx, u); string(got) != "two" {
			t.Fatalf("content %q, want two", got)
		}
		casCounter(t, Join(s.URL, "counter"), 3, 6)
	})
}

func stale(scheme string) Version {
	if scheme == "gs" {
		return "12345"
	}
	return `"0123456789abcdef0123456789abcdef"`
}

// TestObjectStoreTransfer streams files larger than a part and a chunk
// both ways, and checks a download never mixes two versions of an object.
func TestObjectStoreTransfer(t *testing.T) {
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		t.Setenv(CacheDirEnv, t.TempDir())
		defer smallParts()()
		transferRoundTrip(t, s.URL, 2*UploadPartSize+int(DownloadChunk)/2+3)

		ctx := context.Background()
		b, loc, err := open(ctx, Join(s.URL, "pinned"))
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteAtomic(ctx, Join(s.URL, "pinned"), []byte("version one")); err != nil {
			t.Fatal(err)
		}
		attrs, err := b.Attributes(ctx, loc.key)
		if err != nil {
			t.Fatal(err)
		}
		pin := pinVersion(s.Scheme, attrs)
		if pin == nil {
			t.Fatal("no version to pin a download to")
		}
		if err := WriteAtomic(ctx, Join(s.URL, "pinned"), []byte("version two")); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(t.TempDir(), "x"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := readRange(ctx, b, loc.key, 0, 11, pin, f, make([]byte, 64), nil); err == nil {
			t.Fatal("a ranged read pinned to a replaced version succeeded")
		}
	})
}

// TestObjectStoreErrors: a missing bucket, refused credentials and a
// denied request are errors that say so and name the URL.
func TestObjectStoreErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("s3", func(t *testing.T) {
		s := storetest.S3(t)
		missing := "s3://" + storetest.Name(t) + "-missing/x/y"
		err := WriteAtomic(ctx, missing, []byte("x"))
		if !errors.Is(err, ErrBucketNotFound) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("write to a missing bucket: %v", err)
		}
		if _, err := ReadAll(ctx, missing); !errors.Is(err, ErrBucketNotFound) || errors.Is(err, ErrNotExist) {
			t.Fatalf("read from a missing bucket: %v (must not read as a missing object)", err)
		}
		// Refused credentials: a wrong secret for a fresh bucket root.
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
		wrong := "s3://" + s.Bucket + "/k?region=us-east-1"
		if err := WriteAtomic(ctx, wrong, []byte("x")); !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), "s3://"+s.Bucket+"/k") {
			t.Fatalf("write with a wrong secret: %v", err)
		}
		// No credentials at all.
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		none := "s3://" + s.Bucket + "/k?region=eu-west-1"
		if _, err := ReadAll(ctx, none); !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
			t.Fatalf("read without credentials: %v", err)
		}
		// Denied: an anonymous request to a private bucket.
		anon := "s3://" + s.Bucket + "/k?anonymous=true"
		if _, err := ReadAll(ctx, anon); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "s3://"+s.Bucket+"/k") {
			t.Fatalf("anonymous read of a private bucket: %v", err)
		}
	})
	t.Run("gs", func(t *testing.T) {
		s := storetest.GCS(t)
		missing := "gs://" + storetest.Name(t) + "-missing/x/y"
		if err := WriteAtomic(ctx, missing, []byte("x")); !errors.Is(err, ErrBucketNotFound) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("write to a missing bucket: %v", err)
		}
		// The emulator checks no credentials; denials come from a proxy.
		deny := s.Proxy(t, func(r *http.Request) int { return http.StatusForbidden })
		t.Setenv("STORAGE_EMULATOR_HOST", deny)
		u := "gs://" + s.Bucket + "/k?anonymous=false"
		if _, err := ReadAll(ctx, u); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "gs://"+s.Bucket+"/k") {
			t.Fatalf("denied read: %v", err)
		}
		// Without the emulator, no Google credentials.
		t.Setenv("STORAGE_EMULATOR_HOST", "")
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "none.json"))
		if _, err := ReadAll(ctx, "gs://"+s.Bucket+"/k?anonymous=0"); !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS") {
			t.Fatalf("read without credentials: %v", err)
		}
	})
}

// TestObjectStoreRetries puts a proxy that throttles the first requests of
// every object in front of the store: operations succeed after retries
// with backoff, and every failed attempt is logged with its number.
func TestObjectStoreRetries(t *testing.T) {
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		var mu sync.Mutex
		seen := map[string]int{}
		var injected atomic.Int64
		proxy := s.Proxy(t, func(r *http.Request) int {
			if !strings.Contains(r.URL.String(), "flaky") {
				return 0
			}
			key := r.Method + " " + r.URL.Path
			mu.Lock()
			defer mu.Unlock()
			seen[key]++
			if seen[key] <= 2 {
				injected.Add(1)
				return http.StatusServiceUnavailable
			}
			return 0
		})
		u := Join(s.URL, "flaky/object")
		if s.Scheme == "s3" {
			u += "?endpoint=http://" + proxy
		} else {
			t.Setenv("STORAGE_EMULATOR_HOST", proxy)
			// A bucket root the cache has not opened with the old host.
			u = "gs://" + s.Bucket + "/flaky/object?anonymous=false"
		}
		var logs []string
		var lmu sync.Mutex
		ctx := WithLogger(context.Background(), func(level, msg string, kv ...string) {
			lmu.Lock()
			logs = append(logs, level+" "+msg+" "+strings.Join(kv, " "))
			lmu.Unlock()
		})
		if err := WriteAtomic(ctx, u, []byte("payload")); err != nil {
			t.Fatal(err)
		}
		got, err := ReadAll(ctx, u)
		if err != nil || string(got) != "payload" {
			t.Fatalf("read through the throttling proxy = %q, %v", got, err)
		}
		if injected.Load() == 0 {
			t.Fatal("the proxy injected nothing: the requests did not go through it")
		}
		all := strings.Join(logs, "\n")
		for _, want := range []string{"attempt 1 of 6 failed", "attempt 2 of 6 failed", "succeeded on attempt 3"} {
			if !strings.Contains(all, want) {
				t.Fatalf("logs lack %q:\n%s", want, all)
			}
		}
		t.Logf("%d injected failures; logs:\n%s", injected.Load(), all)
	})
}

// smallParts lowers the part and chunk sizes so that files of a few MiB
// take several of each; it returns the restore.
func smallParts() func() {
	p, c := UploadPartSize, DownloadChunk
	UploadPartSize, DownloadChunk = 5<<20, 1<<20
	return func() { UploadPartSize, DownloadChunk = p, c }
}

// BenchmarkCheckpointS3 writes a 1 GiB checkpoint directory (the layout a
// train step publishes: model.safetensors, optimizer state, config.json
// and metadata.json last) from local disk to the test S3 server with
// UploadDir, and reads it back with DownloadDir, reporting each way's
// throughput and the process's peak RSS (which bounded-memory transfers
// keep far below the checkpoint's size):
//
//	MARIN_BENCH_CHECKPOINT_MB=1024 go test -run '^$' -bench CheckpointS3 -benchtime 1x ./plugins/storage/
func BenchmarkCheckpointS3(b *testing.B) {
	s := storetest.S3(b)
	b.Setenv(CacheDirEnv, b.TempDir())
	mb := 1024
	if v := os.Getenv("MARIN_BENCH_CHECKPOINT_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("MARIN_BENCH_CHECKPOINT_MB=%q", v)
		}
		mb = n
	}
	src := b.TempDir()
	total := int64(mb) << 20
	files := map[string]int64{
		"model.safetensors":     total / 3,
		"optimizer.safetensors": total - total/3 - 2048,
		"config.json":           1024,
		"metadata.json":         1024,
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>8)
	}
	for name, size := range files {
		f, err := os.Create(filepath.Join(src, name))
		if err != nil {
			b.Fatal(err)
		}
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			if _, err := f.Write(buf[:n]); err != nil {
				b.Fatal(err)
			}
			left -= n
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var up, down time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir := Join(s.URL, "checkpoints", "step-"+strconv.Itoa(i))
		start := time.Now()
		if err := UploadDir(ctx, src, dir, "config.json", "metadata.json"); err != nil {
			b.Fatal(err)
		}
		up += time.Since(start)
		dst := filepath.Join(b.TempDir(), "ck")
		start = time.Now()
		n, err := DownloadDir(ctx, dir, dst)
		if err != nil {
			b.Fatal(err)
		}
		down += time.Since(start)
		if n != len(files) {
			b.Fatalf("downloaded %d files, want %d", n, len(files))
		}
		fi, err := os.Stat(filepath.Join(dst, "optimizer.safetensors"))
		if err != nil || fi.Size() != files["optimizer.safetensors"] {
			b.Fatalf("optimizer.safetensors read back: %v %v", fi, err)
		}
		_ = DeleteAll(ctx, dir)
		_ = os.RemoveAll(dst)
	}
	b.StopTimer()
	secs := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(float64(total)/(1<<20)/secs(up), "MB/s-write")
	b.ReportMetric(float64(total)/(1<<20)/secs(down), "MB/s-read")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "MB-peak-RSS")
	}
}
