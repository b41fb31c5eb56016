package tokencache

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseManifest: no manifest.json makes parsing or the size checks a
// reader does before mapping panic, and a manifest that parses names only
// files inside the cache.
//
//	go test -run '^$' -fuzz FuzzParseManifest -fuzztime 10m ./backends/tokens/tokencache/
func FuzzParseManifest(f *testing.F) {
	dir := f.TempDir()
	writeCache(f, dir, [][]doc{{{ids: []uint32{1, 2, 3}, mask: []uint8{0, 1, 1}}, {}}, {{ids: []uint32{4}, mask: []uint8{1}}}})
	good, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"layout":"marin.token_cache","version":1,"dtypes":{"ids":"uint32","mask":"uint8","offsets":"uint64","byte_order":"little"},"shards":[{"name":"../x","ids":{"path":"/etc/passwd"}}]}`))
	f.Add([]byte(`{"layout":"marin.token_cache","version":1,"counts":{"documents":-1,"tokens":9223372036854775807}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseManifest(raw)
		if err != nil {
			return
		}
		for _, s := range m.Shards {
			for _, fi := range s.Files() {
				if !filepath.IsLocal(filepath.FromSlash(fi.Path)) {
					t.Fatalf("accepted a file outside the cache: %q", fi.Path)
				}
			}
			if !validShardName(s.Name) {
				t.Fatalf("accepted shard name %q", s.Name)
			}
			_ = checkSizes(s)
		}
	})
}
