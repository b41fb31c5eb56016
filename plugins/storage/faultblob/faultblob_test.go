package faultblob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

func buckets(t *testing.T) map[string]*blob.Bucket {
	t.Helper()
	fb, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true, CreateDir: true})
	if err != nil {
		t.Fatal(err)
	}
	mb := memblob.OpenBucket(nil)
	t.Cleanup(func() { fb.Close(); mb.Close() })
	return map[string]*blob.Bucket{"file": fb, "mem": mb}
}

var payload = bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB

func TestCountsEveryOperation(t *testing.T) {
	ctx := context.Background()
	for name, raw := range buckets(t) {
		t.Run(name, func(t *testing.T) {
			in := New()
			b := in.Wrap(raw)
			if err := b.WriteAll(ctx, "d/a", payload, nil); err != nil {
				t.Fatal(err)
			}
			if err := b.WriteAll(ctx, "d/b", payload, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := b.ReadAll(ctx, "d/a"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Attributes(ctx, "d/b"); err != nil {
				t.Fatal(err)
			}
			if err := b.Copy(ctx, "d/c", "d/a", nil); err != nil {
				t.Fatal(err)
			}
			it := b.List(&blob.ListOptions{Prefix: "d/"})
			n := 0
			for {
				_, err := it.Next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 3 {
				t.Errorf("listed %d objects, want 3", n)
			}
			if err := b.Delete(ctx, "d/c"); err != nil {
				t.Fatal(err)
			}
			want := map[Op]int64{Write: 2, Rename: 3, Read: 2, List: 1, Delete: 1}
			got := in.Counts()
			for _, op := range Ops {
				if got[op] != want[op] {
					t.Errorf("%s: %d operations counted, want %d", op, got[op], want[op])
				}
			}
		})
	}
}

func TestOnlyCountsKeysUnderPrefix(t *testing.T) {
	ctx := context.Background()
	in := New()
	in.Only("in/")
	b := in.Wrap(memblob.OpenBucket(nil))
	_ = b.WriteAll(ctx, "in/x", payload, nil)
	_ = b.WriteAll(ctx, "out/x", payload, nil)
	if c := in.Counts(); c[Write] != 1 || c[Rename] != 1 {
		t.Errorf("counts %v, want one write and one rename", c)
	}
}

// write writes payload through a writer whose context it cancels before
// closing when a write failed, as storage.Writer does.
func writeCarefully(ctx context.Context, b *blob.Bucket, key string, data []byte) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		cancel()
		w.Close()
		return err
	}
	return w.Close()
}

func TestWriteFaults(t *testing.T) {
	ctx := context.Background()
	old := []byte("the previous version\n")
	for name, raw := range buckets(t) {
		for _, kind := range Kinds(Write) {
			t.Run(name+"/"+string(kind), func(t *testing.T) {
				in := New()
				b := in.Wrap(raw)
				key := "obj-" + string(kind)
				if err := b.WriteAll(ctx, key, old, nil); err != nil {
					t.Fatal(err)
				}
				if err := in.Arm(Fault{Op: Write, N: 1, Kind: kind}); err != nil {
					t.Fatal(err)
				}
				err := writeCarefully(ctx, b, key, payload)
				if !errors.Is(err, ErrInjected) {
					t.Fatalf("write: %v, want an injected fault", err)
				}
				got, rerr := raw.ReadAll(ctx, key)
				if rerr != nil {
					t.Fatal(rerr)
				}
				switch kind {
				case TornWrite:
					// Committed in part, reported as EIO.
					if !errors.Is(err, syscall.EIO) || !bytes.Equal(got, payload[:len(payload)/2]) {
						t.Errorf("torn write: %v, object %d bytes; want EIO and the first half committed", err, len(got))
					}
				default:
					if !bytes.Equal(got, old) {
						t.Errorf("after a failed write the object is %q, want the previous version", got)
					}
				}
				want := map[Kind]error{ENOSPC: syscall.ENOSPC, EIO: syscall.EIO, ShortWrite: io.ErrShortWrite, Timeout: os.ErrDeadlineExceeded, TornWrite: syscall.EIO}[kind]
				if !errors.Is(err, want) {
					t.Errorf("error %v does not match %v", err, want)
				}
				if ev := in.Fired(); len(ev) != 1 || ev[0].Key != key {
					t.Errorf("fired %v", ev)
				}
			})
		}
	}
}

// TestFailedWriteClosedWithLiveContextCommits is the behaviour behind
// defect 1 of issue 16: a driver commits on close whatever it was given,
// and gocloud's own WriteAll closes after a failed write without cancelling,
// so a full disk commits a cut-off file. The wrapper must reproduce it for
// the sweep to catch callers that do the same.
func TestFailedWriteClosedWithLiveContextCommits(t *testing.T) {
	ctx := context.Background()
	for name, raw := range buckets(t) {
		t.Run(name, func(t *testing.T) {
			in := New()
			b := in.Wrap(raw)
			if err := b.WriteAll(ctx, "status", []byte("old\n"), nil); err != nil {
				t.Fatal(err)
			}
			in.Arm(Fault{Op: Write, N: 1, Kind: ENOSPC})
			err := b.WriteAll(ctx, "status", payload, nil)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("WriteAll: %v, want ENOSPC", err)
			}
			if gcerrors.Code(err) != gcerrors.ResourceExhausted {
				t.Errorf("code %v, want ResourceExhausted", gcerrors.Code(err))
			}
			got, _ := raw.ReadAll(ctx, "status")
			if !bytes.Equal(got, payload[:len(payload)/2]) {
				t.Errorf("object is %d bytes; want the cut-off %d bytes a live close commits", len(got), len(payload)/2)
			}
		})
	}
}

