package eval

import (
	"fmt"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/marin-go/marin/backends/eval/pyrand"
	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/plugins/evaltasks"
)

// task is a task definition compiled against its documents.
type task struct {
	def                              *evaltasks.Task
	text, target, choice, descr, gen *docField
	docs                             []map[string]any // evaluated, in order
	fewshot                          []map[string]any // the few-shot pool
	fewshotSameSplit                 bool             // the pool is the evaluated split
	multipleInput                    bool
	rnd                              *pyrand.Rand
}

// ContextOptions are lm-eval's prompt settings for a run.
type ContextOptions struct {
	// SystemInstruction is prepended (before the task's description) as
	// the system message.
	SystemInstruction string
	// ApplyChatTemplate renders prompts with the model's chat format.
	ApplyChatTemplate bool
	// FewshotAsMultiturn keeps few-shot examples as separate user and
	// assistant turns (with ApplyChatTemplate); otherwise they collapse
	// into one user turn.
	FewshotAsMultiturn bool
	// FewshotSeed seeds the default sampler (lm-eval's 1234).
	FewshotSeed uint64
}

// newTaskTemplates compiles a task's templates (no documents).
func newTaskTemplates(def *evaltasks.Task) (*task, error) {
	t := &task{def: def}
	return t, t.compile()
}

func newTask(def *evaltasks.Task, docs, fewshot []map[string]any, fewshotSameSplit bool, seed uint64) (*task, error) {
	t := &task{def: def, docs: docs, fewshot: fewshot, fewshotSameSplit: fewshotSameSplit, rnd: pyrand.New(seed)}
	if err := t.compile(); err != nil {
		return nil, err
	}
	if fewshot == nil && def.FewshotConfig != nil && len(def.FewshotConfig.Samples) > 0 {
		for _, s := range def.FewshotConfig.Samples {
			t.fewshot = append(t.fewshot, normalizeValue(cloneMap(s)).(map[string]any))
		}
	}
	if t.def.Shots() > 0 && len(t.fewshot) == 0 {
		return nil, fmt.Errorf("task %s: num_fewshot %d but no few-shot documents", def.Task, def.Shots())
	}
	// lm-eval: multiple inputs when doc_to_text gives an int for a task
	// with choices (winogrande: each choice is a context).
	if len(docs) > 0 && t.choice.set {
		v, err := t.docText(docs[0])
		if err != nil {
			return nil, err
		}
		_, t.multipleInput = v.(int)
	}
	return t, nil
}

// compile compiles the task's templates.
func (t *task) compile() error {
	def := t.def
	var err error
	compile := func(name string, v any) *docField {
		if err != nil {
			return nil
		}
		var f *docField
		f, err = compileField(v)
		if err != nil {
			err = fmt.Errorf("task %s: %s: %w", def.Task, name, err)
		}
		return f
	}
	t.text = compile("doc_to_text", def.DocToText)
	t.target = compile("doc_to_target", def.DocToTarget)
	t.choice = compile("doc_to_choice", def.DocToChoice)
	var descr, gen any
	if def.Description != "" {
		descr = def.Description
	}
	if def.GenPrefix != "" {
		gen = def.GenPrefix
	}
	t.descr = compile("description", descr)
	t.gen = compile("gen_prefix", gen)
	return err
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// docText is doc_to_text: a string, or an int for multiple-input tasks.
func (t *task) docText(doc map[string]any) (any, error) {
	v, err := t.text.textOrIndex(doc, t.choice.set, false)
	if err != nil {
		return nil, fmt.Errorf("task %s: doc_to_text: %w", t.def.Task, err)
	}
	return v, nil
}

// docTarget is doc_to_target: a string, an int (an index into the
// choices) or a list.
func (t *task) docTarget(doc map[string]any) (any, error) {
	v, err := t.target.textOrIndex(doc, t.choice.set, true)
	if err != nil {
		return nil, fmt.Errorf("task %s: doc_to_target: %w", t.def.Task, err)
	}
	return v, nil
}

// docChoices is doc_to_choice.
func (t *task) docChoices(doc map[string]any) ([]string, error) {
	if !t.choice.set {
		return nil, nil
	}
	c, err := t.choice.choices(doc)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.def.Task, err)
	}
	return c, nil
}

