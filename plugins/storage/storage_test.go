package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ in, want string }{
		{"./marin-output", "file://" + filepath.ToSlash(filepath.Join(wd, "marin-output"))},
		{"marin-output/", "file://" + filepath.ToSlash(filepath.Join(wd, "marin-output"))},
		{"/abs/x/../y", "file:///abs/y"},
		{"file:///abs/y/", "file:///abs/y"},
		{"file://localhost/abs/y", "file:///abs/y"},
		{"file://./rel", "file://" + filepath.ToSlash(filepath.Join(wd, "rel"))},
		{"gs://bucket/a/b/", "gs://bucket/a/b"},
		{"s3://bucket", "s3://bucket"},
		{"mem://m/x", "mem://m/x"},
		{"mem://", "mem://"},
		{"mem:///x/", "mem:///x"},
	}
	for _, c := range cases {
		got, err := NormalizeURL(c.in)
		if err != nil {
			t.Errorf("NormalizeURL(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "file://host/x", "gs:///nobucket"} {
		if got, err := NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestJoin(t *testing.T) {
	if got := Join("mem://b/p/", "/x/", "", "y"); got != "mem://b/p/x/y" {
		t.Fatalf("Join = %q", got)
	}
}

// roots gives one file:// and one mem:// root to run a test against.
func roots(t *testing.T) map[string]string {
	dir, err := NormalizeURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mem := NewMemURL(t.Name())
	t.Cleanup(func() { DropMem(mem) })
	return map[string]string{"file": dir, "mem": mem}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	for scheme, root := range roots(t) {
		t.Run(scheme, func(t *testing.T) {
			u := Join(root, "out/step-abc123/.executor_info")
			if _, err := ReadAll(ctx, u); !errors.Is(err, ErrNotExist) {
				t.Fatalf("ReadAll of a missing object: err = %v, want ErrNotExist", err)
			} else if !strings.Contains(err.Error(), u) {
				t.Fatalf("error %q does not name %s", err, u)
			}
			if ok, err := Exists(ctx, u); err != nil || ok {
				t.Fatalf("Exists(missing) = %v, %v", ok, err)
			}
			if err := WriteAtomic(ctx, u, []byte("one")); err != nil {
				t.Fatal(err)
			}
			if err := WriteAtomic(ctx, u, []byte("two")); err != nil {
				t.Fatal(err)
			}
			got, err := ReadAll(ctx, u)
			if err != nil || string(got) != "two" {
				t.Fatalf("ReadAll = %q, %v; want two", got, err)
			}
			if ok, err := Exists(ctx, u); err != nil || !ok {
				t.Fatalf("Exists = %v, %v", ok, err)
			}
			a, err := Stat(ctx, u)
			if err != nil || a.Size != 3 || a.ModTime.IsZero() {
				t.Fatalf("Stat = %+v, %v", a, err)
			}
			if err := Delete(ctx, u); err != nil {
				t.Fatal(err)
			}
			if err := Delete(ctx, u); err != nil {
				t.Fatalf("second Delete: %v", err)
			}
			if _, err := Stat(ctx, u); !errors.Is(err, ErrNotExist) {
				t.Fatalf("Stat after Delete: %v", err)
			}
		})
	}
}

func TestFileURLIsTheLocalFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	u := "file://" + filepath.ToSlash(dir) + "/a/b.txt"
	if err := WriteAtomic(ctx, u, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "a", "b.txt"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("local file = %q, %v", got, err)
	}
	// No sidecar metadata and no leftover temp files.
	ents, _ := os.ReadDir(filepath.Join(dir, "a"))
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only b.txt", names)
	}
	// A plain path reads the same object.
	if got, err := ReadAll(ctx, filepath.Join(dir, "a", "b.txt")); err != nil || string(got) != "hello" {
		t.Fatalf("ReadAll(plain path) = %q, %v", got, err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	for scheme, root := range roots(t) {
		t.Run(scheme, func(t *testing.T) {
			for _, k := range []string{
				"tokenized/tulu-aaaaaa/.executor_info",
				"tokenized/tulu-aaaaaa/shard/0.bin",
				"tokenized/tulu-bbbbbb/.executor_info",
				"tokenized/tulu-v2-cccccc/.executor_info",
				"tokenized/other-dddddd/.executor_info",
				"tokenized/top.json",
			} {
				if err := WriteAtomic(ctx, Join(root, k), []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			ents, err := List(ctx, Join(root, "tokenized/tulu-"), "/")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ents {
				if !e.IsDir {
					t.Errorf("entry %s is not a directory", e.URL)
				}
				got = append(got, e.URL)
			}
			want := []string{
				root + "/tokenized/tulu-aaaaaa/",
				root + "/tokenized/tulu-bbbbbb/",
				root + "/tokenized/tulu-v2-cccccc/",
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("List = %v, want %v", got, want)
			}
			ents, err = List(ctx, Join(root, "tokenized")+"/", "/")
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 5 || ents[1].URL != root+"/tokenized/top.json" || ents[1].IsDir || ents[1].Size != 1 {
				t.Fatalf("List(dir/) = %+v", ents)
			}
			ents, err = List(ctx, Join(root, "tokenized/tulu-aaaaaa")+"/", "")
			if err != nil || len(ents) != 2 {
				t.Fatalf("recursive List = %+v, %v", ents, err)
			}
			ents, err = List(ctx, Join(root, "nothing-here")+"/", "/")
			if err != nil || len(ents) != 0 {
				t.Fatalf("List(missing) = %+v, %v", ents, err)
			}
		})
	}
}

func TestMemBucketsAreSharedAndFresh(t *testing.T) {
	ctx := context.Background()
	a := NewMemURL("shared")
	b := NewMemURL("shared")
	defer DropMem(a)
	defer DropMem(b)
	if a == b {
		t.Fatalf("NewMemURL gave %s twice", a)
	}
	if err := WriteAtomic(ctx, a+"/k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The same root opened again (as another component would) sees the data.
	bk, key, err := Open(ctx, a+"/k")
	if err != nil || key != "k" {
		t.Fatalf("Open = %v, %q, %v", bk, key, err)
	}
	if got, err := bk.ReadAll(ctx, key); err != nil || string(got) != "v" {
		t.Fatalf("shared bucket read %q, %v", got, err)
	}
	if ok, _ := Exists(ctx, b+"/k"); ok {
		t.Fatal("a fresh mem bucket sees another bucket's object")
	}
}

func TestCreateIfNotExistGoroutines(t *testing.T) {
	ctx := context.Background()
	for scheme, root := range roots(t) {
		t.Run(scheme, func(t *testing.T) {
			for round := 0; round < 20; round++ {
				u := Join(root, fmt.Sprintf("locks/%d/.executor_status.lock", round))
				var wins atomic.Int32
				var winner atomic.Int32
				var wg sync.WaitGroup
				for g := 0; g < 16; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ok, err := CreateIfNotExist(ctx, u, []byte(strconv.Itoa(g)))
						if err != nil {
							t.Error(err)
							return
						}
						if ok {
							wins.Add(1)
							winner.Store(int32(g))
						}
					}()
				}
				wg.Wait()
				if wins.Load() != 1 {
					t.Fatalf("round %d: %d creators won, want 1", round, wins.Load())
				}
				got, err := ReadAll(ctx, u)
				if err != nil || string(got) != strconv.Itoa(int(winner.Load())) {
					t.Fatalf("round %d: content %q, %v; winner %d", round, got, err, winner.Load())
				}
			}
		})
	}
}

// The helper process for TestCreateIfNotExistProcesses: it races for every
// lock in a directory and prints the ones it won.
func TestMain(m *testing.M) {
	if dir := os.Getenv("MARIN_STORAGE_RACE_DIR"); dir != "" {
		n, _ := strconv.Atoi(os.Getenv("MARIN_STORAGE_RACE_N"))
		var won []string
		for i := 0; i < n; i++ {
			ok, err := CreateIfNotExist(context.Background(), Join(dir, strconv.Itoa(i)), []byte(strconv.Itoa(os.Getpid())))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			if ok {
				won = append(won, strconv.Itoa(i))
			}
		}
		fmt.Println(strings.Join(won, ","))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCreateIfNotExistProcesses(t *testing.T) {
	dir, err := NormalizeURL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const locks, procs = 200, 4
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for p := 0; p < procs; p++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MARIN_STORAGE_RACE_DIR="+dir, "MARIN_STORAGE_RACE_N="+strconv.Itoa(locks))
		var out strings.Builder
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		cmds = append(cmds, cmd)
		outs = append(outs, &out)
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
	// The content is the winner's: no process overwrote another's lock.
	for k, p := range owner {
		got, err := ReadAll(context.Background(), Join(dir, k))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != strconv.Itoa(cmds[p].Process.Pid) {
			t.Fatalf("lock %s holds %q, want winner pid %d", k, got, cmds[p].Process.Pid)
		}
	}
}

func TestCreateIfNotExistKeepsExisting(t *testing.T) {
	ctx := context.Background()
	for scheme, root := range roots(t) {
		t.Run(scheme, func(t *testing.T) {
			u := Join(root, "a/lock")
			if ok, err := CreateIfNotExist(ctx, u, []byte("first")); err != nil || !ok {
				t.Fatalf("first create = %v, %v", ok, err)
			}
			if ok, err := CreateIfNotExist(ctx, u, []byte("second")); err != nil || ok {
				t.Fatalf("second create = %v, %v", ok, err)
			}
			if got, _ := ReadAll(ctx, u); string(got) != "first" {
				t.Fatalf("content = %q", got)
			}
			if err := Delete(ctx, u); err != nil {
				t.Fatal(err)
			}
			if ok, err := CreateIfNotExist(ctx, u, []byte("third")); err != nil || !ok {
				t.Fatalf("create after delete = %v, %v", ok, err)
			}
			ents, err := List(ctx, Join(root, "a")+"/", "/")
			if err != nil || len(ents) != 1 {
				t.Fatalf("List after creates = %+v, %v (temp files left behind?)", ents, err)
			}
		})
	}
}

func TestErrorsNameTheURL(t *testing.T) {
	ctx := context.Background()
	if _, err := ReadAll(ctx, "nosuchscheme://b/k"); err == nil || !strings.Contains(err.Error(), "nosuchscheme://b") {
		t.Fatalf("unknown scheme error = %v", err)
	}
	if err := WriteAtomic(ctx, "mem://x/", []byte("x")); err == nil || !strings.Contains(err.Error(), "mem://x/") {
		t.Fatalf("directory URL error = %v", err)
	}
}
