package datasets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/marin-go/marin/plugins/documents"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// transformConfig is dataset/transform's config (see starlib's
// get_instruction_dataset).
type transformConfig struct {
	Input         string         `json:"input" schema:"required,nonempty" doc:"raw directory, file, or storage URL"`
	Source        string         `json:"source" doc:"the rows' source value"`
	Revision      string         `json:"revision" doc:"informational"`
	FileType      string         `json:"file_type" schema:"enum=parquet|jsonl|jsonl.gz|json" doc:"empty: by extension"`
	Subsets       []string       `json:"subsets" doc:"default [default]"`
	Splits        []string       `json:"splits" doc:"default [train]"`
	Adapter       string         `json:"adapter" doc:"how rows become conversations"`
	Fields        map[string]any `json:"fields" doc:"column names, role_map, metadata"`
	RowsPerShard  int            `json:"rows_per_shard" schema:"min=0" doc:"documents per shard (0: 5000)"`
	ContentSHA256 string         `json:"content_sha256" doc:"local inputs: fingerprint (only hashed)"`
}

// inputFile is one data file of the input and where its rows go.
type inputFile struct {
	url, rel      string
	format        string
	gz            bool
	subset, split string
}

// hfShard matches the Hugging Face layout {split}-00000-of-00003[-hash].ext.
var hfShard = regexp.MustCompile(`^(.+?)-\d{5}-of-\d{5}`)

// splitOf says which split a file belongs to: the Hugging Face shard name
// prefix, a directory named after a requested split, or a file stem equal
// to one. "" means the name does not say.
func splitOf(rel string, splits []string) string {
	base := path.Base(rel)
	if m := hfShard.FindStringSubmatch(base); m != nil {
		return m[1]
	}
	dirs := strings.Split(path.Dir(rel), "/")
	for _, s := range splits {
		for _, d := range dirs {
			if d == s {
				return s
			}
		}
	}
	stem := base[:len(base)-len(path.Ext(base))]
	stem = strings.TrimSuffix(stem, ".jsonl")
	stem = strings.TrimSuffix(stem, ".json")
	for _, s := range splits {
		if stem == s {
			return s
		}
	}
	return ""
}

