package hfhub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/marin-go/marin/plugins/hfhub/hubtest"
)

const (
	commit = "55e9fd6d41c3cd1a98270dff07557bc2a1e1ba91"
	token  = "hf_secret_token_abc123"
)

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

func fixture(t *testing.T) (*hubtest.Server, *hubtest.Repo) {
	t.Helper()
	repo := &hubtest.Repo{
		Type: "dataset", ID: "allenai/tulu-3-sft-mixture", Commit: commit, Branches: []string{"main"},
		Date: time.Date(2024, 11, 21, 16, 0, 0, 0, time.UTC),
		Files: map[string][]byte{
			"README.md":                         []byte("# tulu\n"),
			"data/train-00000-of-00002.parquet": content(300_000, 1),
			"data/train-00001-of-00002.parquet": content(200_000, 2),
			"data/test-00000-of-00001.parquet":  content(1000, 3),
		},
		LFS: map[string]bool{"data/train-00000-of-00002.parquet": true, "data/train-00001-of-00002.parquet": true, "data/test-00000-of-00001.parquet": true},
	}
	s := hubtest.New(repo)
	s.Token = token
	t.Cleanup(s.Close)
	return s, repo
}

type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func newClient(t *testing.T, s *hubtest.Server, opts ...Option) (*Client, *sleeps) {
	t.Helper()
	t.Setenv(EndpointEnv, s.URL())
	t.Setenv(TokenEnv, "")
	t.Setenv(LegacyTokenEnv, "")
	c, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	sl := &sleeps{}
	c.sleep = sl.sleep
	return c, sl
}

var ds = Repo{Type: Dataset, ID: "allenai/tulu-3-sft-mixture"}

func TestResolveRevision(t *testing.T) {
	s, repo := fixture(t)
	c, _ := newClient(t, s)
	for _, rev := range []string{"55e9fd6", commit, "main"} {
		cm, err := c.ResolveRevision(context.Background(), ds, rev)
		if err != nil {
			t.Fatalf("%s: %v", rev, err)
		}
		if cm.SHA != commit || !cm.LastModified.Equal(repo.Date) {
			t.Errorf("%s: got %+v", rev, cm)
		}
	}
	_, err := c.ResolveRevision(context.Background(), ds, "0000000")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such revision") {
		t.Errorf("unknown revision: %v", err)
	}
}

func TestListFilesPaginates(t *testing.T) {
	s, repo := fixture(t)
	s.PageSize = 2 // 4 files + 1 directory → 3 pages
	c, _ := newClient(t, s)
	files, err := c.ListFiles(context.Background(), ds, commit, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Path)
		want := repo.Files[f.Path]
		if f.Size != int64(len(want)) {
			t.Errorf("%s: size %d, want %d", f.Path, f.Size, len(want))
		}
		if repo.LFS[f.Path] && (f.SHA256 != hubtest.SHA256(want) || f.GitOID != "") {
			t.Errorf("%s: LFS file listed as %+v", f.Path, f)
		}
		if !repo.LFS[f.Path] && (f.GitOID != hubtest.GitOID(want) || f.SHA256 != "") {
			t.Errorf("%s: small file listed as %+v", f.Path, f)
		}
	}
	if strings.Join(got, ",") != "README.md,data/test-00000-of-00001.parquet,data/train-00000-of-00002.parquet,data/train-00001-of-00002.parquet" {
		t.Errorf("files: %v", got)
	}
	tree := 0
	for _, r := range s.Requests() {
		if strings.Contains(r.Path, "/tree/") {
			tree++
		}
	}
	if tree != 3 {
		t.Errorf("tree requests: %d, want 3 pages", tree)
	}
	// A subdirectory.
	files, err = c.ListFiles(context.Background(), ds, commit, "data")
	if err != nil || len(files) != 3 {
		t.Errorf("list data/: %v %v", files, err)
	}
}