// resolveField is lm-eval's resolve_field: a document key's value, else
// the field rendered as a template.
func resolveField(f *docField, doc map[string]any) (string, error) {
	if f == nil || !f.set {
		return "", nil
	}
	return f.text(doc)
}

// message is lm-eval's Message: plain-text rendering appends the delimiter.
type message struct {
	role, content, delim string
}

func (m message) toText() string { return m.content + m.delim }

// maybeDelimit is lm-eval's maybe_delimit.
func maybeDelimit(prefix, suffix, delim string) string {
	if prefix == "" {
		return suffix
	}
	if suffix == "" {
		return prefix
	}
	if endsSpace(prefix) || startsSpace(suffix) {
		return prefix + suffix
	}
	return prefix + delim + suffix
}

// requiresDelimiter is lm-eval's requires_delimiter.
func requiresDelimiter(prefix, suffix string) bool {
	if prefix == "" {
		return false
	}
	return !(endsSpace(prefix) || startsSpace(suffix))
}

func endsSpace(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && unicode.IsSpace(r)
}

func startsSpace(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && unicode.IsSpace(r)
}

// qaTurn is lm-eval's build_qa_turn. a is nil for the evaluated document.
func qaTurn(q string, c []string, a any, genPrefix, tgtDelim, fewDelim string) ([]message, error) {
	hasAnswer := a != nil && a != ""
	userDelim := ""
	switch {
	case hasAnswer && genPrefix == "":
		userDelim = tgtDelim
	case genPrefix != "" && requiresDelimiter(q, genPrefix):
		userDelim = tgtDelim
	}
	msgs := []message{{"user", q, userDelim}}
	if hasAnswer {
		var ans string
		switch x := a.(type) {
		case int:
			if c == nil {
				ans = fmt.Sprint(x)
			} else {
				if x < 0 || x >= len(c) {
					return nil, fmt.Errorf("few-shot target %d is not an index into %d choices", x, len(c))
				}
				ans = c[x]
			}
		case []any:
			if len(x) == 0 {
				return nil, fmt.Errorf("empty few-shot target list")
			}
			ans = fmt.Sprint(x[0])
		case string:
			ans = x
		default:
			ans = fmt.Sprint(x)
		}
		msgs = append(msgs, message{"assistant", maybeDelimit(genPrefix, ans, " "), fewDelim})
	} else if genPrefix != "" {
		msgs = append(msgs, message{"assistant", genPrefix, ""})
	}
	return msgs, nil
}

// sampleFewshot draws n few-shot documents for doc: lm-eval's first_n
// sampler, or its default sampler (random.Random(seed).sample, drawing one
// extra and dropping the evaluated document when the pool is its split).
// The default sampler's state runs on from document to document, as in
// lm-eval, so documents must be visited in order.
func (t *task) sampleFewshot(n int, doc map[string]any) ([]map[string]any, error) {
	if n == 0 {
		return nil, nil
	}
	var evalDoc map[string]any
	if t.fewshotSameSplit {
		evalDoc = doc
	}
	if t.def.Sampler() == "first_n" {
		pool := t.fewshot
		if evalDoc != nil {
			pool = withoutDoc(pool, evalDoc)
		}
		if n > len(pool) {
			return nil, fmt.Errorf("task %s: %d few-shot examples requested, %d available", t.def.Task, n, len(pool))
		}
		return pool[:n], nil
	}
	k := n
	if evalDoc != nil {
		k = n + 1
	}
	if k > len(t.fewshot) {
		return nil, fmt.Errorf("task %s: %d few-shot examples requested, %d available", t.def.Task, n, len(t.fewshot))
	}
	idx := t.rnd.Sample(len(t.fewshot), k)
	picked := make([]map[string]any, 0, k)
	for _, i := range idx {
		picked = append(picked, t.fewshot[i])
	}
	if evalDoc != nil {
		picked = withoutDoc(picked, evalDoc)
		if len(picked) > n {
			picked = picked[:n]
		}
	}
	return picked, nil
}

