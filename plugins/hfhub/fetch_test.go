package hfhub

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fetch pins the revision to its commit, downloads only the top-level
// files asked for into the commit's cache directory, and on a second call
// finds them there, verified, without downloading anything.
func TestFetchIntoTheCache(t *testing.T) {
	s, repo := fixture(t)
	s.Token = ""
	repo.Files["config.json"] = []byte(`{"a": 1}`)
	c, _ := newClient(t, s)
	cache := t.TempDir()
	t.Setenv(CacheDirEnv, cache)
	keep := func(p string) bool {
		return p == "config.json" || strings.HasSuffix(p, ".parquet") || p == "missing.json"
	}
	var logged []string
	snap, err := c.Fetch(context.Background(), ds, "main", keep, func(f string, a ...any) { logged = append(logged, f) })
	if err != nil {
		t.Fatal(err)
	}
	wantDir := filepath.Join(cache, "hub", "datasets--allenai--tulu-3-sft-mixture", commit)
	if snap.Dir != wantDir || snap.Commit != commit || len(snap.Files) != 1 || !snap.Has("config.json") || snap.Has("README.md") {
		t.Fatalf("snapshot %+v, want only config.json in %s", snap, wantDir)
	}
	if b, err := os.ReadFile(filepath.Join(wantDir, "config.json")); err != nil || string(b) != `{"a": 1}` {
		t.Fatalf("config.json: %q %v", b, err)
	}
	if len(logged) != 1 {
		t.Errorf("logged %d downloads, want 1", len(logged))
	}
	s.ResetRequests()
	logged = nil
	if _, err := c.Fetch(context.Background(), ds, commit[:9], keep, func(f string, a ...any) { logged = append(logged, f) }); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Requests() {
		if r.CDN {
			t.Errorf("fetched again: %+v", r)
		}
	}
	if len(logged) != 0 {
		t.Errorf("logged %v for files already in the cache", logged)
	}
	if _, err := c.Fetch(context.Background(), Repo{Type: Model, ID: "acme/none"}, "", keep, nil); err == nil {
		t.Error("a missing repo fetched")
	}
}

func TestParseRef(t *testing.T) {
	for _, c := range []struct {
		in      string
		ok      bool
		id, rev string
	}{
		{"org/name", true, "org/name", ""},
		{"org/name@v1.0", true, "org/name", "v1.0"},
		{"org/name@refs/pr/3", true, "org/name", "refs/pr/3"},
		{"name", false, "", ""},
		{"./org/name", false, "", ""},
		{"org/name/extra", false, "", ""},
	} {
		if IsRef(c.in) != c.ok {
			t.Errorf("IsRef(%q) = %v", c.in, !c.ok)
			continue
		}
		if c.ok {
			if r, rev := ParseRef(c.in); r.ID != c.id || r.Type != Model || rev != c.rev {
				t.Errorf("ParseRef(%q) = %+v %q", c.in, r, rev)
			}
		}
	}
}
