package starlib

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/marin-go/marin/host/graph"
)

// instructionDataset is one entry of the get_instruction_dataset registry.
type instructionDataset struct {
	ID        string // Hugging Face dataset id
	Name      string // short name used in output paths
	Revision  string // pinned commit
	FileType  string // parquet | jsonl | jsonl.gz | json
	FileGlobs []string
	Subsets   []string
	Splits    []string
	Adapter   string            // messages | sharegpt | instruction_response | orca | alpaca | dolly
	Fields    map[string]string // adapter column names and role renames
	DocCount  int64             // rows, when known
}

// RowsPerShard is the documents shard size, as in Python Marin.
const RowsPerShard = 5000

// Tokenizer and chat format presets, named as in Python Marin.
const Llama3InstructTokenizer = "meta-llama/Meta-Llama-3.1-8B-Instruct"

var chatFormatType = &recordType{
	name: "ChatFormat",
	fields: []field{
		{name: "name", kind: kindString, def: starlark.String("hf_template"),
			doc: "the rendering: a built-in format (the tokenize op's schema lists them), hf_template (the tokenizer's chat template), or plugin"},
		{name: "template", kind: kindString, optional: true, doc: "a Jinja chat template overriding the tokenizer's"},
		{name: "plugin", kind: kindString, optional: true, doc: "with name=\"plugin\": the format plugin that renders"},
		{name: "messages_field", kind: kindString, def: starlark.String("messages")},
		{name: "mask_user_turns", kind: kindBool, def: starlark.True, doc: "train only on assistant turns"},
		{name: "train_end_of_turn", kind: kindBool, def: starlark.True, doc: "train the token that ends each assistant turn"},
		{name: "pack", kind: kindBool, def: starlark.True, doc: "pack documents into sequences (False pads)"},
		{name: "system_prompt", kind: kindString, optional: true, doc: "default system prompt when a conversation has none"},
	},
	validate: func(r *Record) error {
		name, _ := starlark.AsString(r.Get("name"))
		_, hasPlugin := r.Get("plugin").(starlark.String)
		if name == "plugin" && !hasPlugin {
			return fmt.Errorf("name=\"plugin\" needs plugin=\"NAME\"")
		}
		if name != "plugin" && hasPlugin {
			return fmt.Errorf("plugin=%s is only used with name=\"plugin\"", r.Get("plugin"))
		}
		return nil
	},
}

func addDataBuiltins(env starlark.StringDict) {
	env["get_instruction_dataset"] = starlark.NewBuiltin("get_instruction_dataset", getInstructionDataset)
	env["default_tokenize"] = starlark.NewBuiltin("default_tokenize", defaultTokenize)
	env["lm_mixture_data_config"] = starlark.NewBuiltin("lm_mixture_data_config", lmMixtureDataConfig)
	env["ChatFormat"] = &recordConstructor{chatFormatType}
	env["llama3_instruct_tokenizer"] = starlark.String(Llama3InstructTokenizer)
	env["llama3_instruct_chat_format"] = mustPreset(chatFormatType, map[string]starlark.Value{"name": starlark.String("llama3_instruct")})
	env["chatml_chat_format"] = mustPreset(chatFormatType, map[string]starlark.Value{"name": starlark.String("chatml")})
}

func mustPreset(t *recordType, vals map[string]starlark.Value) *Record {
	var kw []starlark.Tuple
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kw = append(kw, starlark.Tuple{starlark.String(k), vals[k]})
	}
	r, err := newRecord(&starlark.Thread{}, t, t.name, nil, kw, nil, nil)
	if err != nil {
		panic(err)
	}
	return r
}

func lookupDataset(id string) (*instructionDataset, bool) {
	for i := range instructionDatasets {
		d := &instructionDatasets[i]
		if d.ID == id || d.Name == id {
			return d, true
		}
	}
	return nil, false
}

// KnownDatasets lists the registry's dataset ids.
func KnownDatasets() []string {
	var ids []string
	for _, d := range instructionDatasets {
		ids = append(ids, d.ID)
	}
	return ids
}

