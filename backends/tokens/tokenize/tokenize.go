// Package tokenize is the "tokenize" op behind default_tokenize: it reads a
// documents dataset ({input}/{subset}/{split}/shard_NNNNN.jsonl.gz, rows
// {"id", "messages": [{"role", "content"}], …}), renders every conversation
// with a chat format (backends/tokens/chat, or a format plugin), tokenizes it, and
// writes a token cache (backends/tokens/tokencache) into the step's output.
//
// Config, as starlib's default_tokenize writes it:
//
//	input          the documents: a storage URL or path of a directory (every
//	               *.jsonl.gz and *.jsonl under it, recursively) or a glob
//	               such as ".../**/*.jsonl.gz"
//	tokenizer      a tokenizer.json file, a directory holding one (and
//	               tokenizer_config.json), or a Hugging Face hub id
//	               ("org/name", "org/name@revision") fetched with plugins/hfhub
//	format         the ChatFormat object (see chat.Options)
//	is_validation  recorded in the manifest for the mixture loader
//
// One input shard becomes one cache shard. Conversations are rendered and
// tokenized on all cores, in batches, and written in input order, so a cache
// is byte-identical however many cores made it. A conversation with no
// trainable token, or one the format cannot render, is skipped and counted
// by reason (with a few examples) in the manifest; if every conversation is
// skipped the step fails. A rerun after a crash keeps every shard whose
// files are complete and verified and made from the same input, tokenizer
// and format, and redoes the rest. manifest.json is written last. An
// output in a bucket (gs://, s3://, …) is written in a local scratch
// directory and published shard by shard, each shard's .json after its
// data and the manifest after every shard.
package tokenize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokencache"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// OpName is the op default_tokenize steps run.
const OpName = "tokenize"

// codeVersion changes when this op would write different bytes for the same
// input, tokenizer and format; shards of another version are redone.
const codeVersion = "tokenize/1"

// Op is the tokenize op, for a plugin's op table.
func Op() sdk.Op {
	return sdk.Op{
		Description: "render conversations with a chat format, tokenize them and write a token cache (ids, loss mask, offsets)",
		Schema:      configSchema,
		Plan:        planStep,
		Run:         Run,
	}
}

// Config is the step config; its tags (and chat.Options' for format) are
// the op's schema.
type Config struct {
	Input        string          `json:"input" schema:"required,nonempty" doc:"the documents: a directory or glob of *.jsonl(.gz) shards"`
	Tokenizer    string          `json:"tokenizer" schema:"required,nonempty" doc:"a tokenizer.json, a directory holding one, or a hub id (org/name[@revision])"`
	Format       json.RawMessage `json:"format" doc:"the chat format (ChatFormat)"`
	IsValidation bool            `json:"is_validation" doc:"recorded in the manifest for the mixture loader"`
	// Pinned while planning (see plan.go); part of the version.
	TokenizerDigest   string `json:"tokenizer_digest" doc:"sha256 of a local tokenizer's files, pinned at plan time"`
	TokenizerRevision string `json:"tokenizer_revision" doc:"the commit a hub tokenizer resolved to, pinned at plan time"`
}

// configSchema is Config's, with format described by chat.Options.
var configSchema = func() *schema.Field {
	s := schema.MustFromStruct(Config{})
	for i, f := range s.Fields {
		if f.Name == "format" {
			fs := chat.OptionsSchema()
			fs.Name, fs.Doc, fs.Nullable = f.Name, f.Doc, true
			s.Fields[i] = fs
		}
	}
	return s
}()

// Run runs the op for one step.
func Run(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	var cfg Config
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	stage, err := storage.NewStage(req.OutputPath)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("tokenize output %s: %v", req.OutputPath, err)}
	}
	defer stage.Close()
	j := &Job{Config: cfg, Out: stage.Dir, Stage: stage, Plugins: req.Plugins, Report: r}
	return j.Run(ctx)
}

// Job is one tokenize run. Run calls it with the step's request; tests and
// benchmarks build one directly.
type Job struct {
	Config Config
	Out    string // the cache directory (local)
	// Stage, when its output is remote, receives each committed shard and
	// then the manifest (tokencache.PublishShard); nil: Out is the output.
	Stage   *storage.Stage
	Plugins []sdk.PluginEndpoint // format plugins the host knows
	Report  sdk.Reporter         // may be nil
	Workers int                  // 0: GOMAXPROCS

	// afterShard, in tests, runs after shard i is committed; an error
	// stops the job there, like a crash.
	afterShard func(i int) error

	// Filled in by Run.
	Stats Stats
}

