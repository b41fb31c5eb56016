package starlib

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/evaltasks"
)

// Evaluation builtins:
//
//	EvalTask(task=NAME, ...lm-eval task config keys..., data=STEP_OR_PATH)
//	evaluate(model, tasks, limit=None, batch_size=None, resources=None, ...)
//	default_sft_eval(step, resource_config=None, max_eval_instances=None,
//	                 run_generation_evals=True, apply_chat_template=True)
//
// Each task (a registry name such as "mmlu", or an EvalTask) becomes its
// own cached step "eval/{model}/{task}" (op eval/harness) whose config —
// and so version — holds the whole task definition, the model and, through
// a dependency, the documents: one step "eval_docs/{task}" (op eval/docs)
// per task's data, shared by every model evaluated on it. Adding a task
// runs only that task's steps.

// Op names of the steps the builtins make.
const (
	evalHarnessOp = "eval/harness"
	evalDocsOp    = "eval/docs"
)

// evalState is the per-run state of the evaluation builtins: the docs steps
// made so far, so every model's evaluation of a task shares one.
type evalState struct {
	docs map[string]*Step
}

const evalStateKey = "marin.eval"

func evalStateOf(thread *starlark.Thread) *evalState {
	if s, ok := thread.Local(evalStateKey).(*evalState); ok {
		return s
	}
	s := &evalState{docs: map[string]*Step{}}
	thread.SetLocal(evalStateKey, s)
	return s
}

func addEvalBuiltins(env starlark.StringDict) {
	env["EvalTask"] = starlark.NewBuiltin("EvalTask", evalTask)
	env["evaluate"] = starlark.NewBuiltin("evaluate", evaluate)
	env["default_sft_eval"] = starlark.NewBuiltin("default_sft_eval", defaultSFTEval)
	env["load_eval_tasks"] = starlark.NewBuiltin("load_eval_tasks", loadEvalTasks)
}

// load_eval_tasks(path) reads an lm-evaluation-harness task YAML file
// (relative to the script; include: files beside it) and returns its tasks
// as EvalTask values, so a task written for lm-eval runs unchanged when it
// uses no Python hooks.
func loadEvalTasks(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &p); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(thread.CallFrame(1).Pos.Filename()), p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	docs, err := evaltasks.Parse(os.DirFS(filepath.Dir(p)), ".", p, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	var out []starlark.Value
	for _, d := range docs {
		if d.Task == nil {
			return nil, fmt.Errorf("%s: %s defines group %s; list its tasks in evaluate() instead", b.Name(), p, d.Group.Group)
		}
		raw, err := json.Marshal(d.Task)
		if err != nil {
			return nil, err
		}
		var def map[string]any
		if err := json.Unmarshal(raw, &def); err != nil {
			return nil, err
		}
		t := &EvalTaskValue{def: intsOf(def).(map[string]any), pos: callerPos(thread)}
		if _, err := t.task(); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", b.Name(), p, err)
		}
		out = append(out, t)
	}
	return starlark.NewList(out), nil
}

// EvalTaskValue is a task definition made in a script.
type EvalTaskValue struct {
	def map[string]any // the config tree; "data" may be an *graph.InputRef
	pos syntax.Position
}

func (e *EvalTaskValue) name() string { s, _ := e.def["task"].(string); return s }

func (e *EvalTaskValue) String() string        { return fmt.Sprintf("EvalTask(task=%q)", e.name()) }
func (e *EvalTaskValue) Type() string          { return "EvalTask" }
func (e *EvalTaskValue) Freeze()               {}
func (e *EvalTaskValue) Truth() starlark.Bool  { return starlark.True }
func (e *EvalTaskValue) Hash() (uint32, error) { return starlark.String(e.name()).Hash() }
func (e *EvalTaskValue) Attr(n string) (starlark.Value, error) {
	switch n {
	case "name", "task":
		return starlark.String(e.name()), nil
	case "pos":
		return starlark.String(posString(e.pos)), nil
	}
	return nil, nil
}
func (e *EvalTaskValue) AttrNames() []string { return []string{"name", "pos", "task"} }

