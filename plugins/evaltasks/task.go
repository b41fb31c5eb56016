// Package evaltasks holds evaluation task definitions: data in the shape of
// EleutherAI lm-evaluation-harness task configs (its lm_eval/tasks/*/*.yaml),
// and the registry of the standard benchmarks marin ships with pinned
// dataset revisions.
//
// A Task is one lm-eval task: a dataset (hub id + dataset_kwargs.revision +
// subset + splits, or marin's `data`, a directory of files a step wrote), the
// few-shot split, count and sampler, the doc_to_text / doc_to_target /
// doc_to_choice Jinja templates, the target and few-shot delimiters, an
// output type (multiple_choice, loglikelihood, loglikelihood_rolling,
// generate_until), filters and metrics. A Group aggregates tasks (mmlu is a
// group of four groups of 57 subjects). A Suite is what one evaluation step
// runs: a task or a group with every task below it.
//
// The registry (registry/*.yaml, embedded) is written in lm-eval's YAML
// shape, `include:` included. Python hooks (`!function utils.x`) cannot run
// here: the registry names marin's Go implementations instead
// (process_docs: hellaswag, process_results: ifeval) and everything else is a
// template. Users define tasks in a script (EvalTask in starlib) or load an
// lm-eval-shaped YAML file (Parse).
//
// This package is data and validation only; backends/eval runs the tasks
// and plugins/datasets fetches their documents.
package evaltasks

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Output types.
const (
	MultipleChoice       = "multiple_choice"
	Loglikelihood        = "loglikelihood"
	LoglikelihoodRolling = "loglikelihood_rolling"
	GenerateUntil        = "generate_until"
)

// OutputTypes lists the output types, for messages.
var OutputTypes = []string{MultipleChoice, Loglikelihood, LoglikelihoodRolling, GenerateUntil}

// ProcessDocsNames are the document preprocessors backends/eval implements
// (lm-eval's `process_docs: !function utils.process_docs` for these tasks).
var ProcessDocsNames = []string{"gpqa", "hellaswag", "musr"}

// ProcessResultsNames are the custom scorers backends/eval implements.
var ProcessResultsNames = []string{"ifeval"}

// FilterFunctions are the filters backends/eval implements (lm-eval's
// filter registry names).
var FilterFunctions = []string{"lowercase", "majority_vote", "regex", "remove_whitespace", "take_first", "take_first_k", "uppercase"}

// Metrics are the metric names backends/eval implements, with the output
// types each applies to and its default aggregation.
var Metrics = map[string]MetricInfo{
	"acc":                     {Types: []string{MultipleChoice, Loglikelihood}, Aggregation: "mean", HigherIsBetter: true},
	"acc_norm":                {Types: []string{MultipleChoice}, Aggregation: "mean", HigherIsBetter: true},
	"acc_bytes":               {Types: []string{MultipleChoice}, Aggregation: "mean", HigherIsBetter: true},
	"acc_mutual_info":         {Types: []string{MultipleChoice}, Aggregation: "mean", HigherIsBetter: true},
	"exact_match":             {Types: []string{MultipleChoice, GenerateUntil}, Aggregation: "mean", HigherIsBetter: true},
	"perplexity":              {Types: []string{Loglikelihood}, Aggregation: "perplexity", HigherIsBetter: false},
	"word_perplexity":         {Types: []string{LoglikelihoodRolling}, Aggregation: "weighted_perplexity", HigherIsBetter: false},
	"byte_perplexity":         {Types: []string{LoglikelihoodRolling}, Aggregation: "weighted_perplexity", HigherIsBetter: false},
	"bits_per_byte":           {Types: []string{LoglikelihoodRolling}, Aggregation: "bits_per_byte", HigherIsBetter: false},
	"prompt_level_strict_acc": {Types: []string{GenerateUntil}, Aggregation: "mean", HigherIsBetter: true, Custom: "ifeval"},
	"inst_level_strict_acc":   {Types: []string{GenerateUntil}, Aggregation: "flat_mean", HigherIsBetter: true, Custom: "ifeval"},
	"prompt_level_loose_acc":  {Types: []string{GenerateUntil}, Aggregation: "mean", HigherIsBetter: true, Custom: "ifeval"},
	"inst_level_loose_acc":    {Types: []string{GenerateUntil}, Aggregation: "flat_mean", HigherIsBetter: true, Custom: "ifeval"},
	"pass@1":                  {Types: []string{GenerateUntil}, Aggregation: "mean", HigherIsBetter: true, Custom: "code"},
}