func withoutDoc(pool []map[string]any, doc map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(pool))
	for _, d := range pool {
		if !reflect.DeepEqual(d, doc) {
			out = append(out, d)
		}
	}
	return out
}

// contexts builds the prompt(s) for doc: one, or one per choice for
// multiple-input tasks (lm-eval's fewshot_context).
func (t *task) contexts(doc map[string]any, o ContextOptions) ([]Prompt, error) {
	shots := t.def.Shots()
	fewDelim := t.def.FewshotDelim()
	tgtDelim := t.def.TargetDelim()
	descr, err := resolveField(t.descr, doc)
	if err != nil {
		return nil, fmt.Errorf("task %s: description: %w", t.def.Task, err)
	}
	var msgs []message
	if sp := maybeDelimit(o.SystemInstruction, descr, fewDelim); sp != "" {
		msgs = append(msgs, message{"system", sp, ""})
	}
	fs, err := t.sampleFewshot(shots, doc)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		qv, err := t.docText(f)
		if err != nil {
			return nil, err
		}
		c, err := t.docChoices(f)
		if err != nil {
			return nil, err
		}
		a, err := t.docTarget(f)
		if err != nil {
			return nil, err
		}
		gp, err := resolveField(t.gen, f)
		if err != nil {
			return nil, err
		}
		var q string
		if t.multipleInput {
			i, ok := qv.(int)
			if !ok || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("task %s: few-shot doc_to_text %v is not a choice index", t.def.Task, qv)
			}
			q, c = c[i], nil
		} else {
			q = fmt.Sprint(qv)
		}
		turn, err := qaTurn(q, c, a, gp, tgtDelim, fewDelim)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", t.def.Task, err)
		}
		msgs = append(msgs, turn...)
	}
	gp, err := resolveField(t.gen, doc)
	if err != nil {
		return nil, err
	}
	finish := func(ms []message) Prompt {
		if !o.ApplyChatTemplate {
			var b strings.Builder
			for _, m := range ms {
				b.WriteString(m.toText())
			}
			return Prompt{Text: b.String()}
		}
		var cm []chat.Message
		if o.FewshotAsMultiturn {
			for _, m := range ms {
				cm = append(cm, chat.Message{Role: m.role, Content: m.content})
			}
		} else {
			cm = singleTurn(ms)
		}
		return Prompt{Messages: cm, Continue: gp != ""}
	}
	if t.multipleInput {
		c, err := t.docChoices(doc)
		if err != nil {
			return nil, err
		}
		var out []Prompt
		for _, ctx := range c {
			turn, err := qaTurn(ctx, nil, nil, gp, "", "")
			if err != nil {
				return nil, err
			}
			out = append(out, finish(append(append([]message(nil), msgs...), turn...)))
		}
		return out, nil
	}
	qv, err := t.docText(doc)
	if err != nil {
		return nil, err
	}
	turn, err := qaTurn(fmt.Sprint(qv), nil, nil, gp, tgtDelim, "")
	if err != nil {
		return nil, err
	}
	return []Prompt{finish(append(msgs, turn...))}, nil
}

// singleTurn is lm-eval's multiturn_to_singleturn: the system message, one
// user message with every other turn's text, and a final assistant message
// when the prompt ends in one.
func singleTurn(ms []message) []chat.Message {
	var sys *message
	if len(ms) > 0 && ms[0].role == "system" {
		sys, ms = &ms[0], ms[1:]
	}
	var out []chat.Message
	if sys != nil {
		out = append(out, chat.Message{Role: "system", Content: sys.content})
	}
	if len(ms) == 0 {
		return out
	}
	user := ms
	var last *message
	if ms[len(ms)-1].role == "assistant" {
		user, last = ms[:len(ms)-1], &ms[len(ms)-1]
	}
	var b strings.Builder
	for i, m := range user {
		if i == len(user)-1 {
			b.WriteString(m.content)
		} else {
			b.WriteString(m.toText())
		}
	}
	out = append(out, chat.Message{Role: "user", Content: b.String()})
	if last != nil {
		out = append(out, chat.Message{Role: "assistant", Content: last.content})
	}
	return out
}
