package datasets

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// EvalDocsOp is the op that fetches evaluation tasks' documents.
const EvalDocsOp = "eval/docs"

// evalDocsConfig is eval/docs's config: the data of each task of a suite.
type evalDocsConfig struct {
	Tasks []evalDocsTask `json:"tasks" schema:"required,nonempty" doc:"each task's data"`
}

type evalDocsTask struct {
	Task        string `json:"task" schema:"required,nonempty" doc:"the task's name: its documents go to {task}/{split}.jsonl.gz"`
	DatasetPath string `json:"dataset_path,omitempty" doc:"the hub dataset (owner/name)"`
	DatasetName string `json:"dataset_name,omitempty" doc:"the subset (Hugging Face config name)"`
	Revision    string `json:"revision,omitempty" doc:"the commit (or branch, tag) to read"`
	// DataFiles maps a split to globs (relative to the repo root or to
	// Data); "{dataset_name}" stands for DatasetName. Without them a hub
	// split is found by the Hugging Face layout rules and a Data
	// directory is the first split.
	DataFiles map[string][]string `json:"data_files,omitempty" doc:"split -> file globs"`
	// Data is a directory or file URL (another step's output) instead of a
	// hub dataset.
	Data   string   `json:"data,omitempty" doc:"a directory or file of documents instead of a hub dataset"`
	Splits []string `json:"splits" schema:"required,nonempty" doc:"the splits to fetch"`
}

// SchemaRules: every task names one source.
func (evalDocsTask) SchemaRules() []schema.Rule {
	return []schema.Rule{{Kind: schema.ExactlyOneOf, Paths: []string{"dataset_path", "data"}}}
}

// evalDocsManifest is docs.json (backends/eval reads it as DocsManifest).
type evalDocsManifest struct {
	Tasks map[string]evalDocsTaskInfo `json:"tasks"`
}

type evalDocsTaskInfo struct {
	Dataset  string                       `json:"dataset,omitempty"`
	Subset   string                       `json:"subset,omitempty"`
	Revision string                       `json:"revision,omitempty"`
	Commit   string                       `json:"commit,omitempty"`
	Splits   map[string]evalDocsSplitInfo `json:"splits"`
}

type evalDocsSplitInfo struct {
	Rows  int            `json:"rows"`
	Files []evalDocsFile `json:"files"`
}

type evalDocsFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// evalDocs is the eval/docs op: each task's splits, from a hub dataset at a
// pinned revision (files downloaded under {out}/raw/, verified) or from a
// data directory, read (parquet, jsonl, json, csv) and written in dataset
// order as {out}/{task}/{split}.jsonl.gz, with docs.json recording where
// every row came from. A row that cannot be read fails the step: a dropped
// evaluation document would change the score.
func evalDocs(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	var cfg evalDocsConfig
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	if len(cfg.Tasks) == 0 {
		return &sdk.Diagnostic{Summary: "eval/docs: no tasks", Attribute: "tasks"}
	}
	out, err := storage.NormalizeURL(req.OutputPath)
	if err != nil {
		return fmt.Errorf("output path: %w", err)
	}
	man := evalDocsManifest{Tasks: map[string]evalDocsTaskInfo{}}
	var client *hfhub.Client
	type listing struct {
		commit hfhub.Commit
		files  []hfhub.File
	}
	listings := map[string]*listing{}
	fetched := map[string]bool{}
	var bytesDone atomic.Int64
	start := time.Now()
	for ti, t := range cfg.Tasks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if t.Task == "" || len(t.Splits) == 0 {
			return &sdk.Diagnostic{Summary: fmt.Sprintf("eval/docs: tasks[%d] needs a task name and splits", ti), Attribute: "tasks"}
		}
		r.Progress(float64(ti), float64(len(cfg.Tasks)), "tasks", t.Task)
		info := evalDocsTaskInfo{Subset: t.DatasetName, Revision: t.Revision, Splits: map[string]evalDocsSplitInfo{}}
		// splitFiles maps each split to the URLs to read and their records.
		splitURLs := map[string][]string{}
		splitFiles := map[string][]evalDocsFile{}
		switch {
		case t.DatasetPath != "" && t.Data != "":
			return &sdk.Diagnostic{Summary: fmt.Sprintf("eval/docs: task %s: give dataset_path or data, not both", t.Task)}
		case t.DatasetPath != "":
			info.Dataset = t.DatasetPath
			if client == nil {
				if client, err = hfhub.New(); err != nil {
					return err
				}
			}
			repo := hfhub.Repo{Type: hfhub.Dataset, ID: t.DatasetPath}
			key := t.DatasetPath + "@" + t.Revision
			l := listings[key]
			if l == nil {
				r.Log("info", "resolving revision", "repo", repo.String(), "revision", t.Revision, "hub", client.String())
				c, err := client.ResolveRevision(ctx, repo, t.Revision)
				if err != nil {
					return err
				}
				files, err := client.ListFiles(ctx, repo, c.SHA, "")
				if err != nil {
					return err
				}
				l = &listing{commit: c, files: files}
				listings[key] = l
			}
			info.Commit = l.commit.SHA
			for _, split := range t.Splits {
				sel, err := selectSplitFiles(l.files, t, split)
				if err != nil {
					return &sdk.Diagnostic{Summary: fmt.Sprintf("eval/docs: task %s: %s at %s: %v", t.Task, t.DatasetPath, short(l.commit.SHA), err), Attribute: "data_files"}
				}
				for _, f := range sel {
					dst := storage.Join(out, "raw", f.Path)
					if !fetched[dst] {
						if err := fetchFile(ctx, client, repo, l.commit.SHA, f, dst, &bytesDone, r); err != nil {
							return err
						}
						fetched[dst] = true
					}
					splitURLs[split] = append(splitURLs[split], dst)
					splitFiles[split] = append(splitFiles[split], evalDocsFile{Path: f.Path, Size: f.Size, SHA256: f.SHA256})
				}
			}
		case t.Data != "":
			info.Dataset = t.Data
			all, err := listDataFiles(ctx, t.Data)
			if err != nil {
				return fmt.Errorf("eval/docs: task %s: data %s: %w", t.Task, t.Data, err)
			}
			for i, split := range t.Splits {
				var sel []string
				if globs, ok := t.DataFiles[split]; ok {
					for _, g := range globs {
						n := 0
						for _, f := range all {
							if globMatch(expandName(g, t.DatasetName), f.rel) {
								sel = append(sel, f.url)
								n++
							}
						}
						if n == 0 {
							return &sdk.Diagnostic{Summary: fmt.Sprintf("eval/docs: task %s: split %s: %q matches no file under %s", t.Task, split, g, t.Data), Attribute: "data_files"}
						}
					}
				} else if i == 0 && len(t.DataFiles) == 0 {
					for _, f := range all {
						sel = append(sel, f.url)
					}
				} else {
					return &sdk.Diagnostic{Summary: fmt.Sprintf("eval/docs: task %s: split %s: say which files under %s hold it (data_files)", t.Task, split, t.Data), Attribute: "data_files"}
				}
				if len(sel) == 0 {
					return &sdk.Diagnostic{Summary: fmt.Sprintf("eval/docs: task %s: no data files under %s", t.Task, t.Data)}
				}
				splitURLs[split] = sel
				for _, u := range sel {
					splitFiles[split] = append(splitFiles[split], evalDocsFile{Path: u})
				}
			}
		default:
			return &sdk.Diagnostic{Summary: fmt.Sprintf("eval/docs: task %s: needs dataset_path or data", t.Task)}
		}
		for _, split := range t.Splits {
			n, err := writeSplit(ctx, storage.Join(out, t.Task, split+".jsonl.gz"), splitURLs[split])
			if err != nil {
				return fmt.Errorf("eval/docs: task %s: split %s: %w", t.Task, split, err)
			}
			if n == 0 {
				return fmt.Errorf("eval/docs: task %s: split %s has no rows", t.Task, split)
			}
			info.Splits[split] = evalDocsSplitInfo{Rows: n, Files: splitFiles[split]}
		}
		man.Tasks[t.Task] = info
	}
	r.Progress(float64(len(cfg.Tasks)), float64(len(cfg.Tasks)), "tasks", fmt.Sprintf("%.1f MB in %.1fs", float64(bytesDone.Load())/1e6, time.Since(start).Seconds()))
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	rows := 0
	for _, t := range man.Tasks {
		for _, s := range t.Splits {
			rows += s.Rows
		}
	}
	r.Log("info", fmt.Sprintf("wrote %d documents of %d tasks", rows, len(man.Tasks)))
	return storage.WriteAtomic(ctx, storage.Join(out, "docs.json"), append(b, '\n'))
}