// EvalTask(task, **config): a task in lm-evaluation-harness's config shape
// (dataset_path + revision= or data=, splits, doc_to_text / doc_to_target /
// doc_to_choice templates, output_type, num_fewshot, fewshot_config,
// generation_kwargs, filter_list, metric_list, description, …). revision=
// and data_files= are shorthands for dataset_kwargs; data= takes a step or
// a path whose files are the documents (every file is the test split unless
// data_files says otherwise).
func evalTask(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("%s: give every setting by keyword (task=..., output_type=..., ...)", b.Name())
	}
	def := map[string]any{}
	var revision, dataFiles any
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		v, err := toConfig(kv[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", b.Name(), k, err)
		}
		switch k {
		case "name":
			k = "task"
		case "revision":
			revision = v
			continue
		case "data_files":
			dataFiles = v
			continue
		}
		def[k] = v
	}
	if revision != nil || dataFiles != nil {
		dk, _ := def["dataset_kwargs"].(map[string]any)
		if dk == nil {
			dk = map[string]any{}
		}
		if revision != nil {
			dk["revision"] = revision
		}
		if dataFiles != nil {
			dk["data_files"] = dataFiles
		}
		def["dataset_kwargs"] = dk
	}
	if _, ok := def["data"]; ok {
		if _, ok := def["test_split"]; !ok {
			if _, ok := def["validation_split"]; !ok {
				def["test_split"] = "test"
			}
		}
	}
	t := &EvalTaskValue{def: def, pos: callerPos(thread)}
	if _, err := t.task(); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return t, nil
}