// subsetOf picks the subset a file belongs to: a directory named after it,
// or the longest subset name appearing in the file name as a whole word
// (dolphin-r1-reasoning-deepseek.jsonl → reasoning-deepseek).
func subsetOf(rel string, subsets []string) string {
	if len(subsets) == 1 {
		return subsets[0]
	}
	best := ""
	dirs := strings.Split(path.Dir(rel), "/")
	base := path.Base(rel)
	for _, s := range subsets {
		hit := false
		for _, d := range dirs {
			hit = hit || d == s
		}
		for i := strings.Index(base, s); i >= 0 && !hit; {
			before := i == 0 || !isWordByte(base[i-1])
			j := i + len(s)
			after := j == len(base) || !isWordByte(base[j])
			hit = before && after
			k := strings.Index(base[i+1:], s)
			if k < 0 {
				break
			}
			i += 1 + k
		}
		if hit && len(s) > len(best) {
			best = s
		}
	}
	return best
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// hidden reports whether a relative path has a component starting with
// "." (.executor_info, .marin_download.json, …).
func hidden(rel string) bool {
	for _, c := range strings.Split(rel, "/") {
		if strings.HasPrefix(c, ".") {
			return true
		}
	}
	return false
}

// fileTypeAccepts reports whether files of format/gz may be read under
// the configured file_type.
func fileTypeAccepts(fileType, format string, gz bool) bool {
	switch fileType {
	case "":
		return true
	case "parquet":
		return format == formatParquet
	case "jsonl", "jsonl.gz":
		return format == formatJSONL
	case "json", "json.gz":
		return format == formatJSON || format == formatJSONL
	}
	return false
}

// listInputs finds the data files of cfg.Input and assigns each a subset
// and split.
func listInputs(ctx context.Context, cfg *transformConfig) ([]inputFile, error) {
	root, err := storage.NormalizeURL(cfg.Input)
	if err != nil {
		return nil, &sdk.Diagnostic{Summary: fmt.Sprintf("input %q: %v", cfg.Input, err), Attribute: "input"}
	}
	var rels []string
	var urls []string
	if f, _ := formatOf(root); f != "" {
		if ok, err := storage.Exists(ctx, root); err == nil && ok {
			rels, urls = []string{path.Base(root)}, []string{root}
		}
	}
	if len(urls) == 0 {
		entries, err := storage.List(ctx, root+"/", "")
		if err != nil {
			return nil, fmt.Errorf("list input %s: %w", root, err)
		}
		for _, e := range entries {
			if e.IsDir {
				continue
			}
			rel := strings.TrimPrefix(e.URL, root+"/")
			if hidden(rel) {
				continue
			}
			rels = append(rels, rel)
			urls = append(urls, e.URL)
		}
	}
	if len(urls) == 0 {
		return nil, &sdk.Diagnostic{Summary: fmt.Sprintf("input %s: no such file, or an empty directory", root), Attribute: "input"}
	}
	subsets := cfg.Subsets
	if len(subsets) == 0 {
		subsets = []string{"default"}
	}
	var files []inputFile
	for i, rel := range rels {
		format, gz := formatOf(rel)
		if format == "" || !fileTypeAccepts(cfg.FileType, format, gz) {
			continue // README.md, .gitattributes, partial downloads, …
		}
		split := splitOf(rel, cfg.Splits)
		if split == "" {
			if len(cfg.Splits) != 1 {
				return nil, &sdk.Diagnostic{Summary: fmt.Sprintf("input %s: cannot tell which of the splits %s the file %s belongs to", root, strings.Join(cfg.Splits, ", "), rel),
					Detail: "name files {split}-00000-of-00001.ext, {split}.ext or put them in a directory named after the split", Attribute: "splits"}
			}
			split = cfg.Splits[0]
		}
		if !contains(cfg.Splits, split) {
			continue
		}
		subset := subsetOf(rel, subsets)
		if subset == "" {
			continue
		}
		files = append(files, inputFile{url: urls[i], rel: rel, format: format, gz: gz, subset: subset, split: split})
	}
	for _, sub := range subsets {
		for _, sp := range cfg.Splits {
			found := false
			for _, f := range files {
				found = found || (f.subset == sub && f.split == sp)
			}
			if !found {
				msg := fmt.Sprintf("input %s: no %s files for subset %q, split %q", root, orAny(cfg.FileType), sub, sp)
				return nil, &sdk.Diagnostic{Summary: msg, Detail: "files there: " + listSome(rels, 20), Attribute: "input"}
			}
		}
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, nil
}

func orAny(ft string) string {
	if ft == "" {
		return "data"
	}
	return ft
}

func listSome(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(", … (%d more)", len(s)-n)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// downloadManifest is written by dataset/download as .marin_download.json.
type downloadManifest struct {
	Repo       string    `json:"repo"`
	RepoType   string    `json:"repo_type"`
	Revision   string    `json:"revision"`
	Commit     string    `json:"commit"`
	CommitDate time.Time `json:"commit_date,omitzero"`
	Files      []any     `json:"files"`
}

// manifestFile is the name of the download manifest inside a raw directory.
const manifestFile = ".marin_download.json"

// addedDate is the rows' "added": the commit date of a downloaded source
// (deterministic, unlike the wall clock Marin uses), "" for local data.
func addedDate(ctx context.Context, input string) string {
	root, err := storage.NormalizeURL(input)
	if err != nil {
		return ""
	}
	b, err := storage.ReadAll(ctx, storage.Join(root, manifestFile))
	if err != nil {
		return ""
	}
	var m downloadManifest
	if json.Unmarshal(b, &m) != nil || m.CommitDate.IsZero() {
		return ""
	}
	return m.CommitDate.UTC().Format(time.RFC3339)
}

// meter tracks rows and bytes for progress reports.
type meter struct {
	rows, bytes atomic.Int64
	total       atomic.Int64 // rows expected, 0 if unknown
	what        atomic.Value // string: what is being read
	start       time.Time
}

func (m *meter) report(r sdk.Reporter) {
	el := time.Since(m.start).Seconds()
	if el <= 0 {
		el = 1e-9
	}
	rows, bytes := m.rows.Load(), m.bytes.Load()
	what, _ := m.what.Load().(string)
	r.Progress(float64(rows), float64(m.total.Load()), "rows",
		fmt.Sprintf("%s: %.0f rows/s, %.1f MB/s", what, float64(rows)/el, float64(bytes)/el/1e6))
}

// every calls f every d until stop is closed.
func every(d time.Duration, stop <-chan struct{}, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f()
		case <-stop:
			return
		}
	}
}

// transform is the dataset/transform op.
func transform(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	var cfg transformConfig
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	if cfg.Input == "" {
		return &sdk.Diagnostic{Summary: `config "input": missing`, Attribute: "input"}
	}
	if len(cfg.Splits) == 0 {
		cfg.Splits = []string{"train"}
	}
	if cfg.Adapter == "" {
		cfg.Adapter = adapterMessages
	}
	if cfg.Source == "" {
		cfg.Source = cfg.Input
	}
	switch cfg.FileType {
	case "", "parquet", "jsonl", "jsonl.gz", "json", "json.gz":
	default:
		return &sdk.Diagnostic{Summary: fmt.Sprintf("file_type %q: want parquet, jsonl, jsonl.gz or json", cfg.FileType), Attribute: "file_type"}
	}
	ad, err := newAdapter(cfg.Adapter, cfg.Fields)
	if err != nil {
		return &sdk.Diagnostic{Summary: err.Error(), Attribute: "fields"}
	}
	out, err := storage.NormalizeURL(req.OutputPath)
	if err != nil {
		return fmt.Errorf("output path: %w", err)
	}
	files, err := listInputs(ctx, &cfg)
	if err != nil {
		return err
	}
	added := addedDate(ctx, cfg.Input)
	stats := documents.NewStats(cfg.Source, cfg.Adapter)
	m := &meter{start: time.Now()}
	m.what.Store("starting")
	stop := make(chan struct{})
	go every(2*time.Second, stop, func() { m.report(r) })
	defer close(stop)

	type group struct{ subset, split string }
	var order []group
	byGroup := map[group][]inputFile{}
	for _, f := range files {
		g := group{f.subset, f.split}
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], f)
	}
	sort.SliceStable(order, func(i, j int) bool {
		return indexOf(cfg.Subsets, order[i].subset) < indexOf(cfg.Subsets, order[j].subset) ||
			order[i].subset == order[j].subset && indexOf(cfg.Splits, order[i].split) < indexOf(cfg.Splits, order[j].split)
	})
	for _, g := range order {
		sp := stats.Split(g.subset, g.split)
		dir := storage.Join(out, g.subset, g.split)
		res, err := transformSplit(ctx, byGroup[g], dir, cfg, ad, added, stats, sp, m)
		if err != nil {
			return err
		}
		sp.Shards = res.Shards
		r.Log("info", "wrote split", "subset", g.subset, "split", g.split, "rows", fmt.Sprint(sp.RowsWritten),
			"dropped", fmt.Sprint(sp.RowsRead-sp.RowsWritten), "shards", fmt.Sprint(res.Shards))
	}
	m.what.Store("done")
	m.report(r)
	if err := stats.Write(ctx, out); err != nil {
		return err
	}
	for reason, n := range stats.RowsDropped {
		r.Log("warn", "dropped rows", "reason", reason, "rows", fmt.Sprint(n), "examples", strings.Join(stats.DropExamples[reason], " "))
	}
	if stats.RowsWritten == 0 {
		return &sdk.Diagnostic{
			Summary: fmt.Sprintf("transform %s: no usable rows: %d read, all dropped (%s)", cfg.Source, stats.RowsRead, stats.DropSummary()),
			Detail:  fmt.Sprintf("adapter %q with fields %v; see %s for example rows", cfg.Adapter, cfg.Fields, storage.Join(out, documents.StatsFile)),
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return len(list)
}

// transformSplit converts the files of one subset/split into shards under dir.
func transformSplit(ctx context.Context, files []inputFile, dir string, cfg transformConfig, ad *adapter, added string,
	stats *documents.Stats, sp *documents.SplitStats, m *meter) (documents.Result, error) {
	w := documents.NewWriter(ctx, dir, documents.WriterOptions{RowsPerShard: cfg.RowsPerShard})
	fail := func(err error) (documents.Result, error) {
		w.Abort()
		return documents.Result{}, err
	}
	var buf []byte
	for _, f := range files {
		sp.Files = append(sp.Files, f.rel)
		m.what.Store(f.subset + "/" + f.split + " " + f.rel)
		rr, err := openRows(ctx, f.url, f.format, f.gz, &m.bytes)
		if err != nil {
			return fail(err)
		}
		if n := rr.NumRows(); n > 0 {
			m.total.Add(n)
		}
		for {
			rec, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rr.Close()
				return fail(err)
			}
			stats.Read(sp)
			m.rows.Add(1)
			if rec.bad != "" {
				stats.Dropped(sp, rec.bad, fmt.Sprintf("%s:%d", f.rel, rec.loc))
				continue
			}
			msgs, reason := ad.convert(rec.vals)
			if reason != "" {
				stats.Dropped(sp, reason, fmt.Sprintf("%s:%d", f.rel, rec.loc))
				continue
			}
			doc := documents.Document{Source: cfg.Source, Messages: msgs, Added: added, Metadata: ad.metadata(rec.vals)}
			if buf, err = documents.AppendJSON(buf[:0], &doc); err != nil {
				rr.Close()
				return fail(fmt.Errorf("read %s: line %d: %w", f.url, rec.loc, err))
			}
			if err := w.WriteLine(buf); err != nil {
				rr.Close()
				return fail(err)
			}
			stats.Written(sp)
			if rec.loc%4096 == 0 && ctx.Err() != nil {
				rr.Close()
				return fail(ctx.Err())
			}
		}
		if err := rr.Close(); err != nil {
			return fail(fmt.Errorf("close %s: %w", f.url, err))
		}
	}
	res, err := w.Close()
	if err != nil {
		return res, err
	}
	if res.Rows != sp.RowsWritten {
		return res, errors.New("internal error: shard rows do not add up")
	}
	return res, nil
}