// Stats says what a run did.
type Stats struct {
	Shards, ShardsReused int
	Counts               tokencache.Counts
	Elapsed              time.Duration
	NewTokens            int64 // tokens written by this run (not reused)
}

// TokensPerSecond is the throughput of this run over the shards it wrote.
func (s Stats) TokensPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.NewTokens) / s.Elapsed.Seconds()
}

// remote reports whether the job's output is a storage URL.
func (j *Job) remote() bool { return j.Stage != nil && j.Stage.Remote() }

// Run tokenizes every input shard not already in the cache and writes the
// manifest.
func (j *Job) Run(ctx context.Context) error {
	start := time.Now()
	if j.Report == nil {
		j.Report = nopReporter{}
	}
	if j.Workers <= 0 {
		j.Workers = runtime.GOMAXPROCS(0)
	}
	c := j.Config
	if c.Input == "" {
		return &sdk.Diagnostic{Summary: `config "input": missing (the documents to tokenize)`, Attribute: "input"}
	}
	if c.Tokenizer == "" {
		return &sdk.Diagnostic{Summary: `config "tokenizer": missing (a tokenizer.json path or hub id)`, Attribute: "tokenizer"}
	}
	opts, err := chat.ParseOptions(c.Format)
	if err != nil {
		return &sdk.Diagnostic{Summary: err.Error(), Attribute: "format"}
	}

	name := c.Tokenizer
	if c.TokenizerRevision != "" && !strings.Contains(name, "@") {
		name += "@" + c.TokenizerRevision
	}
	tf, err := loadTokenizer(ctx, name, j.Report)
	if err != nil {
		return &sdk.Diagnostic{Summary: err.Error(), Attribute: "tokenizer"}
	}
	if err := checkPinned(c, tf, opts); err != nil {
		return &sdk.Diagnostic{Summary: err.Error(), Attribute: "tokenizer"}
	}
	tok, err := tokenizer.FromBytes(tf.JSON)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("tokenizer %s: %v", tf.JSONPath, err), Attribute: "tokenizer"}
	}
	vocab, err := chat.NewVocab(tok, tf.JSON, tf.Config)
	if err != nil {
		return &sdk.Diagnostic{Summary: fmt.Sprintf("tokenizer %s: %v", tf.JSONPath, err), Attribute: "tokenizer"}
	}

	if tf.Config == nil && opts.Name != chat.NamePlugin {
		j.Report.Log("warn", "no tokenizer_config.json next to the tokenizer: templates get empty bos_token and eos_token, built-in formats guess them from the special tokens",
			"tokenizer", tf.JSONPath)
	}
	var format chat.Format
	var pluginInfo *tokencache.PluginInfo
	if opts.Name == chat.NamePlugin {
		pf, err := startPluginFormat(ctx, opts, c.Format, j.Plugins)
		if err != nil {
			return &sdk.Diagnostic{Summary: err.Error(), Attribute: "format"}
		}
		defer pf.Close()
		format = pf
		pluginInfo = &tokencache.PluginInfo{Name: pf.fc.Endpoint.Name, Version: pf.fc.Endpoint.Version}
	} else if format, err = chat.New(opts, vocab); err != nil {
		return &sdk.Diagnostic{Summary: err.Error(), Attribute: "format"}
	}

	inputs, err := listInputs(ctx, c.Input)
	if err != nil {
		return &sdk.Diagnostic{Summary: err.Error(), Attribute: "input"}
	}
	if err := tokencache.Clean(j.Out); err != nil {
		return fmt.Errorf("clean %s: %w", j.Out, err)
	}

	fp := fingerprint(tf.SHA256, opts, pluginInfo)
	run := &shardRun{job: j, format: format, enc: chat.NewEncoder(vocab), fingerprint: fp, messagesField: opts.MessagesField}
	m := &tokencache.Manifest{
		Tokenizer:    tokencache.TokenizerInfo{Name: c.Tokenizer, File: tf.JSONPath, SHA256: tf.SHA256, VocabSize: tok.VocabSize()},
		Format:       canonicalFormat(opts),
		FormatPlugin: pluginInfo,
		IsValidation: c.IsValidation,
		Input:        c.Input,
	}
	j.Stats = Stats{Shards: len(inputs)}
	prog := newProgress(j.Report, inputs)
	for i, in := range inputs {
		name := tokencache.ShardName(i)
		info, reused := j.reusable(ctx, name, in, fp)
		if !reused {
			if info, err = run.shard(ctx, name, in, prog); err != nil {
				return err
			}
			if j.remote() {
				if err := tokencache.PublishShard(ctx, j.Out, j.Stage.URL, info); err != nil {
					return err
				}
			}
			j.Stats.NewTokens += info.Counts.Tokens
		} else {
			j.Stats.ShardsReused++
			j.Report.Log("info", "kept a complete shard from an earlier attempt", "shard", name, "source", in.Rel)
		}
		prog.shardDone(in, info.Counts.Tokens, reused)
		m.Shards = append(m.Shards, info)
		j.Stats.Counts.Add(info.Counts)
		if j.afterShard != nil {
			if err := j.afterShard(i); err != nil {
				return err
			}
		}
	}
	j.Stats.Elapsed = time.Since(start)

	counts := j.Stats.Counts
	if counts.Documents == 0 && counts.Conversations > 0 {
		return &sdk.Diagnostic{
			Summary:   fmt.Sprintf("every one of the %d conversations was skipped (%s): the format %s trains no token of this data", counts.Conversations, skipSummary(counts.Skipped), format.Name()),
			Detail:    examplesText(m.Shards),
			Attribute: "format",
		}
	}
	m.SkipExamples = mergeExamples(m.Shards, 5)
	if err := tokencache.WriteManifest(j.Out, m); err != nil {
		return err
	}
	if j.remote() {
		if err := tokencache.PublishManifest(ctx, j.Out, j.Stage.URL); err != nil {
			return err
		}
	}
	j.Report.Log("info", "token cache written",
		"documents", strconv.FormatInt(counts.Documents, 10), "tokens", strconv.FormatInt(counts.Tokens, 10),
		"trainable_tokens", strconv.FormatInt(counts.TrainableTokens, 10), "skipped", skipSummary(counts.Skipped),
		"shards", strconv.Itoa(len(inputs)), "reused_shards", strconv.Itoa(j.Stats.ShardsReused),
		"tokens_per_s", strconv.FormatFloat(j.Stats.TokensPerSecond(), 'f', 0, 64))
	return nil
}