// Aggregations are the aggregation names backends/eval implements.
// flat_mean is ifeval's agg_inst_level_acc: the mean over every item of
// every document's list.
var Aggregations = []string{"bits_per_byte", "flat_mean", "mean", "median", "perplexity", "weighted_perplexity"}

// MetricInfo describes a metric.
type MetricInfo struct {
	Types          []string // output types it applies to
	Aggregation    string   // default aggregation
	HigherIsBetter bool
	Custom         string // the process_results it needs, if any
}

// Task is one lm-evaluation-harness task. Field names and meanings are
// lm-eval's TaskConfig's; the marin additions are Data and, in
// DatasetKwargs, the `{dataset_name}` placeholder in data_files.
type Task struct {
	Task      string `json:"task"`
	TaskAlias string `json:"task_alias,omitempty"`

	// DatasetPath is the Hugging Face hub dataset (owner/name).
	DatasetPath string `json:"dataset_path,omitempty"`
	// DatasetName is the subset (HF config name), e.g. "ARC-Easy".
	DatasetName   string         `json:"dataset_name,omitempty"`
	DatasetKwargs *DatasetKwargs `json:"dataset_kwargs,omitempty"`
	// Data is a directory or file URL holding the documents instead of a
	// hub dataset (jsonl, jsonl.gz, json, parquet or csv); with no
	// data_files every file under it is the test split. Set by scripts
	// (EvalTask(data=step)) to evaluate on what another step wrote.
	Data string `json:"data,omitempty"`

	TrainingSplit   string `json:"training_split,omitempty"`
	ValidationSplit string `json:"validation_split,omitempty"`
	TestSplit       string `json:"test_split,omitempty"`
	FewshotSplit    string `json:"fewshot_split,omitempty"`
	// ProcessDocs names a Go preprocessor (ProcessDocsNames) applied to
	// every split's documents.
	ProcessDocs string `json:"process_docs,omitempty"`

	// DocToText, DocToTarget and DocToChoice are each a column name, a
	// Jinja template, an integer or (choice, target) a list, as in lm-eval.
	DocToText   any    `json:"doc_to_text,omitempty"`
	DocToTarget any    `json:"doc_to_target,omitempty"`
	DocToChoice any    `json:"doc_to_choice,omitempty"`
	GenPrefix   string `json:"gen_prefix,omitempty"`
	// Description is prepended to the prompt (a template too).
	Description string `json:"description,omitempty"`
	// TargetDelimiter goes between context and answer (default " ").
	TargetDelimiter *string `json:"target_delimiter,omitempty"`
	// FewshotDelimiter goes after each few-shot example (default "\n\n").
	FewshotDelimiter *string        `json:"fewshot_delimiter,omitempty"`
	FewshotConfig    *FewshotConfig `json:"fewshot_config,omitempty"`
	NumFewshot       *int           `json:"num_fewshot,omitempty"`

	OutputType       string            `json:"output_type"`
	GenerationKwargs *GenerationKwargs `json:"generation_kwargs,omitempty"`
	Repeats          int               `json:"repeats,omitempty"`
	FilterList       []FilterPipeline  `json:"filter_list,omitempty"`
	MetricList       []Metric          `json:"metric_list,omitempty"`
	// ProcessResults names a Go scorer (ProcessResultsNames) that replaces
	// the standard metrics, e.g. ifeval's instruction checkers.
	ProcessResults string `json:"process_results,omitempty"`
	// UnsafeCode marks tasks that execute model-written code (humaneval).
	UnsafeCode bool           `json:"unsafe_code,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
}

// DatasetKwargs are the load_dataset arguments marin honours.
type DatasetKwargs struct {
	// Revision pins the hub dataset: a full commit id for reproducible
	// results.
	Revision string `json:"revision,omitempty"`
	// DataFiles maps a split to its files (paths or globs relative to the
	// repo root or to Data). "{dataset_name}" stands for DatasetName.
	DataFiles map[string][]string `json:"data_files,omitempty"`
}

// FewshotConfig is lm-eval's fewshot_config.
type FewshotConfig struct {
	// Sampler is "default" (seeded random sample) or "first_n".
	Sampler string `json:"sampler,omitempty"`
	// Samples are fixed few-shot documents, used instead of a split.
	Samples []map[string]any `json:"samples,omitempty"`
}

// GenerationKwargs are generate_until's settings. Decoding is greedy.
type GenerationKwargs struct {
	// Until are the stop sequences; absent (null), the few-shot delimiter,
	// as lm-eval defaults it; [] for none.
	Until       []string `json:"until"`
	MaxGenToks  *int     `json:"max_gen_toks,omitempty"`
	DoSample    bool     `json:"do_sample,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
}