func starStrings(fn, arg string, v starlark.Value) ([]string, error) {
	if v == starlark.None {
		return nil, nil
	}
	if s, ok := v.(starlark.String); ok {
		return []string{string(s)}, nil
	}
	it, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("%s: %s must be a list of strings, got %s", fn, arg, v.Type())
	}
	var out []string
	iter := it.Iterate()
	defer iter.Done()
	var x starlark.Value
	for iter.Next(&x) {
		s, ok := starlark.AsString(x)
		if !ok {
			return nil, fmt.Errorf("%s: %s must hold strings, got %s", fn, arg, x.Type())
		}
		out = append(out, s)
	}
	return out, nil
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// get_instruction_dataset(dataset_name=None, splits=["train"], path=None, adapter=None, name=None, revision=None)
//
// A registry name yields a download step and a transform step (the one
// returned); a local path or storage URL yields only the transform step.
func getInstructionDataset(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		datasetName, path, adapter, name, revision string
		splitsV                                    starlark.Value = starlark.None
		fieldsV                                    starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"dataset_name?", &datasetName, "splits?", &splitsV, "path?", &path, "adapter?", &adapter,
		"name?", &name, "revision?", &revision, "fields?", &fieldsV); err != nil {
		return nil, err
	}
	splits, err := starStrings(b.Name(), "splits", splitsV)
	if err != nil {
		return nil, err
	}
	if len(splits) == 0 {
		splits = []string{"train"}
	}
	var fields map[string]any
	if fieldsV != starlark.None {
		fv, err := toConfig(fieldsV)
		if err != nil {
			return nil, fmt.Errorf("%s: fields: %w", b.Name(), err)
		}
		m, ok := fv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: fields must be a dict of column names", b.Name())
		}
		fields = m
	}

	switch {
	case datasetName != "" && path != "":
		return nil, fmt.Errorf("%s: give dataset_name or path, not both", b.Name())
	case datasetName == "" && path == "":
		return nil, fmt.Errorf("%s: give a dataset_name from the registry (e.g. \"allenai/tulu-3-sft-mixture\") or path=", b.Name())
	case path != "":
		return localDataset(thread, b.Name(), path, adapter, name, splits, fields)
	}

	d, ok := lookupDataset(datasetName)
	if !ok {
		close := closest(datasetName, KnownDatasets(), 5)
		msg := fmt.Sprintf("%s: unknown dataset %q", b.Name(), datasetName)
		if len(close) > 0 {
			msg += fmt.Sprintf("; close matches: %s", strings.Join(close, ", "))
		}
		return nil, fmt.Errorf("%s (known: %d datasets, see `marin datasets`; or pass path= for your own files)", msg, len(instructionDatasets))
	}
	rev := d.Revision
	if revision != "" {
		rev = revision
	}
	for _, s := range splits {
		if len(d.Splits) > 0 && !contains(d.Splits, s) {
			return nil, fmt.Errorf("%s: dataset %s has no split %q (splits: %s)", b.Name(), d.ID, s, strings.Join(d.Splits, ", "))
		}
	}
	if adapter == "" {
		adapter = d.Adapter
	}
	if fields == nil {
		fields = map[string]any{}
		roles := map[string]any{}
		for k, v := range d.Fields {
			switch {
			case k == "repo":
			case strings.HasPrefix(k, "role."):
				// Source role value -> chat role, e.g. ShareGPT's "human" -> "user".
				roles[strings.TrimPrefix(k, "role.")] = v
			default:
				fields[k] = v
			}
		}
		if len(roles) > 0 {
			fields["role_map"] = roles
		}
	}
	short := shortRev(rev)
	rawName := "raw/" + strings.ReplaceAll(d.ID, "/", "--") + "-" + short
	repo := d.ID
	if r := d.Fields["repo"]; r != "" {
		repo = r // registry keys may differ from the repo (two entries can share one)
	}
	download := newStep(thread, rawName, "dataset/download", map[string]any{
		"hf_dataset_id": repo,
		"revision":      rev,
		"file_globs":    stringsToAny(d.FileGlobs),
	})
	// A pinned revision fixes the content, so the raw copy has a stable path.
	download.s.OverrideOutputPath = rawName
	download.s.Description = "download " + d.ID + "@" + short

	if name == "" {
		name = d.Name
	}
	tr := newStep(thread, "documents/"+name+"-"+short, "dataset/transform", map[string]any{
		"input":          &graph.InputRef{Step: download.s},
		"source":         d.ID,
		"revision":       rev,
		"file_type":      d.FileType,
		"subsets":        stringsToAny(d.Subsets),
		"splits":         stringsToAny(splits),
		"adapter":        adapter,
		"fields":         fields,
		"rows_per_shard": int64(RowsPerShard),
	})
	tr.s.Description = "convert " + d.ID + " to documents"
	cs := site(thread)
	download.s.Sources = datasetSources(cs)
	tr.s.Sources = datasetSources(cs)
	return tr, nil
}

