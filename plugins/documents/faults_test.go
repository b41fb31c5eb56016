package documents

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"gocloud.dev/blob"

	"github.com/marin-go/marin/plugins/storage"
	"github.com/marin-go/marin/plugins/storage/faultblob"
)

// TestFullDiskCommitsNoShard: a shard whose write fails (a full disk) must
// fail the writer and leave no shard. Found by issue 16's fault sweep: the
// flush error was assigned to a shadowed variable, and the shard's cut-off
// gzip was committed while the step succeeded.
func TestFullDiskCommitsNoShard(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []faultblob.Kind{faultblob.ENOSPC, faultblob.EIO, faultblob.ShortWrite, faultblob.Timeout} {
		root := storage.NewMemURL(t.Name())
		in := faultblob.New()
		restore := storage.Interpose(func(_ string, b *blob.Bucket) *blob.Bucket { return in.Wrap(b) })
		in.Arm(faultblob.Fault{Op: faultblob.Write, N: 1, Kind: kind})
		w := NewWriter(ctx, root+"/docs", WriterOptions{RowsPerShard: 1000})
		for i := 0; i < 50; i++ {
			if err := w.Write(&Document{ID: "d", Messages: []Message{{Role: "user", Content: "hello"}}}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := w.Close()
		restore()
		if !errors.Is(err, faultblob.ErrInjected) {
			t.Errorf("%s: Close = %v, want the injected error", kind, err)
		}
		if kind == faultblob.ENOSPC && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s: %v does not match ENOSPC", kind, err)
		}
		if ok, _ := storage.Exists(ctx, root+"/docs/"+ShardName(0)); ok {
			t.Errorf("%s: a shard was committed after its write failed", kind)
		}
		storage.DropMem(root)
	}
}