// FilterPipeline is one named filter chain (filter_list entry); its name
// becomes the metrics' filter key ("acc,none", "exact_match,strict-match").
type FilterPipeline struct {
	Name   string   `json:"name"`
	Filter []Filter `json:"filter"`
}

// Filter is one step of a pipeline.
type Filter struct {
	Function     string `json:"function"`
	RegexPattern string `json:"regex_pattern,omitempty"`
	GroupSelect  int    `json:"group_select,omitempty"`
	Fallback     string `json:"fallback,omitempty"`
	K            int    `json:"k,omitempty"`
}

// Metric is a metric_list entry. The exact_match options are those of
// lm-eval's exact_match (HF evaluate's): regexes removed first, then case
// folded, punctuation and digits removed.
type Metric struct {
	Metric            string   `json:"metric"`
	Aggregation       string   `json:"aggregation,omitempty"`
	HigherIsBetter    *bool    `json:"higher_is_better,omitempty"`
	IgnoreCase        bool     `json:"ignore_case,omitempty"`
	IgnorePunctuation bool     `json:"ignore_punctuation,omitempty"`
	IgnoreNumbers     bool     `json:"ignore_numbers,omitempty"`
	RegexesToIgnore   []string `json:"regexes_to_ignore,omitempty"`
}

// Group aggregates tasks and groups.
type Group struct {
	Group      string   `json:"group"`
	GroupAlias string   `json:"group_alias,omitempty"`
	Task       []string `json:"task"`
	// AggregateMetricList says which metrics the group reports and how.
	AggregateMetricList []Aggregate    `json:"aggregate_metric_list,omitempty"`
	Metadata            map[string]any `json:"metadata,omitempty"`
}

// Aggregate is a group's aggregate_metric_list entry.
type Aggregate struct {
	Metric       string `json:"metric"`
	Aggregation  string `json:"aggregation,omitempty"` // only "mean"
	WeightBySize bool   `json:"weight_by_size,omitempty"`
	// Macro (marin) also reports the unweighted mean over the group's
	// members as "{metric}_macro" (Marin reports MMLU's macro average).
	Macro bool `json:"macro,omitempty"`
	// FilterList names the filters aggregated (default ["none"]).
	FilterList []string `json:"filter_list,omitempty"`
}

// Suite is what one evaluation step runs: a task, or a group with every
// task and group below it.
type Suite struct {
	Name string `json:"name"`
	// Tasks are the leaf tasks, in order.
	Tasks []Task `json:"tasks"`
	// Groups are the groups, root first; empty for a single task.
	Groups []Group `json:"groups,omitempty"`
}