func shortRev(rev string) string {
	if len(rev) > 7 && isHex(rev) {
		return rev[:7]
	}
	return rev
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// localDataset makes a transform step over a local file or directory, or a
// storage URL. Local content is fingerprinted so editing the data changes
// the step's path, while the hash stays independent of where the checkout is.
func localDataset(thread *starlark.Thread, fn, path, adapter, name string, splits []string, fields map[string]any) (starlark.Value, error) {
	if adapter == "" {
		adapter = "messages"
	}
	cfg := map[string]any{
		"adapter":        adapter,
		"splits":         stringsToAny(splits),
		"fields":         fields,
		"rows_per_shard": int64(RowsPerShard),
	}
	if fields == nil {
		cfg["fields"] = map[string]any{}
	}
	if strings.Contains(path, "://") {
		cfg["input"] = path
		cfg["source"] = path
	} else {
		scriptDir := filepath.Dir(callerPos(thread).Filename())
		abs := path
		if !filepath.IsAbs(path) {
			abs = filepath.Join(scriptDir, path)
		}
		abs, _ = filepath.Abs(abs)
		sum, err := fingerprint(abs)
		if err != nil {
			return nil, fmt.Errorf("%s: path %q: %w", fn, path, err)
		}
		cfg["input"] = graph.Unversioned{Value: "file://" + filepath.ToSlash(abs)}
		cfg["source"] = filepath.ToSlash(path)
		cfg["content_sha256"] = sum
	}
	if name == "" {
		base := filepath.Base(strings.TrimRight(path, "/"))
		for _, ext := range []string{".gz", ".jsonl", ".json", ".parquet"} {
			base = strings.TrimSuffix(base, ext)
		}
		name = base
	}
	if err := checkStepName(fn, "documents/"+name); err != nil {
		return nil, err
	}
	st := newStep(thread, "documents/"+name, "dataset/transform", cfg)
	st.s.Description = "convert " + path + " to documents"
	st.s.Sources = datasetSources(site(thread))
	return st, nil
}

// datasetSources places a dataset step's config keys at the arguments of
// get_instruction_dataset that set them.
func datasetSources(cs *callSite) map[string]graph.Source {
	src := map[string]graph.Source{"": {Pos: posString(cs.pos), Attr: "get_instruction_dataset"}}
	for key, arg := range map[string]string{"adapter": "adapter", "splits": "splits", "fields": "fields",
		"revision": "revision", "input": "path", "source": "dataset_name", "hf_dataset_id": "dataset_name"} {
		if p, ok := cs.args[arg]; ok {
			src[key] = graph.Source{Pos: posString(p), Attr: "get_instruction_dataset." + arg}
		}
	}
	return src
}

// fingerprint hashes a file, or every file under a directory with its
// relative name, so local data edits change the version.
func fingerprint(root string) (string, error) {
	info, err := os.Stat(root)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	hashFile := func(p string) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	}
	if !info.IsDir() {
		if err := hashFile(root); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		return hashFile(p)
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// default_tokenize(name=None, dataset, tokenizer, format=None, is_validation=False)
func defaultTokenize(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, tokenizer string
		dataset         starlark.Value
		format          starlark.Value = starlark.None
		isValidation    bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name?", &name, "dataset", &dataset, "tokenizer", &tokenizer, "format?", &format, "is_validation?", &isValidation); err != nil {
		return nil, err
	}
	if tokenizer == "" {
		return nil, fmt.Errorf("%s: tokenizer must name a Hugging Face tokenizer (hub id or tokenizer.json path)", b.Name())
	}
	var input any
	switch d := dataset.(type) {
	case *Step:
		input = &graph.InputRef{Step: d.s}
		if name == "" {
			name = d.s.Name[strings.LastIndex(d.s.Name, "/")+1:]
		}
	case *InputName:
		input = d.ref
		if name == "" {
			name = d.ref.Step.Name[strings.LastIndex(d.ref.Step.Name, "/")+1:]
		}
	case starlark.String:
		input = string(d)
		if name == "" {
			return nil, fmt.Errorf("%s: name is required when dataset is a path", b.Name())
		}
	default:
		return nil, fmt.Errorf("%s: dataset must be a step from get_instruction_dataset or a path, got %s", b.Name(), dataset.Type())
	}
	if format == starlark.None {
		format = mustPreset(chatFormatType, map[string]starlark.Value{})
	}
	fr, ok := format.(*Record)
	if !ok || fr.typ != chatFormatType {
		return nil, fmt.Errorf("%s: format must be a chat format (e.g. llama3_instruct_chat_format or ChatFormat(...)), got %s", b.Name(), format.Type())
	}
	fc, err := fr.configValue()
	if err != nil {
		return nil, fmt.Errorf("%s: format: %w", b.Name(), err)
	}
	stepName := "tokenized/" + name
	if err := checkStepName(b.Name(), stepName); err != nil {
		return nil, err
	}
	st := newStep(thread, stepName, "tokenize", map[string]any{
		"input":         input,
		"tokenizer":     tokenizer,
		"format":        fc,
		"is_validation": isValidation,
	})
	st.s.Description = "tokenize " + name + " with " + tokenizer
	cs := site(thread)
	st.s.Sources = map[string]graph.Source{"": {Pos: posString(cs.pos), Attr: "default_tokenize"}}
	for key, arg := range map[string]string{"input": "dataset", "tokenizer": "tokenizer", "format": "format", "is_validation": "is_validation"} {
		st.s.Sources[key] = graph.Source{Pos: posString(cs.at(arg)), Attr: "default_tokenize." + arg}
	}
	fr.sources("format", st.s.Sources)
	return st, nil
}

// DatasetInfo describes a registry entry for listings.
type DatasetInfo struct {
	ID, Revision, FileType, Adapter string
	DocCount                        int64
}

// Datasets lists the registry.
func Datasets() []DatasetInfo {
	out := make([]DatasetInfo, 0, len(instructionDatasets))
	for _, d := range instructionDatasets {
		out = append(out, DatasetInfo{ID: d.ID, Revision: d.Revision, FileType: d.FileType, Adapter: d.Adapter, DocCount: d.DocCount})
	}
	return out
}
