package tokencache

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hashed() int {
	verifiedMu.Lock()
	defer verifiedMu.Unlock()
	return shardsHashed
}

func forgetInMemory() {
	verifiedMu.Lock()
	defer verifiedMu.Unlock()
	verifiedMem = map[string]bool{}
}

// TestVerifyCachedCatchesChangedIDs reproduces defect 4 of issue 16: a
// token cache whose ids were replaced by other valid ids after tokenizing
// trained silently; the manifest's sha256 was never checked when training
// opened it.
func TestVerifyCachedCatchesChangedIDs(t *testing.T) {
	t.Setenv(VerifiedDirEnv, t.TempDir())
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	writeCache(t, dir, [][]doc{randomDocs(r, 30), randomDocs(r, 30)})

	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := hashed()
	if err := c.VerifyCached(); err != nil {
		t.Fatal(err)
	}
	if n := hashed() - before; n != 2 {
		t.Errorf("first VerifyCached hashed %d shards, want 2", n)
	}
	if err := c.VerifyCached(); err != nil {
		t.Fatal(err)
	}
	forgetInMemory() // as a new process would
	if err := c.VerifyCached(); err != nil {
		t.Fatal(err)
	}
	if n := hashed() - before; n != 2 {
		t.Errorf("unchanged shards were hashed again: %d hashes in all, want 2", n)
	}
	c.Close()

	// Replace one id of shard 1 by another id the vocabulary has: sizes,
	// offsets and counts still agree, only the checksum can tell.
	p := filepath.Join(dir, "shards", "shard_00001.ids")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	id := binary.LittleEndian.Uint32(raw[40:])
	binary.LittleEndian.PutUint32(raw[40:], (id+1)%1000)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = Open(dir)
	if err != nil {
		t.Fatalf("Open checks only what is cheap, and should pass: %v", err)
	}
	defer c.Close()
	err = c.VerifyCached()
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("VerifyCached of a changed shard: %v", err)
	}
	if n := hashed() - before; n != 3 {
		t.Errorf("%d shards hashed in all, want 3 (only the changed one again)", n)
	}
}