// Defaults applied when a field is absent, as lm-eval does.
const (
	DefaultTargetDelimiter  = " "
	DefaultFewshotDelimiter = "\n\n"
	DefaultMaxGenToks       = 256
	DefaultFewshotSeed      = 1234
)

// TargetDelim returns the target delimiter.
func (t *Task) TargetDelim() string {
	if t.TargetDelimiter != nil {
		return *t.TargetDelimiter
	}
	return DefaultTargetDelimiter
}

// FewshotDelim returns the few-shot delimiter.
func (t *Task) FewshotDelim() string {
	if t.FewshotDelimiter != nil {
		return *t.FewshotDelimiter
	}
	return DefaultFewshotDelimiter
}

// Shots is the number of few-shot examples (num_fewshot, default 0).
func (t *Task) Shots() int {
	if t.NumFewshot != nil {
		return *t.NumFewshot
	}
	return 0
}

// Revision is the pinned dataset revision, "" when none.
func (t *Task) Revision() string {
	if t.DatasetKwargs == nil {
		return ""
	}
	return t.DatasetKwargs.Revision
}

// EvalSplit is the split evaluated: test_split, else validation_split.
func (t *Task) EvalSplit() string {
	if t.TestSplit != "" {
		return t.TestSplit
	}
	return t.ValidationSplit
}

// FewshotSource is the split few-shot examples come from, as lm-eval picks
// it: fewshot_split, else training_split, else validation_split, else
// test_split (examples equal to the evaluated document are skipped). ""
// when the task has fixed samples or takes no shots.
func (t *Task) FewshotSource() string {
	if t.Shots() == 0 {
		return ""
	}
	if t.FewshotSplit != "" {
		return t.FewshotSplit
	}
	if t.FewshotConfig != nil && len(t.FewshotConfig.Samples) > 0 {
		return ""
	}
	for _, s := range []string{t.TrainingSplit, t.ValidationSplit, t.TestSplit} {
		if s != "" {
			return s
		}
	}
	return ""
}

// Splits are the splits the task reads: the evaluated one and the few-shot
// source, without repeats.
func (t *Task) Splits() []string {
	out := []string{t.EvalSplit()}
	if f := t.FewshotSource(); f != "" && f != out[0] {
		out = append(out, f)
	}
	return out
}

// Sampler is the few-shot sampler's name: "first_n" or "default".
func (t *Task) Sampler() string {
	if t.FewshotConfig != nil && t.FewshotConfig.Sampler != "" {
		return t.FewshotConfig.Sampler
	}
	return "default"
}

// IsGroupName reports whether name is a group of the suite.
func (s *Suite) group(name string) *Group {
	for i := range s.Groups {
		if s.Groups[i].Group == name {
			return &s.Groups[i]
		}
	}
	return nil
}

// Group returns the named group, nil when there is none.
func (s *Suite) Group(name string) *Group { return s.group(name) }

// Task returns the named task, nil when there is none.
func (s *Suite) Task(name string) *Task {
	for i := range s.Tasks {
		if s.Tasks[i].Task == name {
			return &s.Tasks[i]
		}
	}
	return nil
}

