package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/plugins/evaltasks"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// OpName is the op evaluate() and default_sft_eval() steps run; an engine
// plugin other than the default serves it as "{backend}/eval/harness".
const OpName = "eval/harness"

// Config is the op's config (what starlib's evaluate writes).
type Config struct {
	Model     string          `json:"model" schema:"required,nonempty" doc:"a training step's output, an hf/ export, a checkpoint directory or a hub id"`
	ModelName string          `json:"model_name,omitempty" doc:"labels the model in results and marin results"`
	Tokenizer string          `json:"tokenizer,omitempty" doc:"where the tokenizer files are, when not beside the model"`
	Suite     evaltasks.Suite `json:"suite" schema:"required" doc:"the task or group to run, definitions included"`
	Docs      string          `json:"docs" schema:"required,nonempty" doc:"the eval/docs step's output holding the documents"`
	Limit     float64         `json:"limit,omitempty" schema:"min=0" doc:"documents per task: a count, or a fraction below 1; 0: all"`
	// ApplyChatTemplate renders prompts with ChatFormat (default: the
	// model's own, else its tokenizer's template).
	ApplyChatTemplate  bool            `json:"apply_chat_template,omitempty" doc:"render prompts with the chat format"`
	ChatFormat         json.RawMessage `json:"chat_format,omitempty" doc:"the ChatFormat object (default: the model's, else the tokenizer's template)"`
	SystemInstruction  string          `json:"system_instruction,omitempty" doc:"prepended as the system message"`
	FewshotAsMultiturn bool            `json:"fewshot_as_multiturn,omitempty" doc:"few-shot examples as separate chat turns"`
	FewshotSeed        *int            `json:"fewshot_seed,omitempty" schema:"min=0" doc:"the default sampler's seed (lm-eval's 1234)"`
	BootstrapIters     *int            `json:"bootstrap_iters,omitempty" schema:"min=0" doc:"bootstrap resamples for perplexity's standard error (lm-eval's 100000)"`
	MaxLength          int             `json:"max_length,omitempty" schema:"min=0" doc:"positions per sequence, below the engine's"`
	// BatchSize, CodeSandbox and Resources do not change results and are
	// not hashed.
	BatchSize   int             `json:"batch_size,omitempty" schema:"min=0" doc:"requests sent to the engine at once"`
	CodeSandbox []string        `json:"code_sandbox,omitempty" doc:"argv running one Python file (its last argument) in isolation, for tasks that run model-written code"`
	Resources   json.RawMessage `json:"resources,omitempty" doc:"the ResourceConfig (which engine, devices)"`
}

// Schema is the op's config schema.
var Schema = schema.MustFromStruct(Config{})

// plan checks the task definitions while the host plans, so a bad
// template or a code-executing task without a sandbox stops the run
// before anything starts.
func plan(_ context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	res := &sdk.PlanResult{}
	var c Config
	if err := req.Decode(&c); err != nil {
		return res, nil // the schema check reports malformed configs
	}
	if err := c.Suite.Validate(); err != nil {
		res.Errorf("suite", "%v", err)
		return res, nil
	}
	for _, t := range c.Suite.Tasks {
		if _, err := newTaskTemplates(&t); err != nil {
			res.Errorf("suite", "%v", err)
		}
	}
	if u := c.Suite.UnsafeCode(); len(u) > 0 && len(c.CodeSandbox) == 0 {
		res.Errorf("code_sandbox", "%s executes model-written code; give a code_sandbox command", strings.Join(u, ", "))
	}
	return res, nil
}

// Op is eval/harness on one engine, for that engine's plugin.
func Op(backend string, factory EngineFactory) sdk.Op {
	return sdk.Op{
		Description: "evaluate a model on lm-evaluation-harness-style tasks (multiple_choice, loglikelihood, loglikelihood_rolling, generate_until); writes results.json and samples_{task}.jsonl",
		Schema:      Schema,
		Plan:        plan,
		Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
			var c Config
			if err := req.Decode(&c); err != nil {
				return err
			}
			return Run(ctx, c, req.OutputPath, r, backend, factory)
		},
	}
}

