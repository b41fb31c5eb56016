package eval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/marin-go/marin/backends/eval/ifeval"
	"github.com/marin-go/marin/plugins/evaltasks"
)

// Options configure a run of Evaluate.
type Options struct {
	ContextOptions
	// Limit caps the documents per task: a count (>= 1) or a fraction of
	// the split (< 1); 0 means all. lm-eval's --limit.
	Limit float64
	// BootstrapIters is the number of bootstrap resamples for the standard
	// error of perplexity and median (lm-eval's 100000); 0 skips those.
	BootstrapIters int
	// CodeSandbox is the command (argv) that runs one Python program file
	// given as its last argument, isolated; tasks that execute
	// model-written code (humaneval) are refused without one.
	CodeSandbox []string
	// CodeTimeout bounds one program's run (default 10s).
	CodeTimeout time.Duration
	// Log receives progress lines for a person.
	Log func(format string, args ...any)
}

// Output is what an evaluation produced.
type Output struct {
	Results Results
	// Samples are the per-document records, by task.
	Samples map[string][]Sample
}

// instance is one request of a document (lm-eval's Instance).
type instance struct {
	reqType string // loglikelihood, loglikelihood_rolling, generate_until
	prompt  Prompt
	shown   string // the context as text, for records
	cont    string
	text    string
	until   []string
	maxGen  int
	resp    any // LLResult, float64 or string
}

// docRun is one evaluated document with its requests.
type docRun struct {
	id    int
	doc   map[string]any
	insts []*instance
}

type taskRun struct {
	t        *task
	original int
	docs     []docRun
}

// Evaluate runs a suite's tasks on the documents under docsDir (the
// eval/docs layout) with lm, and scores them the way lm-evaluation-harness
// does.
func Evaluate(ctx context.Context, suite *evaltasks.Suite, docsDir string, lm *LM, o Options) (*Output, error) {
	start := time.Now()
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.FewshotSeed == 0 {
		o.FewshotSeed = evaltasks.DefaultFewshotSeed
	}
	if unsafe := suite.UnsafeCode(); len(unsafe) > 0 && len(o.CodeSandbox) == 0 {
		return nil, fmt.Errorf("%s executes model-written code; configure a sandbox command (code_sandbox) to run it", strings.Join(unsafe, ", "))
	}
	if o.ApplyChatTemplate && lm.Format == nil {
		return nil, fmt.Errorf("apply_chat_template needs a chat format")
	}
	var runs []*taskRun
	for i := range suite.Tasks {
		tr, err := prepareTask(ctx, &suite.Tasks[i], docsDir, o)
		if err != nil {
			return nil, err
		}
		runs = append(runs, tr)
	}
	// Run every request type in bulk across tasks.
	var ll, gen, roll []*instance
	for _, tr := range runs {
		for _, d := range tr.docs {
			for _, in := range d.insts {
				switch in.reqType {
				case evaltasks.Loglikelihood:
					ll = append(ll, in)
				case evaltasks.GenerateUntil:
					gen = append(gen, in)
				case evaltasks.LoglikelihoodRolling:
					roll = append(roll, in)
				}
			}
		}
	}
	if len(ll) > 0 {
		t0 := time.Now()
		reqs := make([]LLRequest, len(ll))
		for i, in := range ll {
			reqs[i] = LLRequest{Context: in.prompt, Continuation: in.cont}
		}
		res, err := lm.Loglikelihood(ctx, reqs)
		if err != nil {
			return nil, fmt.Errorf("loglikelihood requests: %w", err)
		}
		for i, in := range ll {
			in.resp = res[i]
		}
		logf("%d loglikelihood requests in %.1fs (%.1f/s)", len(ll), time.Since(t0).Seconds(), float64(len(ll))/time.Since(t0).Seconds())
	}
	if len(roll) > 0 {
		t0 := time.Now()
		texts := make([]string, len(roll))
		for i, in := range roll {
			texts[i] = in.text
		}
		res, err := lm.LoglikelihoodRolling(ctx, texts)
		if err != nil {
			return nil, fmt.Errorf("loglikelihood_rolling requests: %w", err)
		}
		for i, in := range roll {
			in.resp = res[i]
		}
		logf("%d loglikelihood_rolling requests in %.1fs", len(roll), time.Since(t0).Seconds())
	}
	if len(gen) > 0 {
		t0 := time.Now()
		reqs := make([]GenRequest, len(gen))
		for i, in := range gen {
			reqs[i] = GenRequest{Context: in.prompt, Until: in.until, MaxGenToks: in.maxGen}
		}
		res, err := lm.GenerateUntil(ctx, reqs)
		if err != nil {
			return nil, fmt.Errorf("generate_until requests: %w", err)
		}
		for i, in := range gen {
			in.resp = res[i]
		}
		logf("%d generate_until requests in %.1fs (%.2f/s)", len(gen), time.Since(t0).Seconds(), float64(len(gen))/time.Since(t0).Seconds())
	}
	for _, tr := range runs {
		for _, d := range tr.docs {
			for _, in := range d.insts {
				if in.shown == "" && in.prompt.IsChat() {
					if ec, err := lm.encodeContext(in.prompt); err == nil {
						in.shown = ec.shown
					}
				}
			}
		}
	}
	out := &Output{Samples: map[string][]Sample{}}
	res := newResults()
	for _, tr := range runs {
		if err := scoreTask(ctx, tr, o, res, out); err != nil {
			return nil, err
		}
	}
	if err := res.aggregateGroups(suite); err != nil {
		return nil, err
	}
	res.TotalSeconds = time.Since(start).Seconds()
	out.Results = *res
	return out, nil
}