// planEvalDocs pins, while the host plans, every hub revision that is not
// a commit (a branch such as "main") to the commit it names now, so the
// step's version (and every evaluation depending on it) holds the commit.
func planEvalDocs(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	res := &sdk.PlanResult{}
	var cfg evalDocsConfig
	if err := req.Decode(&cfg); err != nil {
		return res, nil // the host reports the schema's issues
	}
	var client *hfhub.Client
	changed := false
	for _, t := range cfg.Tasks {
		if t.Data != "" {
			return res, nil // a step's output: its path is in the version
		}
	}
	for i, t := range cfg.Tasks {
		if t.DatasetPath == "" || isCommitID(t.Revision) {
			continue
		}
		if client == nil {
			var err error
			if client, err = hfhub.New(); err != nil {
				res.Errorf(fmt.Sprintf("tasks.%d.revision", i), "%v", err)
				return res, nil
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		c, err := client.ResolveRevision(rctx, hfhub.Repo{Type: hfhub.Dataset, ID: t.DatasetPath}, t.Revision)
		cancel()
		if err != nil {
			res.Errorf(fmt.Sprintf("tasks.%d.revision", i), "task %s: cannot pin %s at %q (%v); name a commit", t.Task, t.DatasetPath, t.Revision, err)
			continue
		}
		res.Notes = append(res.Notes, fmt.Sprintf("%s: %s@%s is commit %s", t.Task, t.DatasetPath, t.Revision, c.SHA))
		cfg.Tasks[i].Revision = c.SHA
		changed = true
	}
	if changed && len(res.Diagnostics) == 0 {
		raw, err := json.Marshal(cfg.Tasks)
		if err != nil {
			return nil, err
		}
		var tasks any
		if err := json.Unmarshal(raw, &tasks); err != nil {
			return nil, err
		}
		res.Set = map[string]any{"tasks": tasks}
	}
	return res, nil
}

func isCommitID(rev string) bool {
	if len(rev) != 40 {
		return false
	}
	_, err := hex.DecodeString(rev)
	return err == nil && strings.ToLower(rev) == rev
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func expandName(glob, name string) string { return strings.ReplaceAll(glob, "{dataset_name}", name) }

// fetchFile downloads one hub file to dst (a local path or storage URL).
func fetchFile(ctx context.Context, c *hfhub.Client, repo hfhub.Repo, rev string, f hfhub.File, dst string, done *atomic.Int64, r sdk.Reporter) error {
	if local, err := sdk.LocalPath(dst); err == nil {
		return fetchLocal(ctx, c, repo, rev, f, local, done, r)
	}
	return fetchRemote(ctx, c, repo, rev, f, dst, done, r)
}

// isDataFile reports whether a name is a readable data file.
func isDataFile(name string) bool {
	if strings.HasSuffix(strings.ToLower(name), ".csv") {
		return true
	}
	f, _ := formatOf(name)
	return f != ""
}

// splitKeywords are the names Hugging Face's default layout rules accept
// for a split.
var splitKeywords = map[string][]string{
	"train":      {"train", "training"},
	"validation": {"validation", "valid", "dev", "val"},
	"test":       {"test", "testing", "eval", "evaluation"},
}

// selectSplitFiles picks a split's files from a repo listing: the task's
// data_files globs, or the Hugging Face layout rules (files under the
// subset's directory, else under data/, else anywhere, whose path names the
// split: "test-00000-of-00001.parquet", "piqa_validation.parquet"; when no
// file names any split, every data file is "train").
func selectSplitFiles(all []hfhub.File, t evalDocsTask, split string) ([]hfhub.File, error) {
	var names []string
	for _, f := range all {
		names = append(names, f.Path)
	}
	if globs, ok := t.DataFiles[split]; ok {
		var out []hfhub.File
		for _, g := range globs {
			g = expandName(g, t.DatasetName)
			n := 0
			for _, f := range all {
				if globMatch(g, f.Path) {
					out = append(out, f)
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("split %s: %q matches no file (files: %s)", split, g, listSome(names, 15))
			}
		}
		return out, nil
	}
	var data []hfhub.File
	for _, f := range all {
		if isDataFile(f.Path) {
			data = append(data, f)
		}
	}
	scope := func(prefix string) []hfhub.File {
		var in []hfhub.File
		for _, f := range data {
			if strings.HasPrefix(f.Path, prefix) {
				in = append(in, f)
			}
		}
		return in
	}
	pool, root := data, ""
	if t.DatasetName != "" {
		if in := scope(t.DatasetName + "/"); len(in) > 0 {
			pool, root = in, t.DatasetName+"/"
		}
	}
	if root == "" {
		if in := scope("data/"); len(in) > 0 {
			pool, root = in, "data/"
		}
	}
	words := []string{split}
	for _, w := range splitKeywords[split] {
		if w != split {
			words = append(words, w)
		}
	}
	for _, w := range words {
		if out := namingSplit(pool, root, w); len(out) > 0 {
			return out, nil
		}
	}
	// No file names any split: the datasets library reads them all as
	// "train" (a repo holding one ifeval_input_data.jsonl).
	if split == "train" && len(pool) > 0 {
		named := false
		for _, kws := range splitKeywords {
			for _, w := range kws {
				named = named || len(namingSplit(pool, root, w)) > 0
			}
		}
		if !named {
			out := append([]hfhub.File(nil), pool...)
			sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
			return out, nil
		}
	}
	return nil, fmt.Errorf("no file of split %q (files: %s); give data_files", split, listSome(names, 15))
}

// namingSplit returns the files of pool whose path below root names the
// split keyword w, sorted.
func namingSplit(pool []hfhub.File, root, w string) []hfhub.File {
	re := regexp.MustCompile(`(?i)(^|[-._ 0-9/])` + regexp.QuoteMeta(w) + `([-._ 0-9/]|$)`)
	var out []hfhub.File
	for _, f := range pool {
		if re.MatchString(strings.TrimPrefix(f.Path, root)) {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

type dataFile struct{ url, rel string }

// listDataFiles lists the data files under a directory or file URL, sorted.
func listDataFiles(ctx context.Context, loc string) ([]dataFile, error) {
	if local, err := sdk.LocalPath(loc); err == nil {
		fi, err := os.Stat(local)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return []dataFile{{url: local, rel: filepath.Base(local)}}, nil
		}
		var out []dataFile
		err = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || strings.HasPrefix(d.Name(), ".") || !isDataFile(d.Name()) {
				return nil
			}
			rel, _ := filepath.Rel(local, p)
			out = append(out, dataFile{url: p, rel: filepath.ToSlash(rel)})
			return nil
		})
		sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
		return out, err
	}
	entries, err := storage.List(ctx, strings.TrimRight(loc, "/")+"/", "")
	if err != nil {
		return nil, err
	}
	var out []dataFile
	base := strings.TrimRight(loc, "/") + "/"
	for _, e := range entries {
		rel := strings.TrimPrefix(e.URL, base)
		if isDataFile(path.Base(rel)) && !strings.HasPrefix(path.Base(rel), ".") {
			out = append(out, dataFile{url: e.URL, rel: rel})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

// writeSplit reads every row of the files, in order, and writes them as
// gzipped JSON lines to dst.
func writeSplit(ctx context.Context, dst string, urls []string) (int, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	enc.SetEscapeHTML(false)
	n := 0
	emit := func(m map[string]any) error {
		n++
		return enc.Encode(m)
	}
	for _, u := range urls {
		if strings.HasSuffix(strings.ToLower(u), ".csv") {
			if err := readCSV(ctx, u, emit); err != nil {
				return 0, err
			}
			continue
		}
		format, gz := formatOf(path.Base(u))
		var counted atomic.Int64
		rr, err := openRows(ctx, u, format, gz, &counted)
		if err != nil {
			return 0, err
		}
		for {
			rec, err := rr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return 0, err
			}
			if rec.bad != "" {
				rr.Close()
				return 0, fmt.Errorf("%s: row %d cannot be read (%s); an evaluation cannot drop documents", u, rec.loc, rec.bad)
			}
			if err := emit(rec.vals); err != nil {
				rr.Close()
				return 0, err
			}
		}
		rr.Close()
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return n, storage.WriteAtomic(ctx, dst, buf.Bytes())
}

// readCSV reads a CSV file with a header row. Columns whose every
// non-empty cell is an integer (or a number) become numbers, as pandas
// reads them for Hugging Face's csv loader; empty cells are null.
func readCSV(ctx context.Context, u string, emit func(map[string]any) error) error {
	var data []byte
	var err error
	if local, lerr := sdk.LocalPath(u); lerr == nil {
		data, err = os.ReadFile(local)
	} else {
		data, err = storage.ReadAll(ctx, u)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", u, err)
	}
	cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})))
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		return fmt.Errorf("read %s: %w", u, err)
	}
	if len(rows) == 0 {
		return nil
	}
	header := rows[0]
	kinds := make([]int, len(header)) // 0 int, 1 float, 2 string
	for _, row := range rows[1:] {
		for j := range header {
			if j >= len(row) || row[j] == "" {
				continue
			}
			if kinds[j] == 0 {
				if _, err := strconv.ParseInt(row[j], 10, 64); err != nil {
					kinds[j] = 1
				}
			}
			if kinds[j] == 1 {
				if _, err := strconv.ParseFloat(row[j], 64); err != nil {
					kinds[j] = 2
				}
			}
		}
	}
	for i, row := range rows[1:] {
		if len(row) > len(header) {
			return fmt.Errorf("read %s: line %d: %d fields, the header has %d", u, i+2, len(row), len(header))
		}
		m := make(map[string]any, len(header))
		for j, h := range header {
			if j >= len(row) || row[j] == "" {
				m[h] = nil
				continue
			}
			switch kinds[j] {
			case 0:
				v, _ := strconv.ParseInt(row[j], 10, 64)
				m[h] = v
			case 1:
				v, _ := strconv.ParseFloat(row[j], 64)
				m[h] = v
			default:
				m[h] = row[j]
			}
		}
		if err := emit(m); err != nil {
			return err
		}
	}
	return nil
}