func TestDownloadFollowsRedirectAndVerifies(t *testing.T) {
	s, repo := fixture(t)
	c, _ := newClient(t, s, WithToken(token))
	files, err := c.ListFiles(context.Background(), ds, commit, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var progressed int64
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		res, err := c.Download(context.Background(), ds, commit, f, dst, func(n int64) { progressed += n })
		if err != nil {
			t.Fatal(err)
		}
		if res.Skipped || res.Bytes != f.Size {
			t.Errorf("%s: %+v", f.Path, res)
		}
		got, _ := os.ReadFile(dst)
		if !bytes.Equal(got, repo.Files[f.Path]) {
			t.Errorf("%s: content differs", f.Path)
		}
		if _, err := os.Stat(dst + IncompleteSuffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: incomplete file left behind", f.Path)
		}
	}
	if progressed != 501007 {
		t.Errorf("progress total %d", progressed)
	}
	// The token goes to the hub and never to the CDN on another host.
	var hub, cdn int
	for _, r := range s.Requests() {
		if r.CDN {
			cdn++
			if r.AnyAuth {
				t.Errorf("the CDN got an Authorization header: %+v", r)
			}
		} else {
			hub++
			if !r.Authorized {
				t.Errorf("hub request without the token: %+v", r)
			}
		}
	}
	if cdn != 4 || hub != 5 {
		t.Errorf("requests: %d hub, %d cdn", hub, cdn)
	}

	// A second run finds everything in place and verified: no downloads.
	s.ResetRequests()
	for _, f := range files {
		res, err := c.Download(context.Background(), ds, commit, f, filepath.Join(dir, filepath.FromSlash(f.Path)), nil)
		if err != nil || !res.Skipped {
			t.Errorf("%s: rerun %+v %v", f.Path, res, err)
		}
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("rerun made %d requests", n)
	}
}

func TestDownloadRetries429And5xx(t *testing.T) {
	s, repo := fixture(t)
	c, sl := newClient(t, s)
	f := File{Path: "data/test-00000-of-00001.parquet", Size: 1000, SHA256: hubtest.SHA256(repo.Files["data/test-00000-of-00001.parquet"])}
	s.FailNext(f.Path, hubtest.Fault{Status: 429, RetryAfter: "7"}, hubtest.Fault{Status: 503})
	s.FailNextAPI(hubtest.Fault{Status: 429, RetryAfter: "2"}, hubtest.Fault{Status: 502})
	if _, err := c.ListFiles(context.Background(), ds, commit, ""); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "x.parquet")
	if _, err := c.Download(context.Background(), ds, commit, f, dst, nil); err != nil {
		t.Fatal(err)
	}
	if len(sl.d) != 4 || sl.d[0] != 2*time.Second || sl.d[2] != 7*time.Second {
		t.Errorf("waits %v: want Retry-After 2s, a backoff, Retry-After 7s, a backoff", sl.d)
	}
	for _, i := range []int{1, 3} {
		if sl.d[i] < time.Second || sl.d[i] > 2*time.Second {
			t.Errorf("second backoff %v, want within [1s, 2s]", sl.d[i])
		}
	}

	// Persistent 503s give up with the status in the error.
	c.MaxRetries = 2
	for i := 0; i < 3; i++ {
		s.FailNext(f.Path, hubtest.Fault{Status: 503})
	}
	_, err := c.Download(context.Background(), ds, commit, f, filepath.Join(t.TempDir(), "y"), nil)
	if err == nil || !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), f.Path) {
		t.Errorf("persistent 503: %v", err)
	}
}