// prepareTask reads a task's documents and builds its requests, document
// by document in order (the few-shot sampler's state runs on across them).
func prepareTask(ctx context.Context, def *evaltasks.Task, docsDir string, o Options) (*taskRun, error) {
	evalSplit := def.EvalSplit()
	if evalSplit == "" {
		evalSplit = "test"
	}
	docs, err := ReadSplit(ctx, docsDir, def.Task, evalSplit)
	if err != nil {
		return nil, err
	}
	if err := processDocs(def.ProcessDocs, docs); err != nil {
		return nil, fmt.Errorf("task %s: %w", def.Task, err)
	}
	var fewshot []map[string]any
	same := false
	if src := def.FewshotSource(); src != "" {
		if src == evalSplit {
			fewshot, same = docs, true
		} else {
			if fewshot, err = ReadSplit(ctx, docsDir, def.Task, src); err != nil {
				return nil, err
			}
			if err := processDocs(def.ProcessDocs, fewshot); err != nil {
				return nil, fmt.Errorf("task %s: few-shot split: %w", def.Task, err)
			}
		}
	}
	t, err := newTask(def, docs, fewshot, same, o.FewshotSeed)
	if err != nil {
		return nil, err
	}
	n := len(docs)
	if o.Limit > 0 {
		if o.Limit < 1 {
			n = int(math.Ceil(float64(len(docs)) * o.Limit))
		} else {
			n = min(n, int(o.Limit))
		}
	}
	tr := &taskRun{t: t, original: len(docs)}
	for i := 0; i < n; i++ {
		doc := docs[i]
		insts, err := t.instances(doc, o.ContextOptions)
		if err != nil {
			return nil, fmt.Errorf("task %s: document %d: %w", def.Task, i, err)
		}
		tr.docs = append(tr.docs, docRun{id: i, doc: doc, insts: insts})
	}
	return tr, nil
}