// task decodes and validates the definition (a data step stands in as a
// placeholder path).
func (e *EvalTaskValue) task() (*evaltasks.Task, error) {
	m := map[string]any{}
	for k, v := range e.def {
		if _, ok := v.(*graph.InputRef); ok {
			v = "step-output"
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	t, err := evaltasks.DecodeTask(b)
	if err != nil {
		return nil, err
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// suiteSpec is one entry of evaluate's tasks: a suite and the config tree
// of its definitions.
type suiteSpec struct {
	name  string
	suite *evaltasks.Suite
	// data holds the InputRef of a script task's data, by task name.
	data map[string]*graph.InputRef
}

func suiteOf(fn string, v starlark.Value) (*suiteSpec, error) {
	switch x := v.(type) {
	case starlark.String:
		s, err := evaltasks.Lookup(string(x))
		if err != nil {
			c, _ := evaltasks.Registry()
			msg := err.Error()
			if c != nil {
				msg += suggest(string(x), c.TopLevel())
			}
			return nil, fmt.Errorf("%s: %s", fn, msg)
		}
		return &suiteSpec{name: string(x), suite: s}, nil
	case *EvalTaskValue:
		t, err := x.task()
		if err != nil {
			return nil, fmt.Errorf("%s: %s (made at %s): %w", fn, x.name(), x.pos, err)
		}
		sp := &suiteSpec{name: t.Task, suite: &evaltasks.Suite{Name: t.Task, Tasks: []evaltasks.Task{*t}}, data: map[string]*graph.InputRef{}}
		if r, ok := x.def["data"].(*graph.InputRef); ok {
			sp.data[t.Task] = r
		}
		return sp, nil
	}
	return nil, fmt.Errorf("%s: a task is a registry name (e.g. \"mmlu\") or EvalTask(...), got %s", fn, v.Type())
}

// suiteConfig is the suite as a config tree, script data references
// restored.
func (sp *suiteSpec) suiteConfig() (map[string]any, error) {
	b, err := json.Marshal(sp.suite)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m = intsOf(m).(map[string]any)
	for _, t := range m["tasks"].([]any) {
		tm := t.(map[string]any)
		if r, ok := sp.data[tm["task"].(string)]; ok {
			tm["data"] = r
		}
	}
	return m, nil
}

// intsOf turns whole JSON numbers back into int64 so configs hash as the
// script wrote them.
func intsOf(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = intsOf(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = intsOf(e)
		}
		return x
	}
	return v
}

// docsStep returns the (shared) eval/docs step for a suite's data.
func docsStep(thread *starlark.Thread, sp *suiteSpec) (*Step, error) {
	var tasks []any
	shortRevs := map[string]bool{}
	for _, t := range sp.suite.Tasks {
		e := map[string]any{"task": t.Task, "splits": stringsToAny(t.Splits())}
		if t.Data != "" {
			if r, ok := sp.data[t.Task]; ok {
				e["data"] = r
			} else {
				e["data"] = t.Data
			}
		} else {
			e["dataset_path"] = t.DatasetPath
			e["revision"] = t.Revision()
			shortRevs[shortRev(t.Revision())] = true
		}
		if t.DatasetName != "" {
			e["dataset_name"] = t.DatasetName
		}
		if t.DatasetKwargs != nil && len(t.DatasetKwargs.DataFiles) > 0 {
			df := map[string]any{}
			for k, v := range t.DatasetKwargs.DataFiles {
				df[k] = stringsToAny(v)
			}
			e["data_files"] = df
		}
		tasks = append(tasks, e)
	}
	cfg := map[string]any{"tasks": tasks}
	key, err := graph.CanonicalJSON(stripRefs(cfg))
	if err != nil {
		return nil, err
	}
	st := evalStateOf(thread)
	if s, ok := st.docs[string(key)]; ok {
		return s, nil
	}
	name := "eval_docs/" + sp.name
	if len(shortRevs) == 1 {
		for r := range shortRevs {
			if r != "" {
				name += "-" + r
			}
		}
	}
	s := newStep(thread, name, evalDocsOp, cfg)
	s.s.Description = "fetch the documents of " + sp.name
	st.docs[string(key)] = s
	return s, nil
}

// stripRefs replaces InputRefs by their step's identity for keying.
func stripRefs(v any) any {
	switch x := v.(type) {
	case *graph.InputRef:
		return fmt.Sprintf("ref:%p:%s", x.Step, x.Sub)
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			m[k] = stripRefs(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripRefs(e)
		}
		return out
	}
	return v
}

// modelRef turns evaluate's model into a config value and a name.
func modelRef(fn string, v starlark.Value) (any, string, error) {
	switch x := v.(type) {
	case *Step:
		return &graph.InputRef{Step: x.s}, path.Base(x.s.Name), nil
	case *InputName:
		n := path.Base(x.ref.Step.Name)
		if x.ref.Sub != "" {
			n += "-" + strings.ReplaceAll(x.ref.Sub, "/", "-")
		}
		return x.ref, n, nil
	case starlark.String:
		s := string(x)
		if s == "" {
			return nil, "", fmt.Errorf("%s: model is empty", fn)
		}
		n := strings.ReplaceAll(strings.Trim(s, "/"), "/", "--")
		if strings.Contains(s, "://") || strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
			n = path.Base(strings.TrimRight(s, "/"))
		}
		return s, n, nil
	}
	return nil, "", fmt.Errorf("%s: model must be a training step, output_path_of(...), a path or a hub id, got %s", fn, v.Type())
}

type evalOpts struct {
	limit              starlark.Value
	batchSize          starlark.Value
	resources          starlark.Value
	name               string
	numFewshot         starlark.Value
	applyChatTemplate  bool
	chatFormat         starlark.Value
	systemInstruction  string
	fewshotAsMultiturn bool
	tokenizer          string
	bootstrapIters     starlark.Value
	codeSandbox        starlark.Value
	maxLength          starlark.Value
	fewshotSeed        starlark.Value
}

func newEvalOpts() evalOpts {
	n := starlark.None
	return evalOpts{limit: n, batchSize: n, resources: n, numFewshot: n, chatFormat: n, bootstrapIters: n, codeSandbox: n, maxLength: n, fewshotSeed: n}
}

// evaluate(model, tasks, limit=None, batch_size=None, resources=None,
// name=None, num_fewshot=None, apply_chat_template=False, chat_format=None,
// system_instruction=None, fewshot_as_multiturn=False, tokenizer=None,
// bootstrap_iters=None, code_sandbox=None, max_length=None,
// fewshot_seed=None) returns one step per task.
func evaluate(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var model, tasksV starlark.Value
	o := newEvalOpts()
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"model", &model, "tasks", &tasksV, "limit?", &o.limit, "batch_size?", &o.batchSize, "resources?", &o.resources,
		"name?", &o.name, "num_fewshot?", &o.numFewshot, "apply_chat_template?", &o.applyChatTemplate,
		"chat_format?", &o.chatFormat, "system_instruction?", &o.systemInstruction,
		"fewshot_as_multiturn?", &o.fewshotAsMultiturn, "tokenizer?", &o.tokenizer,
		"bootstrap_iters?", &o.bootstrapIters, "code_sandbox?", &o.codeSandbox, "max_length?", &o.maxLength,
		"fewshot_seed?", &o.fewshotSeed); err != nil {
		return nil, err
	}
	var entries []starlark.Value
	switch x := tasksV.(type) {
	case starlark.String, *EvalTaskValue:
		entries = []starlark.Value{x}
	case starlark.Indexable:
		for i := 0; i < x.Len(); i++ {
			entries = append(entries, x.Index(i))
		}
	default:
		return nil, fmt.Errorf("%s: tasks must be a list of task names or EvalTask(...), got %s", b.Name(), tasksV.Type())
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no tasks", b.Name())
	}
	steps, err := evalSteps(thread, b.Name(), model, entries, o)
	if err != nil {
		return nil, err
	}
	out := make([]starlark.Value, len(steps))
	for i, s := range steps {
		out[i] = s
	}
	return starlark.NewList(out), nil
}

func evalSteps(thread *starlark.Thread, fn string, model starlark.Value, entries []starlark.Value, o evalOpts) ([]*Step, error) {
	mref, mname, err := modelRef(fn, model)
	if err != nil {
		return nil, err
	}
	if o.name != "" {
		mname = o.name
	}
	if err := checkStepName(fn, "eval/"+mname); err != nil {
		return nil, err
	}
	backend := "cpu"
	var resources any
	switch r := o.resources.(type) {
	case starlark.NoneType:
		def, _ := mustPreset(resourceConfigType, nil).configValue()
		resources = def
	case *Record:
		if r.typ != resourceConfigType {
			return nil, fmt.Errorf("%s: resources must be ResourceConfig(...), got %s", fn, r.Type())
		}
		if resources, err = r.configValue(); err != nil {
			return nil, err
		}
		backend, _ = starlark.AsString(r.Get("backend"))
	default:
		return nil, fmt.Errorf("%s: resources must be ResourceConfig(...), got %s", fn, o.resources.Type())
	}
	limit, err := optNumber(fn, "limit", o.limit)
	if err != nil {
		return nil, err
	}
	if limit != nil && limit.(float64) <= 0 {
		return nil, fmt.Errorf("%s: limit must be positive (a count, or a fraction below 1), got %v", fn, limit)
	}
	shots, err := optInt(fn, "num_fewshot", o.numFewshot)
	if err != nil {
		return nil, err
	}
	var sandbox []string
	if o.codeSandbox != starlark.None {
		if sandbox, err = starStrings(fn, "code_sandbox", o.codeSandbox); err != nil {
			return nil, err
		}
		if len(sandbox) == 0 {
			return nil, fmt.Errorf("%s: code_sandbox is an empty command", fn)
		}
	}
	var chatFormat any
	if o.chatFormat != starlark.None {
		if chatFormat, err = toConfig(o.chatFormat); err != nil {
			return nil, fmt.Errorf("%s: chat_format: %w", fn, err)
		}
	}
	seen := map[string]bool{}
	var steps []*Step
	for _, e := range entries {
		sp, err := suiteOf(fn, e)
		if err != nil {
			return nil, err
		}
		if seen[sp.name] {
			return nil, fmt.Errorf("%s: task %s is listed twice", fn, sp.name)
		}
		seen[sp.name] = true
		if unsafe := sp.suite.UnsafeCode(); len(unsafe) > 0 && len(sandbox) == 0 {
			return nil, fmt.Errorf("%s: %s executes code the model writes, which marin runs only in a sandbox: pass code_sandbox=[\"COMMAND\", ...] (argv that runs one Python file given as its last argument in isolation, e.g. a container or bubblewrap invocation)", fn, strings.Join(unsafe, ", "))
		}
		if shots != nil {
			sp.suite.SetNumFewshot(int(shots.(int64)))
			if err := sp.suite.Validate(); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", fn, sp.name, err)
			}
		}
		docs, err := docsStep(thread, sp)
		if err != nil {
			return nil, err
		}
		suiteCfg, err := sp.suiteConfig()
		if err != nil {
			return nil, err
		}
		cfg := map[string]any{
			"model":      mref,
			"model_name": mname,
			"suite":      suiteCfg,
			"docs":       &graph.InputRef{Step: docs.s},
			"resources":  graph.Unversioned{Value: resources},
		}
		if o.tokenizer != "" {
			cfg["tokenizer"] = o.tokenizer
		}
		if limit != nil {
			cfg["limit"] = limit
		}
		if o.applyChatTemplate {
			cfg["apply_chat_template"] = true
			if chatFormat != nil {
				cfg["chat_format"] = chatFormat
			}
		}
		if o.systemInstruction != "" {
			cfg["system_instruction"] = o.systemInstruction
		}
		if o.fewshotAsMultiturn {
			cfg["fewshot_as_multiturn"] = true
		}
		for _, kv := range []struct {
			key string
			v   starlark.Value
		}{{"bootstrap_iters", o.bootstrapIters}, {"max_length", o.maxLength}, {"fewshot_seed", o.fewshotSeed}} {
			n, err := optInt(fn, kv.key, kv.v)
			if err != nil {
				return nil, err
			}
			if n != nil {
				cfg[kv.key] = n
			}
		}
		if bs, err := optInt(fn, "batch_size", o.batchSize); err != nil {
			return nil, err
		} else if bs != nil {
			if bs.(int64) <= 0 {
				return nil, fmt.Errorf("%s: batch_size must be positive", fn)
			}
			cfg["batch_size"] = graph.Unversioned{Value: bs}
		}
		if len(sandbox) > 0 {
			cfg["code_sandbox"] = graph.Unversioned{Value: stringsToAny(sandbox)}
		}
		st := newStep(thread, "eval/"+mname+"/"+sp.name, evalHarnessOp, cfg)
		st.s.Description = fmt.Sprintf("evaluate %s on %s", mname, sp.name)
		st.s.Backend = backend
		steps = append(steps, st)
	}
	return steps, nil
}

