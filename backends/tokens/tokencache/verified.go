package tokencache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/marin-go/marin/plugins/storage"
)

// VerifiedDirEnv names the directory of verification stamps (default: the
// user cache directory, …/marin/verified), shared by every process of a
// user. MARIN_CACHE_DIR moves it with the other caches.
const (
	VerifiedDirEnv = "MARIN_VERIFIED_DIR"
	CacheDirEnv    = "MARIN_CACHE_DIR"
)

// VerifyCached is Verify done once per shard: a shard that passed is
// remembered by its digest (the sha256 of its files that the manifest
// records, together with each file's size, inode, modification and change
// times), in this process and as a stamp file that later processes find,
// so training checks its caches' checksums without rehashing unchanged
// shards every time it opens them. A file whose bytes change gets a new
// modification and change time, hence a new digest, and is hashed again.
func (c *Cache) VerifyCached() error {
	for _, s := range c.shards {
		key, err := shardDigest(c.dir, s.Info)
		if err != nil {
			return err
		}
		if verifiedBefore(key) {
			continue
		}
		if err := c.verifyShard(s); err != nil {
			return err
		}
		rememberVerified(key, c.dir, s.Info.Name)
	}
	return nil
}

var (
	verifiedMu  sync.Mutex
	verifiedMem = map[string]bool{}
	// shardsHashed counts shards hashed by VerifyCached (for tests).
	shardsHashed int
)

// shardDigest identifies a shard's recorded checksums and the current state
// of its files.
func shardDigest(dir string, info ShardInfo) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "marin.token_cache.verified/1\n%s\n", info.Name)
	for _, f := range info.Files() {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("token cache file %s: %w", p, err)
		}
		fmt.Fprintf(h, "%s %d %s %d %s\n", f.Path, f.Bytes, f.SHA256, fi.Size(), fileStamp(fi))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verifiedDir is where stamps live; "" when there is no such directory.
func verifiedDir() string {
	if d := os.Getenv(VerifiedDirEnv); d != "" {
		return d
	}
	if d := os.Getenv(CacheDirEnv); d != "" {
		return filepath.Join(d, "verified")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "marin", "verified")
	}
	return ""
}

func verifiedBefore(key string) bool {
	verifiedMu.Lock()
	defer verifiedMu.Unlock()
	if verifiedMem[key] {
		return true
	}
	if d := verifiedDir(); d != "" {
		if _, err := os.Stat(filepath.Join(d, key[:2], key)); err == nil {
			verifiedMem[key] = true
			return true
		}
	}
	shardsHashed++
	return false
}

// rememberVerified records a verified shard. A stamp that cannot be written
// costs a rehash next time, nothing more.
func rememberVerified(key, dir, shard string) {
	verifiedMu.Lock()
	verifiedMem[key] = true
	verifiedMu.Unlock()
	if d := verifiedDir(); d != "" {
		_ = storage.WriteAtomic(context.Background(), filepath.Join(d, key[:2], key), []byte(filepath.Join(dir, shard)+"\n"))
	}
}
