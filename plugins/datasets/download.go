package datasets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// downloadConfig is dataset/download's config.
type downloadConfig struct {
	ID        string   `json:"hf_dataset_id" schema:"required,nonempty" doc:"owner/name on the hub"`
	Revision  string   `json:"revision" doc:"pinned commit (abbreviated is fine), tag or branch"`
	FileGlobs []string `json:"file_globs" doc:"which files; empty: all"`
	RepoType  string   `json:"repo_type" schema:"enum=dataset|model" doc:"dataset (default) or model"`
}

// Parallel downloads: enough to fill a link with many shards, few enough
// to stay polite to the hub.
const downloadParallel = 4

// globMatch matches a repo path against a glob where * and ? stay inside
// one path segment and ** spans segments.
func globMatch(glob, p string) bool {
	if !strings.Contains(glob, "**") {
		ok, err := path.Match(glob, p)
		return err == nil && ok
	}
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			if i+1 < len(glob) && glob[i+1] == '*' {
				i++
				if i+1 < len(glob) && glob[i+1] == '/' {
					i++
					re.WriteString("(?:.*/)?")
				} else {
					re.WriteString(".*")
				}
			} else {
				re.WriteString("[^/]*")
			}
		case '?':
			re.WriteString("[^/]")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	ok, _ := regexp.MatchString(re.String(), p)
	return ok
}

// download is the dataset/download op: the files of a hub repo at a
// pinned commit, laid out as in the repo under the output directory.
func download(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	var cfg downloadConfig
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	if cfg.ID == "" {
		return &sdk.Diagnostic{Summary: `config "hf_dataset_id": missing`, Attribute: "hf_dataset_id"}
	}
	repo := hfhub.Repo{Type: hfhub.Dataset, ID: cfg.ID}
	switch cfg.RepoType {
	case "", "dataset":
	case "model":
		repo.Type = hfhub.Model
	default:
		return &sdk.Diagnostic{Summary: fmt.Sprintf("repo_type %q: want dataset or model", cfg.RepoType), Attribute: "repo_type"}
	}
	client, err := hfhub.New()
	if err != nil {
		return err
	}
	out, err := storage.NormalizeURL(req.OutputPath)
	if err != nil {
		return fmt.Errorf("output path: %w", err)
	}
	r.Log("info", "resolving revision", "repo", repo.String(), "revision", cfg.Revision, "hub", client.String())
	commit, err := client.ResolveRevision(ctx, repo, cfg.Revision)
	if err != nil {
		return err
	}
	all, err := client.ListFiles(ctx, repo, commit.SHA, "")
	if err != nil {
		return err
	}
	files, err := selectFiles(all, cfg.FileGlobs)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("%s at %s: %v", repo, commit.SHA[:7], err), Attribute: "file_globs"}
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	r.Log("info", "downloading", "repo", repo.String(), "commit", commit.SHA, "files", fmt.Sprint(len(files)), "bytes", fmt.Sprint(total))

	local, localErr := sdk.LocalPath(out)
	var done atomic.Int64
	start := time.Now()
	report := func(msg string) {
		el := time.Since(start).Seconds()
		r.Progress(float64(done.Load()), float64(total), "bytes", fmt.Sprintf("%s: %.1f MB/s", msg, float64(done.Load())/max(el, 1e-9)/1e6))
	}
	stop := make(chan struct{})
	go every(2*time.Second, stop, func() { report(repo.ID) })
	defer close(stop)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, downloadParallel)
	)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func(f hfhub.File) {
			defer wg.Done()
			defer func() { <-sem }()
			var err error
			if localErr == nil {
				err = fetchLocal(dctx, client, repo, commit.SHA, f, filepath.Join(local, filepath.FromSlash(f.Path)), &done, r)
			} else {
				err = fetchRemote(dctx, client, repo, commit.SHA, f, storage.Join(out, f.Path), &done, r)
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}(f)
		if dctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	report("done")
	man := downloadManifest{Repo: cfg.ID, RepoType: string(repo.Type), Revision: cfg.Revision, Commit: commit.SHA, CommitDate: commit.LastModified}
	for _, f := range files {
		man.Files = append(man.Files, f)
	}
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	return storage.WriteAtomic(ctx, storage.Join(out, manifestFile), append(b, '\n'))
}

// selectFiles keeps the files matching any glob; every glob must match.
func selectFiles(all []hfhub.File, globs []string) ([]hfhub.File, error) {
	if len(globs) == 0 {
		return all, nil
	}
	var out []hfhub.File
	hits := make([]int, len(globs))
	for _, f := range all {
		for i, g := range globs {
			if globMatch(g, f.Path) {
				hits[i]++
				out = append(out, f)
				break
			}
		}
	}
	for i, g := range globs {
		if hits[i] == 0 {
			var names []string
			for _, f := range all {
				names = append(names, f.Path)
			}
			return nil, fmt.Errorf("file glob %q matches no file (files: %s)", g, listSome(names, 15))
		}
	}
	return out, nil
}

// fetchLocal downloads f to dst (resumable, verified).
func fetchLocal(ctx context.Context, c *hfhub.Client, repo hfhub.Repo, rev string, f hfhub.File, dst string, done *atomic.Int64, r sdk.Reporter) error {
	res, err := c.Download(ctx, repo, rev, f, dst, func(n int64) { done.Add(n) })
	if err != nil {
		return err
	}
	switch {
	case res.Skipped:
		done.Add(f.Size)
		r.Log("debug", "already downloaded and verified", "file", f.Path)
	case res.ResumedFrom > 0:
		r.Log("info", "resumed download", "file", f.Path, "from_byte", fmt.Sprint(res.ResumedFrom))
	}
	if res.Refetched > 0 {
		r.Log("warn", "corrupt copy fetched again", "file", f.Path, "times", fmt.Sprint(res.Refetched))
	}
	return nil
}

// fetchRemote downloads f through a local staging file (so interrupted
// downloads resume across runs on this machine) and uploads it to url.
// An object already at url with the right size and hash is kept.
func fetchRemote(ctx context.Context, c *hfhub.Client, repo hfhub.Repo, rev string, f hfhub.File, url string, done *atomic.Int64, r sdk.Reporter) error {
	if ok, err := verifyObject(ctx, url, f); err != nil {
		return err
	} else if ok {
		done.Add(f.Size)
		return nil
	}
	key := sha256.Sum256([]byte(repo.String() + "@" + rev + ":" + f.Path))
	stage := filepath.Join(os.TempDir(), "marin-hf-staging", hex.EncodeToString(key[:8])+"-"+path.Base(f.Path))
	if err := fetchLocal(ctx, c, repo, rev, f, stage, done, r); err != nil {
		return err
	}
	defer os.Remove(stage)
	in, err := os.Open(stage)
	if err != nil {
		return err
	}
	defer in.Close()
	err = storage.WriteAtomicFunc(ctx, url, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("upload %s: %w", url, err)
	}
	return nil
}

// verifyObject reports whether the object at url holds f.
func verifyObject(ctx context.Context, url string, f hfhub.File) (bool, error) {
	st, err := storage.Stat(ctx, url)
	if errors.Is(err, storage.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.Size != f.Size {
		return false, nil
	}
	if f.SHA256 == "" {
		return true, nil
	}
	b, k, err := storage.Open(ctx, url)
	if err != nil {
		return false, err
	}
	rd, err := b.NewReader(ctx, k, nil)
	if err != nil {
		return false, err
	}
	defer rd.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rd); err != nil {
		return false, fmt.Errorf("verify %s: %w", url, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == f.SHA256, nil
}
