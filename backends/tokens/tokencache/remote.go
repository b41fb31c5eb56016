package tokencache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/plugins/storage"
)

// OpenURL opens the complete cache at a storage URL. A local path or
// file:// URL is opened in place (Open). A cache in a bucket (gs://, s3://,
// …) is read through a local content-addressed copy rather than mapped
// remotely: each data file is downloaded once per machine into the storage
// cache (storage.FetchBlob, keyed and verified by the sha256 the manifest
// records, so a damaged or replaced object is refused), and a view
// directory of links to those files, with the manifest, is opened like a
// local cache.
func OpenURL(ctx context.Context, rawURL string) (*Cache, error) {
	if storage.IsLocal(rawURL) {
		dir, err := storage.LocalPath(rawURL)
		if err != nil {
			return nil, err
		}
		return Open(dir)
	}
	mu := storage.Join(rawURL, ManifestName)
	raw, err := storage.ReadAll(ctx, mu)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("token cache %s: no %s, so the cache is not complete (the tokenize step has not finished): %w", rawURL, ManifestName, err)
	}
	if err != nil {
		return nil, fmt.Errorf("token cache %s: %w", rawURL, err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("token cache %s: %w", mu, err)
	}
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("token cache %s: %w", mu, err)
	}
	root, err := storage.CacheRoot()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	view := filepath.Join(root, "tokencache", hex.EncodeToString(sum[:16]))
	if _, err := os.Stat(filepath.Join(view, ManifestName)); err != nil {
		if err := makeView(ctx, rawURL, &m, raw, view); err != nil {
			return nil, err
		}
	}
	c, err := Open(view)
	if err != nil {
		return nil, fmt.Errorf("token cache %s (local copy %s): %w", rawURL, view, err)
	}
	return c, nil
}

// makeView fetches the cache's files and links them into view.
func makeView(ctx context.Context, rawURL string, m *Manifest, manifest []byte, view string) error {
	if err := os.MkdirAll(filepath.Dir(view), 0o755); err != nil {
		return fmt.Errorf("token cache %s: %w", rawURL, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(view), filepath.Base(view)+".tmp-")
	if err != nil {
		return fmt.Errorf("token cache %s: %w", rawURL, err)
	}
	defer os.RemoveAll(tmp)
	for _, s := range m.Shards {
		for _, f := range s.Files() {
			blob, err := storage.FetchBlob(ctx, storage.Join(rawURL, f.Path), f.Bytes, f.SHA256)
			if err != nil {
				return fmt.Errorf("token cache %s: shard %s: %w", rawURL, s.Name, err)
			}
			dst := filepath.Join(tmp, filepath.FromSlash(f.Path))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("token cache %s: %w", rawURL, err)
			}
			// A hard link when the cache is on one file system, else a
			// symbolic one: either way the blob is shared, not copied.
			if err := os.Link(blob, dst); err != nil {
				if err := os.Symlink(blob, dst); err != nil {
					return fmt.Errorf("token cache %s: %w", rawURL, err)
				}
			}
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ManifestName), manifest, 0o644); err != nil {
		return fmt.Errorf("token cache %s: %w", rawURL, err)
	}
	if err := os.Rename(tmp, view); err != nil {
		if _, serr := os.Stat(filepath.Join(view, ManifestName)); serr == nil {
			return nil // another process made the same view
		}
		return fmt.Errorf("token cache %s: %w", rawURL, err)
	}
	return nil
}

// A tokenize step whose output is a storage URL writes its cache in a
// local scratch directory and publishes it with these: each committed
// shard's data files and then its .json (PublishShard), and manifest.json
// after every shard (PublishManifest), so the URL holds a shard only when
// it is complete, and a complete cache only when the manifest is there.

// PublishShard uploads committed shard info from the local cache dir to the
// cache at rawURL, its .json last, then removes the local data files.
func PublishShard(ctx context.Context, dir, rawURL string, info ShardInfo) error {
	for _, f := range info.Files() {
		if err := storage.Upload(ctx, filepath.Join(dir, filepath.FromSlash(f.Path)), storage.Join(rawURL, f.Path)); err != nil {
			return fmt.Errorf("publish token cache shard %s: %w", info.Name, err)
		}
	}
	p := shardInfoPath(dir, info.Name)
	if err := storage.Upload(ctx, p, storage.Join(rawURL, ShardsDir, info.Name+".json")); err != nil {
		return fmt.Errorf("publish token cache shard %s: %w", info.Name, err)
	}
	for _, f := range info.Files() {
		_ = os.Remove(filepath.Join(dir, filepath.FromSlash(f.Path)))
	}
	return nil
}

// PublishManifest uploads dir's manifest.json to the cache at rawURL.
func PublishManifest(ctx context.Context, dir, rawURL string) error {
	return storage.Upload(ctx, filepath.Join(dir, ManifestName), storage.Join(rawURL, ManifestName))
}

// ReadShardInfoURL reads a published shard's .json; an error matching
// storage.ErrNotExist means the shard was never published.
func ReadShardInfoURL(ctx context.Context, rawURL, name string) (ShardInfo, error) {
	u := storage.Join(rawURL, ShardsDir, name+".json")
	raw, err := storage.ReadAll(ctx, u)
	if err != nil {
		return ShardInfo{}, fmt.Errorf("token cache shard %s: %w", u, err)
	}
	var info ShardInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return ShardInfo{}, fmt.Errorf("token cache shard %s: %w", u, err)
	}
	if info.Name != name {
		return ShardInfo{}, fmt.Errorf("token cache shard %s: it names itself %q", u, info.Name)
	}
	return info, nil
}

// CheckShardURL checks that a published shard's files are all there with
// the sizes its .json records. Their sha256 is checked by every reader
// (OpenURL) when it fetches them.
func CheckShardURL(ctx context.Context, rawURL string, info ShardInfo) error {
	if err := checkSizes(info); err != nil {
		return fmt.Errorf("token cache %s: shard %s: %w", rawURL, info.Name, err)
	}
	for _, f := range info.Files() {
		u := storage.Join(rawURL, f.Path)
		a, err := storage.Stat(ctx, u)
		if err != nil {
			return fmt.Errorf("token cache %s: %w", rawURL, err)
		}
		if a.Size != f.Bytes {
			return fmt.Errorf("token cache file %s: %d bytes, its shard says %d", u, a.Size, f.Bytes)
		}
	}
	return nil
}