func optNumber(fn, name string, v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Int:
		i, _ := x.Int64()
		return float64(i), nil
	case starlark.Float:
		return float64(x), nil
	}
	return nil, fmt.Errorf("%s: %s must be a number, got %s", fn, name, v.Type())
}

func optInt(fn, name string, v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Int:
		i, ok := x.Int64()
		if !ok || i < 0 {
			return nil, fmt.Errorf("%s: %s must be a non-negative integer, got %s", fn, name, x)
		}
		return i, nil
	}
	return nil, fmt.Errorf("%s: %s must be an integer, got %s", fn, name, v.Type())
}

// SFTEvalTasks are default_sft_eval's tasks, as Python Marin's
// (experiments/evals: the Open LLM Leaderboard multiple-choice tasks, MMLU
// 5-shot, and the generation tasks). Marin also runs drop, minerva_math and
// leaderboard_math_hard, which marin's registry does not ship (their
// scoring is Python code: DROP's F1 over answer spans, SymPy's equivalence
// of LaTeX answers); humaneval runs only with a code sandbox.
var (
	SFTEvalMultipleChoice = []string{"leaderboard_bbh", "leaderboard_mmlu_pro", "leaderboard_gpqa", "leaderboard_musr", "mmlu"}
	SFTEvalGeneration     = []string{"ifeval", "leaderboard_ifeval", "gsm8k_cot", "bbh_cot_fewshot"}
)