func TestRenameFaultKeepsPreviousVersion(t *testing.T) {
	ctx := context.Background()
	for name, raw := range buckets(t) {
		for _, kind := range Kinds(Rename) {
			t.Run(name+"/"+string(kind), func(t *testing.T) {
				in := New()
				b := in.Wrap(raw)
				key := "r-" + string(kind)
				_ = b.WriteAll(ctx, key, []byte("old"), nil)
				in.Arm(Fault{Op: Rename, N: 1, Kind: kind})
				if err := b.WriteAll(ctx, key, payload, nil); !errors.Is(err, ErrInjected) {
					t.Fatalf("write: %v", err)
				}
				if got, _ := raw.ReadAll(ctx, key); string(got) != "old" {
					t.Errorf("object %q after a failed commit, want the previous version", got)
				}
				in.Arm(Fault{Op: Rename, N: 1, Kind: kind})
				if err := b.Copy(ctx, key, "nothing", nil); !errors.Is(err, ErrInjected) {
					t.Errorf("copy: %v", err)
				}
			})
		}
	}
}

func TestReadListDeleteFaults(t *testing.T) {
	ctx := context.Background()
	for name, raw := range buckets(t) {
		t.Run(name, func(t *testing.T) {
			in := New()
			b := in.Wrap(raw)
			_ = b.WriteAll(ctx, "x/a", payload, nil)

			in.Arm(Fault{Op: Read, N: 1, Kind: EIO})
			r, err := b.NewReader(ctx, "x/a", nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if !errors.Is(err, syscall.EIO) || len(got) != len(payload)/2 {
				t.Errorf("read: %d bytes, %v; want half, then EIO", len(got), err)
			}
			in.Arm(Fault{Op: Read, N: 1, Kind: Timeout})
			if _, err := b.Attributes(ctx, "x/a"); !errors.Is(err, os.ErrDeadlineExceeded) || gcerrors.Code(err) != gcerrors.DeadlineExceeded {
				t.Errorf("attributes: %v", err)
			}
			in.Arm(Fault{Op: Read, N: 1, Kind: EIO})
			if _, err := b.ReadAll(ctx, "x/missing"); !errors.Is(err, syscall.EIO) {
				t.Errorf("read of a missing object: %v, want the injected EIO", err)
			}
			in.Arm(Fault{Op: List, N: 1, Kind: EIO})
			if _, err := b.List(&blob.ListOptions{Prefix: "x/"}).Next(ctx); !errors.Is(err, syscall.EIO) {
				t.Errorf("list: %v", err)
			}
			in.Arm(Fault{Op: Delete, N: 1, Kind: EIO})
			if err := b.Delete(ctx, "x/a"); !errors.Is(err, syscall.EIO) {
				t.Errorf("delete: %v", err)
			}
			if ok, _ := raw.Exists(ctx, "x/a"); !ok {
				t.Error("a failed delete removed the object")
			}
			// Faults fire once.
			if err := b.Delete(ctx, "x/a"); err != nil {
				t.Errorf("second delete: %v", err)
			}
		})
	}
}

func TestArmRejectsFaultsThatDoNotApply(t *testing.T) {
	in := New()
	if err := in.Arm(Fault{Op: Read, N: 1, Kind: TornWrite}); err == nil {
		t.Error("torn-write on a read was accepted")
	}
	if err := in.Arm(Fault{Op: Write, N: 0, Kind: EIO}); err == nil {
		t.Error("operation 0 was accepted")
	}
}

func TestFileDriverLeavesNoTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	raw, err := fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	in := New()
	b := in.Wrap(raw)
	for _, kind := range Kinds(Write) {
		in.Arm(Fault{Op: Write, N: 1, Kind: kind})
		_ = writeCarefully(ctx, b, "f", payload)
	}
	for _, kind := range Kinds(Rename) {
		in.Arm(Fault{Op: Rename, N: 1, Kind: kind})
		_ = writeCarefully(ctx, b, "f", payload)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "f" {
			t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
		}
	}
}