// reusable reports whether shard name is committed, verified and made from
// the same input with the same tokenizer, format and code.
func (j *Job) reusable(ctx context.Context, name string, in inputShard, fp string) (tokencache.ShardInfo, bool) {
	read := func() (tokencache.ShardInfo, error) { return tokencache.ReadShardInfo(j.Out, name) }
	verify := func(info tokencache.ShardInfo) error { return tokencache.VerifyShard(j.Out, info) }
	if j.remote() {
		read = func() (tokencache.ShardInfo, error) { return tokencache.ReadShardInfoURL(ctx, j.Stage.URL, name) }
		verify = func(info tokencache.ShardInfo) error { return tokencache.CheckShardURL(ctx, j.Stage.URL, info) }
	}
	info, err := read()
	if err != nil {
		return tokencache.ShardInfo{}, false
	}
	if info.Source != in.Rel || info.SourceBytes != in.Size || info.Fingerprint != fp {
		return tokencache.ShardInfo{}, false
	}
	if err := verify(info); err != nil {
		j.Report.Log("warn", "redoing a damaged shard", "shard", name, "error", err.Error())
		return tokencache.ShardInfo{}, false
	}
	return info, true
}

// canonicalFormat is the format options as recorded in the manifest.
func canonicalFormat(o chat.Options) json.RawMessage {
	raw, _ := json.Marshal(o)
	return raw
}

// fingerprint identifies what a shard's bytes depend on besides its input.
func fingerprint(tokSHA string, o chat.Options, plugin *tokencache.PluginInfo) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", codeVersion, tokSHA, canonicalFormat(o))
	if plugin != nil {
		fmt.Fprintf(h, "plugin %s %s\n", plugin.Name, plugin.Version)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func skipSummary(skipped map[string]int64) string {
	if len(skipped) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(skipped))
	for k := range skipped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, skipped[k])
	}
	return strings.Join(parts, ", ")
}

// mergeExamples keeps up to n examples per reason across shards.
func mergeExamples(shards []tokencache.ShardInfo, n int) []tokencache.SkipExample {
	per := map[string]int{}
	var out []tokencache.SkipExample
	for _, s := range shards {
		for _, e := range s.SkipExamples {
			if per[e.Reason] < n {
				per[e.Reason]++
				out = append(out, e)
			}
		}
	}
	return out
}

func examplesText(shards []tokencache.ShardInfo) string {
	var b strings.Builder
	for _, e := range mergeExamples(shards, 3) {
		fmt.Fprintf(&b, "%s: document %s in %s", e.Reason, e.Doc, e.Source)
		if e.Detail != "" {
			fmt.Fprintf(&b, ": %s", e.Detail)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

type nopReporter struct{}

func (nopReporter) Progress(done, total float64, unit, msg string) {}
func (nopReporter) Log(level, msg string, kv ...string)            {}