func TestDownloadResumesAfterInterruption(t *testing.T) {
	s, repo := fixture(t)
	c, _ := newClient(t, s)
	path := "data/train-00000-of-00002.parquet"
	want := repo.Files[path]
	f := File{Path: path, Size: int64(len(want)), SHA256: hubtest.SHA256(want)}

	// Within one call: the connection drops twice; each retry asks for the rest.
	s.FailNext(path, hubtest.Fault{DropAfter: 100_000}, hubtest.Fault{DropAfter: 50_000})
	dst := filepath.Join(t.TempDir(), "a.parquet")
	res, err := c.Download(context.Background(), ds, commit, f, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("content differs after resumed download")
	}
	var ranges []string
	for _, r := range s.Requests() {
		if r.CDN {
			ranges = append(ranges, r.Range)
		}
	}
	if strings.Join(ranges, ",") != ",bytes=100000-,bytes=150000-" || res.Bytes != f.Size {
		t.Errorf("ranges %q, result %+v", ranges, res)
	}

	// Across runs: a previous process left the first 120000 bytes.
	s.ResetRequests()
	dst2 := filepath.Join(t.TempDir(), "b.parquet")
	if err := os.WriteFile(dst2+IncompleteSuffix, want[:120_000], 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = c.Download(context.Background(), ds, commit, f, dst2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst2); !bytes.Equal(got, want) {
		t.Fatal("content differs after cross-run resume")
	}
	if res.ResumedFrom != 120_000 || res.Bytes != f.Size-120_000 {
		t.Errorf("result %+v", res)
	}
	for _, r := range s.Requests() {
		if r.CDN && r.Range != "bytes=120000-" {
			t.Errorf("CDN request %+v, want a Range from 120000", r)
		}
	}
}

func TestCorruptionIsDetectedAndFetchedAgain(t *testing.T) {
	s, repo := fixture(t)
	c, _ := newClient(t, s)
	path := "data/train-00001-of-00002.parquet"
	want := repo.Files[path]
	f := File{Path: path, Size: int64(len(want)), SHA256: hubtest.SHA256(want)}
	dir := t.TempDir()

	// Corrupted in transit once.
	s.FailNext(path, hubtest.Fault{Corrupt: true})
	dst := filepath.Join(dir, "a")
	res, err := c.Download(context.Background(), ds, commit, f, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) || res.Refetched != 1 {
		t.Errorf("after corrupt transfer: result %+v", res)
	}

	// A corrupted copy on disk (right size, flipped byte) is fetched again.
	bad := append([]byte(nil), want...)
	bad[7] ^= 1
	if err := os.WriteFile(dst, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = c.Download(context.Background(), ds, commit, f, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) || res.Skipped || res.Refetched != 1 {
		t.Errorf("after corrupt copy on disk: result %+v", res)
	}

	// A corrupt partial file from an earlier run: resumed, caught, refetched.
	dst2 := filepath.Join(dir, "b")
	if err := os.WriteFile(dst2+IncompleteSuffix, bad[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Download(context.Background(), ds, commit, f, dst2, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst2); !bytes.Equal(got, want) {
		t.Error("corrupt partial file survived")
	}

	// Corrupt every time: an error naming the file and both hashes.
	s.FailNext(path, hubtest.Fault{Corrupt: true}, hubtest.Fault{Corrupt: true}, hubtest.Fault{Corrupt: true})
	_, err = c.Download(context.Background(), ds, commit, f, filepath.Join(dir, "c"), nil)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), f.SHA256) {
		t.Errorf("always corrupt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a corrupt file was put in place")
	}
}

func TestSmallFilesVerifiedByGitBlobID(t *testing.T) {
	s, repo := fixture(t)
	c, _ := newClient(t, s)
	f := File{Path: "README.md", Size: int64(len(repo.Files["README.md"])), GitOID: hubtest.GitOID(repo.Files["README.md"])}
	dst := filepath.Join(t.TempDir(), "README.md")
	if _, err := c.Download(context.Background(), ds, commit, f, dst, nil); err != nil {
		t.Fatal(err)
	}
	f.GitOID = strings.Repeat("0", 40)
	if err := Verify(dst, f); !errors.Is(err, ErrChecksum) {
		t.Errorf("wrong blob id: %v", err)
	}
}

func TestAuthErrors(t *testing.T) {
	s, _ := fixture(t)
	s.Add(&hubtest.Repo{Type: "dataset", ID: "meta/gated", Commit: commit, Gated: true, Files: map[string][]byte{"a.jsonl": []byte("{}\n")}})
	s.Add(&hubtest.Repo{Type: "model", ID: "meta/private", Commit: commit, Private: true, Files: map[string][]byte{"config.json": []byte("{}")}})
	ctx := context.Background()

	anon, _ := newClient(t, s)
	_, err := anon.ListFiles(ctx, Repo{Dataset, "meta/gated"}, commit, "")
	if !errors.Is(err, ErrGated) || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "set HF_TOKEN") {
		t.Errorf("gated without token: %v", err)
	}
	_, err = anon.ResolveRevision(ctx, Repo{Model, "meta/private"}, "main")
	if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrGated) {
		t.Errorf("private without token: %v", err)
	}

	bad, _ := newClient(t, s, WithToken("hf_wrong_token_xyz"))
	_, err = bad.Download(ctx, Repo{Dataset, "meta/gated"}, commit, File{Path: "a.jsonl", Size: -1}, filepath.Join(t.TempDir(), "a"), nil)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "HF_TOKEN was rejected") || strings.Contains(err.Error(), "hf_wrong_token_xyz") {
		t.Errorf("bad token: %v", err)
	}

	good, _ := newClient(t, s, WithToken(token))
	if _, err := good.ListFiles(ctx, Repo{Dataset, "meta/gated"}, commit, ""); err != nil {
		t.Errorf("gated with token: %v", err)
	}
	if strings.Contains(good.String(), token) || !good.HasToken() {
		t.Errorf("String() shows the token or HasToken is wrong: %s", good)
	}

	_, err = good.ListFiles(ctx, Repo{Dataset, "nobody/nothing"}, commit, "")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "nobody/nothing") {
		t.Errorf("missing repo: %v", err)
	}
	_, err = good.Download(ctx, ds, commit, File{Path: "nope.parquet", Size: -1}, filepath.Join(t.TempDir(), "n"), nil)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such file") || !strings.Contains(err.Error(), "nope.parquet") {
		t.Errorf("missing file: %v", err)
	}
}