// Run evaluates and writes results.json and the samples under out.
func Run(ctx context.Context, c Config, out string, r sdk.Reporter, backend string, factory EngineFactory) error {
	if c.Model == "" {
		return &sdk.Diagnostic{Summary: "eval/harness: config \"model\" is missing", Attribute: "model"}
	}
	if c.Docs == "" {
		return &sdk.Diagnostic{Summary: "eval/harness: config \"docs\" is missing", Attribute: "docs"}
	}
	if err := c.Suite.Validate(); err != nil {
		return &sdk.Diagnostic{Summary: "eval/harness: " + err.Error(), Attribute: "suite"}
	}
	logf := func(f string, a ...any) { r.Log("info", fmt.Sprintf(f, a...)) }
	m, err := sample.Load(ctx, c.Model, c.Tokenizer, logf)
	if err != nil {
		return err
	}
	rows := c.BatchSize
	if rows <= 0 {
		rows = 16
	}
	eng, err := factory(m.Params, EngineOptions{Resources: c.Resources, Rows: rows, MaxLength: c.MaxLength})
	if err != nil {
		return err
	}
	if cl, ok := eng.(interface{ Close() error }); ok {
		defer cl.Close()
	}
	lm := &LM{Engine: eng, Tok: m.Tok, Vocab: m.Vocab, BatchSize: rows, MaxLength: c.MaxLength}
	if c.ApplyChatTemplate {
		if lm.Format, err = chatFormat(m, c.ChatFormat); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	started := map[string]time.Time{}
	lm.Progress = func(kind string, done, total int) {
		mu.Lock()
		t0, ok := started[kind]
		if !ok {
			t0 = time.Now()
			started[kind] = t0
		}
		mu.Unlock()
		rate := float64(done) / max(time.Since(t0).Seconds(), 1e-9)
		r.Progress(float64(done), float64(total), kind+" requests", fmt.Sprintf("%.1f items/s", rate))
	}
	o := Options{
		ContextOptions: ContextOptions{
			SystemInstruction:  c.SystemInstruction,
			ApplyChatTemplate:  c.ApplyChatTemplate,
			FewshotAsMultiturn: c.FewshotAsMultiturn,
			FewshotSeed:        evaltasks.DefaultFewshotSeed,
		},
		Limit:          c.Limit,
		BootstrapIters: 100000,
		CodeSandbox:    c.CodeSandbox,
		Log:            logf,
	}
	if c.FewshotSeed != nil {
		o.FewshotSeed = uint64(*c.FewshotSeed)
	}
	if c.BootstrapIters != nil {
		o.BootstrapIters = *c.BootstrapIters
	}
	res, err := Evaluate(ctx, &c.Suite, c.Docs, lm, o)
	if err != nil {
		return err
	}
	if man, err := ReadManifest(ctx, c.Docs); err == nil {
		res.Results.Data = map[string]DocsTask{}
		for _, t := range c.Suite.Tasks {
			if d, ok := man.Tasks[t.Task]; ok {
				res.Results.Data[t.Task] = d
			}
		}
	}
	name := c.ModelName
	if name == "" {
		name = c.Model
	}
	where, err := weights.Where(ctx, c.Model, m.Dir)
	if err != nil {
		return err
	}
	res.Results.ModelName = name
	res.Results.Date = float64(time.Now().Unix())
	res.Results.Config = map[string]any{
		"model":                "marin-" + backend,
		"model_args":           "pretrained=" + where,
		"model_name":           name,
		"batch_size":           lm.batch(),
		"limit":                nullIfZero(c.Limit),
		"bootstrap_iters":      o.BootstrapIters,
		"apply_chat_template":  c.ApplyChatTemplate,
		"fewshot_as_multiturn": c.FewshotAsMultiturn,
		"system_instruction":   nullIfEmpty(c.SystemInstruction),
		"fewshot_seed":         o.FewshotSeed,
		"max_length":           lm.maxLen(),
	}
	if lm.Format != nil {
		res.Results.Config["chat_template"] = lm.Format.Name()
	}
	if err := WriteOutput(ctx, out, res); err != nil {
		return err
	}
	for _, n := range append(groupNames(&c.Suite), leafNames(&c.Suite)...) {
		if k, v, ok := Headline(&c.Suite, &res.Results, n); ok {
			r.Log("info", fmt.Sprintf("%s %s = %.4f", n, k, v), "model", name)
		}
		if len(c.Suite.Groups) > 0 {
			break // the root group stands for the suite
		}
	}
	return nil
}

func groupNames(s *evaltasks.Suite) []string {
	var out []string
	for _, g := range s.Groups {
		out = append(out, g.Group)
	}
	return out
}

func leafNames(s *evaltasks.Suite) []string {
	var out []string
	for _, t := range s.Tasks {
		out = append(out, t.Task)
	}
	return out
}

func nullIfZero(f float64) any {
	if f == 0 {
		return nil
	}
	return f
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// WriteOutput writes results.json and samples_{task}.jsonl under out.
func WriteOutput(ctx context.Context, out string, res *Output) error {
	for _, task := range sortedTaskNames(res.Samples) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		for _, s := range res.Samples[task] {
			if err := enc.Encode(s); err != nil {
				return fmt.Errorf("samples of %s: %w", task, err)
			}
		}
		if err := storage.WriteAtomic(ctx, storage.Join(out, "samples_"+task+".jsonl"), b.Bytes()); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res.Results); err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	return storage.WriteAtomic(ctx, storage.Join(out, ResultsFile), b.Bytes())
}

// ResultsFile is the results file's name in an eval step's output.
const ResultsFile = "results.json"

// ReadResults reads an eval step's results.json.
func ReadResults(ctx context.Context, dir string) (*Results, error) {
	b, err := storage.ReadAll(ctx, storage.Join(dir, ResultsFile))
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", storage.Join(dir, ResultsFile), err)
	}
	return &r, nil
}

// MetricKeys lists a results entry's metric keys ("acc,none"), without
// standard errors, sorted.
func MetricKeys(tm TaskMetrics) []string {
	var out []string
	for k := range tm {
		if _, _, ok := splitKey(k); ok && !strings.HasPrefix(k, "sample") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