// instances is lm-eval's construct_requests.
func (t *task) instances(doc map[string]any, o ContextOptions) ([]*instance, error) {
	if t.def.OutputType == evaltasks.LoglikelihoodRolling {
		// The document's target alone is scored; there is no prompt.
		tgt, err := t.docTarget(doc)
		if err != nil {
			return nil, err
		}
		return []*instance{{reqType: evaltasks.LoglikelihoodRolling, text: fmt.Sprint(tgt)}}, nil
	}
	ctxs, err := t.contexts(doc, o)
	if err != nil {
		return nil, err
	}
	shown := func(p Prompt) string {
		if p.IsChat() {
			return ""
		}
		return p.Text
	}
	switch t.def.OutputType {
	case evaltasks.Loglikelihood:
		tgt, err := t.docTarget(doc)
		if err != nil {
			return nil, err
		}
		return []*instance{{reqType: evaltasks.Loglikelihood, prompt: ctxs[0], shown: shown(ctxs[0]), cont: fmt.Sprint(tgt)}}, nil
	case evaltasks.GenerateUntil:
		in := &instance{reqType: evaltasks.GenerateUntil, prompt: ctxs[0], shown: shown(ctxs[0]), maxGen: evaltasks.DefaultMaxGenToks}
		if g := t.def.GenerationKwargs; g != nil {
			in.until = append([]string{}, g.Until...)
			if g.Until == nil {
				// lm-eval: generation_kwargs without until stop at the
				// few-shot delimiter.
				in.until = []string{t.def.FewshotDelim()}
			}
			if g.MaxGenToks != nil {
				in.maxGen = *g.MaxGenToks
			}
		} else {
			// lm-eval's default: stop at the few-shot delimiter.
			in.until = []string{t.def.FewshotDelim()}
		}
		return []*instance{in}, nil
	case evaltasks.MultipleChoice:
		choices, err := t.docChoices(doc)
		if err != nil {
			return nil, err
		}
		delim := t.def.TargetDelim()
		if o.ApplyChatTemplate {
			// lm-eval drops the delimiter after a chat prompt unless a
			// gen_prefix without trailing space precedes the answer.
			if gp := t.def.GenPrefix; gp == "" || endsSpace(gp) {
				delim = ""
			}
		}
		var out []*instance
		if t.multipleInput {
			tgt, err := t.docTarget(doc)
			if err != nil {
				return nil, err
			}
			for _, c := range ctxs {
				out = append(out, &instance{reqType: evaltasks.Loglikelihood, prompt: c, shown: shown(c), cont: delim + fmt.Sprint(tgt)})
			}
		} else {
			for _, ch := range choices {
				out = append(out, &instance{reqType: evaltasks.Loglikelihood, prompt: ctxs[0], shown: shown(ctxs[0]), cont: delim + ch})
			}
		}
		if t.usesMetric("acc_mutual_info") {
			for _, ch := range choices {
				out = append(out, &instance{reqType: evaltasks.Loglikelihood, prompt: Prompt{Text: ""}, cont: delim + ch})
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown output type %q", t.def.OutputType)
}

// metricList is the task's metric_list, or lm-eval's defaults for its
// output type.
func (t *task) metricList() []evaltasks.Metric {
	if len(t.def.MetricList) > 0 {
		return t.def.MetricList
	}
	var names []string
	switch t.def.OutputType {
	case evaltasks.Loglikelihood:
		names = []string{"perplexity", "acc"}
	case evaltasks.LoglikelihoodRolling:
		names = []string{"word_perplexity", "byte_perplexity", "bits_per_byte"}
	case evaltasks.MultipleChoice:
		names = []string{"acc", "acc_norm"}
	case evaltasks.GenerateUntil:
		names = []string{"exact_match"}
	}
	out := make([]evaltasks.Metric, len(names))
	for i, n := range names {
		out[i] = evaltasks.Metric{Metric: n}
	}
	return out
}

func (t *task) usesMetric(name string) bool {
	for _, m := range t.metricList() {
		if m.Metric == name {
			return true
		}
	}
	return false
}

// scoreTask filters responses, computes per-document metrics and their
// aggregates, and records samples.
func scoreTask(ctx context.Context, tr *taskRun, o Options, res *Results, out *Output) error {
	t := tr.t
	name := t.def.Task
	pipes := []pipeline{defaultPipeline()}
	if t.def.OutputType == evaltasks.GenerateUntil && len(t.def.FilterList) > 0 {
		pipes = nil
		for _, p := range t.def.FilterList {
			cp, err := compilePipeline(p)
			if err != nil {
				return fmt.Errorf("task %s: %w", name, err)
			}
			pipes = append(pipes, cp)
		}
	}
	metrics := t.metricList()
	matchers := map[string]*exactMatcher{}
	for _, m := range metrics {
		if m.Metric == "exact_match" {
			em, err := newExactMatcher(m)
			if err != nil {
				return fmt.Errorf("task %s: %w", name, err)
			}
			matchers[m.Metric] = em
		}
	}
	type key struct{ metric, filter string }
	raw := map[key][]any{}
	var keys []key
	for _, p := range pipes {
		for _, d := range tr.docs {
			if err := ctx.Err(); err != nil {
				return err
			}
			filtered := make([]any, len(d.insts))
			for i, in := range d.insts {
				resp := in.resp
				if in.reqType == evaltasks.GenerateUntil {
					v, err := applyPipeline(p, []any{resp})
					if err != nil {
						return fmt.Errorf("task %s: document %d: %w", name, d.id, err)
					}
					resp = v
				}
				filtered[i] = resp
			}
			vals, err := t.processResults(d.doc, filtered, metrics, matchers, o)
			if err != nil {
				return fmt.Errorf("task %s: document %d: %w", name, d.id, err)
			}
			for _, m := range metrics {
				v, ok := vals[m.Metric]
				if !ok {
					continue
				}
				k := key{m.Metric, p.name}
				if _, seen := raw[k]; !seen {
					keys = append(keys, k)
				}
				raw[k] = append(raw[k], v)
			}
			out.Samples[name] = append(out.Samples[name], t.sample(d, filtered, p.name, vals, metrics))
		}
	}
	tm := TaskMetrics{"alias": aliasOf(t.def), "name": name}
	hib := map[string]any{}
	sampleLen := 0
	for _, k := range keys {
		agg, higher := t.metricMeta(k.metric)
		v, err := aggregate(agg, raw[k])
		if err != nil {
			return fmt.Errorf("task %s: %s: %w", name, k.metric, err)
		}
		tm[k.metric+","+k.filter] = jsonFloat(v)
		se, ok, err := stderr(agg, raw[k], o.BootstrapIters)
		if err != nil {
			return fmt.Errorf("task %s: %s stderr: %w", name, k.metric, err)
		}
		if ok {
			tm[k.metric+"_stderr,"+k.filter] = jsonFloat(se)
		} else {
			tm[k.metric+"_stderr,"+k.filter] = "N/A"
		}
		hib[k.metric] = higher
		sampleLen = len(raw[k])
	}
	tm["sample_len"] = sampleLen
	res.Results[name] = tm
	cfg, err := taskConfig(t.def)
	if err != nil {
		return err
	}
	res.Configs[name] = cfg
	res.Versions[name] = version(t.def.Metadata)
	res.NShot[name] = t.def.Shots()
	res.HigherIsBetter[name] = hib
	res.NSamples[name] = SampleCount{Original: tr.original, Effective: sampleLen}
	res.GroupSubtasks[name] = []string{}
	return nil
}

func applyPipeline(p pipeline, resps []any) (any, error) {
	var err error
	for _, s := range p.steps {
		if resps, err = s(resps); err != nil {
			return nil, err
		}
	}
	if len(resps) == 1 {
		return resps[0], nil
	}
	return resps, nil
}

// metricMeta is a metric's aggregation and direction.
func (t *task) metricMeta(name string) (string, bool) {
	info := evaltasks.Metrics[name]
	agg, higher := info.Aggregation, info.HigherIsBetter
	for _, m := range t.metricList() {
		if m.Metric == name {
			if m.Aggregation != "" {
				agg = m.Aggregation
			}
			if m.HigherIsBetter != nil {
				higher = *m.HigherIsBetter
			}
		}
	}
	return agg, higher
}

// processResults is lm-eval's process_results for one document.
func (t *task) processResults(doc map[string]any, resps []any, metrics []evaltasks.Metric, matchers map[string]*exactMatcher, o Options) (map[string]any, error) {
	use := map[string]bool{}
	for _, m := range metrics {
		use[m.Metric] = true
	}
	out := map[string]any{}
	if t.def.ProcessResults == "ifeval" {
		resp, _ := resps[0].(string)
		r, err := ifeval.Score(doc, resp)
		if err != nil {
			return nil, err
		}
		out["prompt_level_strict_acc"] = b2f(r.Strict.All)
		out["inst_level_strict_acc"] = bools(r.Strict.Each)
		out["prompt_level_loose_acc"] = b2f(r.Loose.All)
		out["inst_level_loose_acc"] = bools(r.Loose.Each)
		return out, nil
	}
	switch t.def.OutputType {
	case evaltasks.Loglikelihood:
		r := resps[0].(LLResult)
		if use["perplexity"] {
			out["perplexity"] = r.LogProb
		}
		if use["acc"] {
			out["acc"] = b2f(r.Greedy)
		}
	case evaltasks.LoglikelihoodRolling:
		ll := resps[0].(float64)
		tgt, err := t.docTarget(doc)
		if err != nil {
			return nil, err
		}
		s := fmt.Sprint(tgt)
		words, nbytes := float64(countWords(s)), float64(countBytes(s))
		if use["word_perplexity"] {
			out["word_perplexity"] = llCount{ll, words}
		}
		if use["byte_perplexity"] {
			out["byte_perplexity"] = llCount{ll, nbytes}
		}
		if use["bits_per_byte"] {
			out["bits_per_byte"] = llCount{ll, nbytes}
		}
	case evaltasks.MultipleChoice:
		return t.scoreChoices(doc, resps, use)
	case evaltasks.GenerateUntil:
		return t.scoreGeneration(doc, resps[0], use, matchers, o)
	}
	return out, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func bools(bs []bool) []float64 {
	out := make([]float64, len(bs))
	for i, b := range bs {
		out[i] = b2f(b)
	}
	return out
}

// scoreChoices is lm-eval's multiple_choice scoring: acc (argmax of the
// loglikelihoods), acc_norm (of loglikelihood / choice length in
// characters, Python's len), acc_bytes (/ UTF-8 bytes), exact_match (the
// gold choice is the greedy continuation), acc_mutual_info.
func (t *task) scoreChoices(doc map[string]any, resps []any, use map[string]bool) (map[string]any, error) {
	choices, err := t.docChoices(doc)
	if err != nil {
		return nil, err
	}
	n := len(choices)
	if len(resps) < n {
		return nil, fmt.Errorf("%d results for %d choices", len(resps), n)
	}
	lls := make([]float64, n)
	greedy := make([]bool, n)
	for i := 0; i < n; i++ {
		r := resps[i].(LLResult)
		lls[i], greedy[i] = r.LogProb, r.Greedy
	}
	norm := make([]float64, n)
	byByte := make([]float64, n)
	for i, c := range choices {
		norm[i] = lls[i] / float64(runeLen(c))
		byByte[i] = lls[i] / float64(len(c))
	}
	var gold any
	if t.multipleInput {
		gold, err = t.docText(doc)
	} else {
		gold, err = t.docTarget(doc)
	}
	if err != nil {
		return nil, err
	}
	var golds []int
	multi := false
	switch g := gold.(type) {
	case int:
		if g >= n || g < 0 {
			g = -100
		}
		golds = []int{g}
	case string:
		g2 := -100
		for i, c := range choices {
			if c == g {
				g2 = i
				break
			}
		}
		golds = []int{g2}
	case []any:
		multi = true
		for _, e := range g {
			i, ok := e.(int)
			if !ok || i >= n {
				i = -100
			}
			golds = append(golds, i)
		}
	default:
		return nil, fmt.Errorf("target %v (%T) is neither a choice index nor a choice", gold, gold)
	}
	hit := func(pred int) float64 {
		for _, g := range golds {
			if g == pred {
				return 1
			}
		}
		return 0
	}
	out := map[string]any{}
	if use["acc"] {
		out["acc"] = hit(argmax(lls))
	}
	if use["acc_norm"] {
		out["acc_norm"] = hit(argmax(norm))
	}
	if use["acc_bytes"] {
		out["acc_bytes"] = hit(argmax(byByte))
	}
	if use["exact_match"] {
		em := 0.0
		for _, g := range golds {
			if g >= 0 && greedy[g] {
				em = 1
				if !multi {
					break
				}
			}
		}
		out["exact_match"] = em
	}
	if use["acc_mutual_info"] {
		if len(resps) != 2*n {
			return nil, fmt.Errorf("acc_mutual_info needs the unconditional loglikelihoods")
		}
		mi := make([]float64, n)
		for i := range mi {
			mi[i] = lls[i] - resps[n+i].(LLResult).LogProb
		}
		out["acc_mutual_info"] = hit(argmax(mi))
	}
	return out, nil
}

// scoreGeneration is lm-eval's generate_until scoring for exact_match (and
// pass@1 through the sandbox).
func (t *task) scoreGeneration(doc map[string]any, resp any, use map[string]bool, matchers map[string]*exactMatcher, o Options) (map[string]any, error) {
	gold, err := t.docTarget(doc)
	if err != nil {
		return nil, err
	}
	if t.choice.set {
		choices, err := t.docChoices(doc)
		if err != nil {
			return nil, err
		}
		i, ok := gold.(int)
		if !ok || i < 0 || i >= len(choices) {
			return nil, fmt.Errorf("target %v is not a choice index", gold)
		}
		gold = choices[i]
	}
	var golds []string
	if l, ok := gold.([]any); ok {
		for _, g := range l {
			golds = append(golds, fmt.Sprint(g))
		}
	} else {
		golds = []string{pyStr(gold)}
	}
	pred, _ := resp.(string)
	out := map[string]any{}
	if em := matchers["exact_match"]; em != nil && use["exact_match"] {
		v := 0.0
		for _, g := range golds {
			if em.match(pred, g) {
				v = 1
				break
			}
		}
		out["exact_match"] = v
	}
	if use["pass@1"] {
		prompt, err := t.text.text(doc)
		if err != nil {
			return nil, err
		}
		ok, err := runProgram(o, prompt+pred+"\n"+golds[0])
		if err != nil {
			return nil, err
		}
		out["pass@1"] = b2f(ok)
	}
	return out, nil
}

// runProgram runs a Python program through the configured sandbox command
// and reports whether it exited with status 0 in time.
func runProgram(o Options, program string) (bool, error) {
	if len(o.CodeSandbox) == 0 {
		return false, fmt.Errorf("no code sandbox configured")
	}
	dir, err := os.MkdirTemp("", "marin-eval-code-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	f := filepath.Join(dir, "program.py")
	if err := os.WriteFile(f, []byte(program), 0o600); err != nil {
		return false, err
	}
	to := o.CodeTimeout
	if to <= 0 {
		to = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), to)
	defer cancel()
	args := append(append([]string(nil), o.CodeSandbox[1:]...), f)
	cmd := exec.CommandContext(ctx, o.CodeSandbox[0], args...)
	cmd.Dir = dir
	err = cmd.Run()
	if err == nil {
		return true, nil
	}
	if _, ok := err.(*exec.ExitError); ok || ctx.Err() != nil {
		return false, nil
	}
	return false, fmt.Errorf("code sandbox %s: %w", o.CodeSandbox[0], err)
}

func aliasOf(t *evaltasks.Task) string {
	if t.TaskAlias != "" {
		return t.TaskAlias
	}
	return t.Task
}

func version(meta map[string]any) any {
	if v, ok := meta["version"]; ok {
		return normalizeValue(v)
	}
	return nil
}

func taskConfig(t *evaltasks.Task) (map[string]any, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["num_fewshot"] = t.Shots()
	m["target_delimiter"] = t.TargetDelim()
	m["fewshot_delimiter"] = t.FewshotDelim()
	return m, nil
}

func hashString(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// sample is lm-eval's logged sample for one document and filter.
func (t *task) sample(d docRun, filtered []any, filter string, vals map[string]any, metrics []evaltasks.Metric) Sample {
	target, _ := t.docTarget(d.doc)
	s := Sample{
		"doc_id": d.id,
		"doc":    d.doc,
		"target": target,
		"filter": filter,
	}
	var args, resps, fresps []any
	for i, in := range d.insts {
		switch in.reqType {
		case evaltasks.Loglikelihood:
			args = append(args, []any{in.shown, in.cont})
			r := in.resp.(LLResult)
			resps = append(resps, []any{[]any{jsonFloat(r.LogProb), r.Greedy}})
		case evaltasks.LoglikelihoodRolling:
			args = append(args, []any{in.text})
			resps = append(resps, []any{jsonFloat(in.resp.(float64))})
		case evaltasks.GenerateUntil:
			args = append(args, []any{in.shown, map[string]any{"until": in.until, "max_gen_toks": in.maxGen, "do_sample": false}})
			resps = append(resps, []any{in.resp})
		}
		switch f := filtered[i].(type) {
		case LLResult:
			fresps = append(fresps, []any{jsonFloat(f.LogProb), f.Greedy})
		case float64:
			fresps = append(fresps, jsonFloat(f))
		default:
			fresps = append(fresps, f)
		}
	}
	s["arguments"] = args
	s["resps"] = resps
	s["filtered_resps"] = fresps
	var names []string
	for _, m := range metrics {
		if v, ok := vals[m.Metric]; ok {
			names = append(names, m.Metric)
			switch x := v.(type) {
			case llCount:
				s[m.Metric] = []any{jsonFloat(x.LL), x.N}
			case float64:
				s[m.Metric] = jsonFloat(x)
			default:
				s[m.Metric] = x
			}
		}
	}
	s["metrics"] = names
	docJSON, _ := json.MarshalIndent(d.doc, "", "  ")
	s["doc_hash"] = hashString(string(docJSON))
	if len(d.insts) > 0 {
		s["prompt_hash"] = hashString(d.insts[0].shown)
	}
	s["target_hash"] = hashString(fmt.Sprint(target))
	return s
}

// sortedTaskNames returns the keys of m, sorted.
func sortedTaskNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