func TestModelRepoDownload(t *testing.T) {
	s, _ := fixture(t)
	cfg := []byte(`{"model_type":"llama","hidden_size":64}`)
	s.Add(&hubtest.Repo{Type: "model", ID: "meta-llama/Llama-3.1-8B", Commit: strings.Repeat("d", 40), Branches: []string{"main"},
		Files: map[string][]byte{"config.json": cfg, "model.safetensors": content(5000, 9)}, LFS: map[string]bool{"model.safetensors": true}})
	c, _ := newClient(t, s)
	m := Repo{Type: Model, ID: "meta-llama/Llama-3.1-8B"}
	cm, err := c.ResolveRevision(context.Background(), m, "main")
	if err != nil {
		t.Fatal(err)
	}
	files, err := c.ListFiles(context.Background(), m, cm.SHA, "")
	if err != nil || len(files) != 2 {
		t.Fatalf("list: %v %v", files, err)
	}
	dir := t.TempDir()
	for _, f := range files {
		if _, err := c.Download(context.Background(), m, cm.SHA, f, filepath.Join(dir, f.Path), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "config.json")); !bytes.Equal(got, cfg) {
		t.Errorf("config.json: %s", got)
	}
	if u := c.FileURL(m, cm.SHA, "config.json"); u != fmt.Sprintf("%s/meta-llama/Llama-3.1-8B/resolve/%s/config.json", s.URL(), cm.SHA) {
		t.Errorf("model file URL %s", u)
	}
}

func TestNewRejectsBadEndpoint(t *testing.T) {
	t.Setenv(EndpointEnv, "ftp://user:pw@example.com")
	_, err := New()
	if err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("bad endpoint: %v", err)
	}
}

func TestNextLink(t *testing.T) {
	got, err := nextLink(`<https://hf.co/api/x?cursor=abc>; rel="next", <https://hf.co/api/x?cursor=0>; rel="first"`, "https://hf.co/api/x")
	if err != nil || got != "https://hf.co/api/x?cursor=abc" {
		t.Errorf("got %q %v", got, err)
	}
	if got, _ := nextLink("", "https://hf.co"); got != "" {
		t.Errorf("no header: %q", got)
	}
}

// TestErrorBodyEchoingTheTokenIsRedacted reproduces defect 2 of issue 16:
// an error reply whose body echoes the request's Authorization header was
// copied verbatim into the error (and from there into logs and
// .executor_status).
func TestErrorBodyEchoingTheTokenIsRedacted(t *testing.T) {
	s, _ := fixture(t)
	ctx := context.Background()
	for _, tok := range []string{token, "opaque-token-of-another-format"} {
		s.Token = tok
		c, _ := newClient(t, s, WithToken(tok))
		s.FailNextAPI(hubtest.Fault{Status: 400, EchoRequest: true})
		_, err := c.ListFiles(ctx, ds, commit, "")
		var he *Error
		if !errors.As(err, &he) || he.StatusCode != 400 {
			t.Fatalf("ListFiles: %v, want an *Error with status 400", err)
		}
		if strings.Contains(err.Error(), tok) || strings.Contains(he.Message, tok) {
			t.Errorf("the token reached the error: %v", err)
		}
		if !strings.Contains(err.Error(), "Authorization: Bearer [REDACTED]") || !strings.Contains(err.Error(), "User-Agent: marin-hfhub") {
			t.Errorf("the redacted error lost what the reply said: %v", err)
		}
	}
}