// default_sft_eval(step, resource_config=None, max_eval_instances=None,
// run_generation_evals=True, apply_chat_template=True, code_sandbox=None)
func defaultSFTEval(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var step starlark.Value
	o := newEvalOpts()
	gen := true
	o.applyChatTemplate = true
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"step", &step, "resource_config?", &o.resources, "max_eval_instances?", &o.limit,
		"run_generation_evals?", &gen, "apply_chat_template?", &o.applyChatTemplate,
		"code_sandbox?", &o.codeSandbox, "batch_size?", &o.batchSize, "chat_format?", &o.chatFormat); err != nil {
		return nil, err
	}
	names := append([]string(nil), SFTEvalMultipleChoice...)
	if gen {
		names = append(names, SFTEvalGeneration...)
		if o.codeSandbox != starlark.None {
			names = append(names, "humaneval")
		}
	}
	entries := make([]starlark.Value, len(names))
	for i, n := range names {
		entries[i] = starlark.String(n)
	}
	steps, err := evalSteps(thread, b.Name(), step, entries, o)
	if err != nil {
		return nil, err
	}
	out := make([]starlark.Value, len(steps))
	for i, s := range steps {
		out[i] = s
	}
	return starlark.NewList(out), nil
}

// EvalTaskInfo describes a registered evaluation task for listings.
type EvalTaskInfo = evaltasks.Info

// EvalTasks lists the registered evaluation tasks.
func EvalTasks() ([]EvalTaskInfo, error) {
	infos, err := evaltasks.Infos()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	return infos, err
}