// Validate checks a task definition and returns every problem, each naming
// the field.
func (t *Task) Validate() error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if t.Task == "" {
		bad("task: missing name")
	} else if strings.ContainsAny(t.Task, "/ \t\n\\") {
		bad("task %q: the name may not contain slashes or spaces", t.Task)
	}
	switch {
	case t.DatasetPath == "" && t.Data == "":
		bad("dataset_path (a hub dataset) or data (a directory of documents) is required")
	case t.DatasetPath != "" && t.Data != "":
		bad("give dataset_path or data, not both")
	}
	if !contains(OutputTypes, t.OutputType) {
		bad("output_type %q: want one of %s", t.OutputType, strings.Join(OutputTypes, ", "))
	}
	if t.EvalSplit() == "" && t.Data == "" {
		bad("test_split or validation_split is required")
	}
	if t.Shots() < 0 {
		bad("num_fewshot %d: must not be negative", t.Shots())
	}
	if t.Shots() > 0 && t.FewshotSource() == "" && (t.FewshotConfig == nil || len(t.FewshotConfig.Samples) == 0) {
		bad("num_fewshot %d needs a fewshot_split, training_split, validation_split or fewshot_config.samples", t.Shots())
	}
	if t.FewshotConfig != nil && t.FewshotConfig.Sampler != "" && !contains([]string{"default", "first_n"}, t.FewshotConfig.Sampler) {
		bad("fewshot_config.sampler %q: want default or first_n", t.FewshotConfig.Sampler)
	}
	if t.FewshotConfig != nil && len(t.FewshotConfig.Samples) > 0 && t.Shots() > len(t.FewshotConfig.Samples) {
		bad("num_fewshot %d exceeds the %d fewshot_config.samples", t.Shots(), len(t.FewshotConfig.Samples))
	}
	if t.ProcessDocs != "" && !contains(ProcessDocsNames, t.ProcessDocs) {
		bad("process_docs %q: marin implements %s (Python functions cannot run here)", t.ProcessDocs, strings.Join(ProcessDocsNames, ", "))
	}
	if t.ProcessResults != "" && !contains(ProcessResultsNames, t.ProcessResults) {
		bad("process_results %q: marin implements %s (Python functions cannot run here)", t.ProcessResults, strings.Join(ProcessResultsNames, ", "))
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"doc_to_text", t.DocToText}, {"doc_to_target", t.DocToTarget}, {"doc_to_choice", t.DocToChoice}} {
		if err := checkDocField(f.v); err != nil {
			bad("%s: %v", f.name, err)
		}
	}
	if t.DocToText == nil && t.OutputType != LoglikelihoodRolling {
		bad("doc_to_text is required")
	}
	if t.DocToTarget == nil {
		bad("doc_to_target is required")
	}
	if t.OutputType == MultipleChoice && t.DocToChoice == nil {
		bad("multiple_choice needs doc_to_choice")
	}
	if g := t.GenerationKwargs; g != nil {
		if t.OutputType != GenerateUntil {
			bad("generation_kwargs: only generate_until generates")
		}
		if g.DoSample {
			bad("generation_kwargs.do_sample: evaluation decodes greedily; sampling is not supported")
		}
		if g.MaxGenToks != nil && *g.MaxGenToks <= 0 {
			bad("generation_kwargs.max_gen_toks %d: must be positive", *g.MaxGenToks)
		}
	}
	if t.Repeats > 1 {
		bad("repeats %d: greedy decoding repeats identically; only 1 is supported", t.Repeats)
	}
	for i, p := range t.FilterList {
		if p.Name == "" {
			bad("filter_list[%d]: missing name", i)
		}
		if len(p.Filter) == 0 {
			bad("filter_list[%d] (%s): no filter steps", i, p.Name)
		}
		for j, f := range p.Filter {
			if !contains(FilterFunctions, f.Function) {
				bad("filter_list[%d].filter[%d]: function %q: marin implements %s", i, j, f.Function, strings.Join(FilterFunctions, ", "))
			}
			if f.Function == "regex" && f.RegexPattern == "" {
				bad("filter_list[%d].filter[%d]: regex needs regex_pattern", i, j)
			}
		}
	}
	if len(t.FilterList) > 0 && t.OutputType != GenerateUntil {
		bad("filter_list: filters apply to generate_until responses only")
	}
	for i, m := range t.MetricList {
		info, ok := Metrics[m.Metric]
		if !ok {
			bad("metric_list[%d]: unknown metric %q (known: %s)", i, m.Metric, strings.Join(MetricNames(), ", "))
			continue
		}
		if !contains(info.Types, t.OutputType) {
			bad("metric_list[%d]: %s does not apply to %s tasks", i, m.Metric, t.OutputType)
		}
		if info.Custom != "" && info.Custom != "code" && t.ProcessResults != info.Custom {
			bad("metric_list[%d]: %s needs process_results: %s", i, m.Metric, info.Custom)
		}
		if m.Aggregation != "" && !contains(Aggregations, m.Aggregation) {
			bad("metric_list[%d]: aggregation %q: want one of %s", i, m.Aggregation, strings.Join(Aggregations, ", "))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	name := t.Task
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Errorf("task %s: %s", name, strings.Join(errs, "; "))
}

// MetricNames lists the known metrics, sorted.
func MetricNames() []string {
	var out []string
	for k := range Metrics {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkDocField accepts what lm-eval accepts: a string (column or
// template), an integer, or a list of strings.
func checkDocField(v any) error {
	switch x := v.(type) {
	case nil, string, int, int64, float64, json.Number:
		if f, ok := x.(float64); ok && f != float64(int64(f)) {
			return fmt.Errorf("%v is not an integer", f)
		}
		return nil
	case []any:
		for i, e := range x {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("element %d is %T, want a string", i, e)
			}
		}
		return nil
	case []string:
		return nil
	}
	return fmt.Errorf("%T: want a column name, a template, an integer or a list of strings", v)
}

// Validate checks every task and group of a suite and that the groups'
// members exist.
func (s *Suite) Validate() error {
	if len(s.Tasks) == 0 {
		return fmt.Errorf("suite %s has no tasks", s.Name)
	}
	seen := map[string]bool{}
	for i := range s.Tasks {
		if err := s.Tasks[i].Validate(); err != nil {
			return err
		}
		if seen[s.Tasks[i].Task] {
			return fmt.Errorf("suite %s: task %s appears twice", s.Name, s.Tasks[i].Task)
		}
		seen[s.Tasks[i].Task] = true
	}
	for _, g := range s.Groups {
		if seen[g.Group] {
			return fmt.Errorf("suite %s: %s is both a task and a group", s.Name, g.Group)
		}
		seen[g.Group] = true
	}
	for _, g := range s.Groups {
		if len(g.Task) == 0 {
			return fmt.Errorf("group %s has no members", g.Group)
		}
		for _, m := range g.Task {
			if !seen[m] {
				return fmt.Errorf("group %s: member %s is neither a task nor a group of the suite", g.Group, m)
			}
		}
		for _, a := range g.AggregateMetricList {
			if a.Aggregation != "" && a.Aggregation != "mean" {
				return fmt.Errorf("group %s: aggregation %q: groups aggregate by mean", g.Group, a.Aggregation)
			}
		}
	}
	return nil
}

// Leaves returns the tasks below name (a task or group of s), in order.
func (s *Suite) Leaves(name string) []string {
	if t := s.Task(name); t != nil {
		return []string{name}
	}
	g := s.group(name)
	if g == nil {
		return nil
	}
	var out []string
	for _, m := range g.Task {
		out = append(out, s.Leaves(m)...)
	}
	return out
}

// HasGeneration reports whether any task of the suite generates text.
func (s *Suite) HasGeneration() bool {
	for _, t := range s.Tasks {
		if t.OutputType == GenerateUntil {
			return true
		}
	}
	return false
}

// UnsafeCode returns the tasks that execute model-written code.
func (s *Suite) UnsafeCode() []string {
	var out []string
	for _, t := range s.Tasks {
		if t.UnsafeCode {
			out = append(out, t.Task)
		}
	}
	return out
}

// SetNumFewshot overrides every task's num_fewshot.
func (s *Suite) SetNumFewshot(n int) {
	for i := range s.Tasks {
		v := n
		s.Tasks[i].NumFewshot = &v
	}
}

// Clone returns a deep copy (through JSON).
func (s *Suite) Clone() *Suite {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	var c Suite
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
