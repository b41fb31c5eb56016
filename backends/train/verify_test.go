package train_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/tokens/tokencache"
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/backends/train/traintest"
)

// TestChangedTokenCacheIsRefused reproduces defect 4 of issue 16 through
// the training step: a cache whose ids were replaced by other valid ids
// after tokenizing trained silently. Opening the data now checks the
// manifest's sha256 (once per shard) and names the file.
func TestChangedTokenCacheIsRefused(t *testing.T) {
	t.Setenv(tokencache.VerifiedDirEnv, t.TempDir())
	root := t.TempDir()
	cfg := testConfig(t, root, 2)
	d, err := train.OpenData(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	ids := filepath.Join(root, "cache-b", "shards", "shard_00000.ids")
	raw, err := os.ReadFile(ids)
	if err != nil {
		t.Fatal(err)
	}
	v := binary.LittleEndian.Uint32(raw[8:])
	binary.LittleEndian.PutUint32(raw[8:], (v+5)%traintest.Vocab)
	if err := os.WriteFile(ids, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = runJob(t, cfg, filepath.Join(root, "out"), nil)
	if err == nil || !strings.Contains(err.Error(), "data component b") || !strings.Contains(err.Error(), ids) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("training on a changed cache: %v", err)
	}
}
