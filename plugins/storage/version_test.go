package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// casCounter has n goroutines increment a counter object with
// read-version/replace-if loops; with a correct compare-and-swap no
// increment is lost, so the final count is the number of successful
// replacements, and every failed one saw a newer version.
func casCounter(t *testing.T, u string, n, per int) {
	t.Helper()
	ctx := context.Background()
	if err := WriteAtomic(ctx, u, []byte("0")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for done := 0; done < per; {
				data, v, err := ReadVersioned(ctx, u)
				if err != nil {
					errs <- err
					return
				}
				c, err := strconv.Atoi(strings.Fields(string(data))[0])
				if err != nil {
					errs <- fmt.Errorf("counter %q: %v", data, err)
					return
				}
				// Distinct content per writer and value: a retried
				// request's read-back can only match its own write.
				ok, err := ReplaceIfVersion(ctx, u, []byte(fmt.Sprintf("%d g%d", c+1, g)), v)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					done++
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	data, err := ReadAll(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(data))[0]; got != strconv.Itoa(n*per) {
		t.Fatalf("counter = %s after %d successful increments: a replacement was lost", got, n*per)
	}
}

func TestReplaceIfVersion(t *testing.T) {
	ctx := context.Background()
	for scheme, root := range roots(t) {
		t.Run(scheme, func(t *testing.T) {
			u := Join(root, "x/lock")
			if _, _, err := ReadVersioned(ctx, u); !isNotExist(err) {
				t.Fatalf("ReadVersioned(missing) err = %v", err)
			}
			if ok, err := ReplaceIfVersion(ctx, u, []byte("a"), "whatever"); err != nil || ok {
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
			casCounter(t, Join(root, "counter"), 4, 25)
		})
	}
}

// A file replaced by rename while a writer waits for its lock is compared
// afresh, not through the old file's handle.
func TestReplaceIfVersionFileRenamedUnderLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	u, _ := NormalizeURL(filepath.Join(dir, "lock"))
	if err := WriteAtomic(ctx, u, []byte("old")); err != nil {
		t.Fatal(err)
	}
	_, v, err := ReadVersioned(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lockFile(f); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	go func() {
		ok, err := ReplaceIfVersion(ctx, u, []byte("late"), v)
		if err != nil {
			t.Error(err)
		}
		done <- ok
	}()
	// Replace the file (same content, new inode) while the writer waits.
	if err := WriteAtomic(ctx, u, []byte("new")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if <-done {
		t.Fatal("a writer holding a stale version replaced the newer file")
	}
	if got, _ := ReadAll(ctx, u); string(got) != "new" {
		t.Fatalf("content %q, want new", got)
	}
}

func isNotExist(err error) bool { return err != nil && strings.Contains(err.Error(), "not exist") }
