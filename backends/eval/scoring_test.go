package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/marin-go/marin/plugins/evaltasks"
)

func mcTask(t *testing.T, def *evaltasks.Task, docs []map[string]any) *task {
	t.Helper()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	tk, err := newTask(def, docs, nil, false, evaltasks.DefaultFewshotSeed)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func mcDef() *evaltasks.Task {
	return &evaltasks.Task{
		Task: "hand", DatasetPath: "x/y", TestSplit: "test", OutputType: evaltasks.MultipleChoice,
		DocToText: "{{q}}", DocToTarget: "gold", DocToChoice: "choices",
		MetricList: []evaltasks.Metric{{Metric: "acc"}, {Metric: "acc_norm"}, {Metric: "acc_bytes"}, {Metric: "exact_match"}},
	}
}

// TestMultipleChoiceMetricsHandComputed scores hand-made loglikelihoods.
// lm-eval's acc_norm divides by the choice's length in characters
// (Python's len), acc_bytes by its UTF-8 bytes:
//
//	choices  "A"   "BB"   "ééé" (3 characters, 6 bytes)
//	ll       -2.0  -3.0   -4.5
//	/chars   -2.0  -1.5   -1.5  → argmax 1 (the first of equal maxima)
//	/bytes   -2.0  -1.5   -0.75 → argmax 2
//	raw                         → argmax 0
func TestMultipleChoiceMetricsHandComputed(t *testing.T) {
	resps := []any{LLResult{-2.0, false}, LLResult{-3.0, true}, LLResult{-4.5, false}}
	for _, c := range []struct {
		gold                        int
		acc, accNorm, accBytes, exm float64
	}{
		{0, 1, 0, 0, 0},
		{1, 0, 1, 0, 1},
		{2, 0, 0, 1, 0},
		{7, 0, 0, 0, 0}, // out of range: lm-eval's -100, counted wrong
	} {
		doc := map[string]any{"q": "?", "gold": c.gold, "choices": []any{"A", "BB", "ééé"}}
		tk := mcTask(t, mcDef(), []map[string]any{doc})
		m, err := tk.processResults(doc, resps, tk.metricList(), nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]float64{"acc": c.acc, "acc_norm": c.accNorm, "acc_bytes": c.accBytes, "exact_match": c.exm}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("gold %d: %s = %v, want %v", c.gold, k, m[k], v)
			}
		}
	}
}

func TestStringTargetAndDigitRendering(t *testing.T) {
	// A target that renders as digits becomes a choice index (lm-eval's
	// isdigit rule); a non-digit string is looked up among the choices.
	def := mcDef()
	def.DocToTarget = "{{label}}"
	doc := map[string]any{"q": "?", "label": "2", "choices": []any{"x", "y", "z"}}
	tk := mcTask(t, def, []map[string]any{doc})
	g, err := tk.docTarget(doc)
	if err != nil || g != 2 {
		t.Fatalf("target = %v (%T), %v; want int 2", g, g, err)
	}
	def.DocToTarget = "{{answer}}"
	doc = map[string]any{"q": "?", "answer": "(B)", "choices": []any{"x"}}
	def.DocToChoice = []any{"(A)", "(B)"}
	tk = mcTask(t, def, []map[string]any{doc})
	m, err := tk.processResults(doc, []any{LLResult{-5, false}, LLResult{-1, true}}, tk.metricList(), nil, Options{})
	if err != nil || m["acc"] != 1.0 {
		t.Fatalf("acc = %v, %v; want 1 (gold found among the choices)", m["acc"], err)
	}
}

func TestTemplatesOfShippedTasks(t *testing.T) {
	cases := []struct {
		name  string
		field any
		doc   map[string]any
		kind  string // text, target, choices
		want  any
	}{
		{"arc target", "{{choices.label.index(answerKey)}}", map[string]any{"answerKey": "C", "choices": map[string]any{"label": []any{"A", "B", "C", "D"}, "text": []any{"a", "b", "c", "d"}}}, "target", 2},
		{"openbookqa target", "{{choices.label.index(answerKey.lstrip())}}", map[string]any{"answerKey": " B", "choices": map[string]any{"label": []any{"A", "B"}}}, "target", 1},
		{"arc choices", "{{choices.text}}", map[string]any{"choices": map[string]any{"text": []any{"it's", "say \"hi\"", "ö"}}}, "choices", []string{"it's", "say \"hi\"", "ö"}},
		{"piqa choices", "{{[sol1, sol2]}}", map[string]any{"sol1": "one", "sol2": "two's"}, "choices", []string{"one", "two's"}},
		{"lambada text", "{{text.split(' ')[:-1]|join(' ')}}", map[string]any{"text": "the cat sat"}, "text", "the cat"},
		{"lambada target", "{{' '+text.split(' ')[-1]}}", map[string]any{"text": "the cat sat"}, "text", " sat"},
		{"gsm8k target", "{{answer.split('####')[-1].strip() if answer is defined else target}}", map[string]any{"answer": "so 4\n#### 72"}, "text", "72"},
		{"winogrande text", "{{ {'1': 0, '2': 1}[answer] }}", map[string]any{"answer": "2"}, "target", 1},
		{"winogrande choices", "{{ [sentence[:sentence.index('_')] + option1, sentence[:sentence.index('_')] + option2] }}", map[string]any{"sentence": "Tom gave _ the ball.", "option1": "Ann", "option2": "Bob"}, "choices", []string{"Tom gave Ann", "Tom gave Bob"}},
		{"winogrande target", "{{ sentence[sentence.index('_') + 1:].strip() }}", map[string]any{"sentence": "Tom gave _ the ball."}, "text", "the ball."},
		{"mmlu_pro choices", "{{ ['A','B','C','D','E','F'][:options|length] }}", map[string]any{"options": []any{"p", "q", "r"}}, "choices", []string{"A", "B", "C"}},
		{"musr choices", "{{choices}}", map[string]any{"choices": "['Ann', \"Bob's\"]"}, "choices", []string{"Ann", "Bob's"}},
		{"column", "question_stem", map[string]any{"question_stem": "Why?"}, "text", "Why?"},
	}
	for _, c := range cases {
		f, err := compileField(c.field)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got any
		switch c.kind {
		case "text":
			got, err = f.textOrIndex(c.doc, false, false)
		case "target":
			got, err = f.textOrIndex(c.doc, true, true)
		case "choices":
			var cs []string
			cs, err = f.choices(c.doc)
			got = cs
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if fmtAny(got) != fmtAny(c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, got, c.want)
		}
	}
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case []string:
		return "[" + strings.Join(x, "|") + "]"
	}
	return strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(fmtV(v), "\n", "\\n"), "\t", " "))
}

func fmtV(v any) string {
	return strings.TrimSpace(strings.Join(strings.Fields(strings.ReplaceAll(sprint(v), ",", " ")), " "))
}

func sprint(v any) string {
	switch x := v.(type) {
	case int:
		return "int:" + itoa(x)
	case string:
		return "str:" + x
	}
	return "?"
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	neg := i < 0
	if neg {
		i = -i
	}
	var b []byte
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

func TestHellaswagProcessDocs(t *testing.T) {
	docs := []map[string]any{{
		"activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.",
		"ctx_b": "THEN", "endings": []any{", the man adds wax to the windshield [title] and cuts it.", " [header] a [step] b"}, "label": "3",
	}}
	if err := hellaswagDocs(docs); err != nil {
		t.Fatal(err)
	}
	d := docs[0]
	if want := "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles. Then"; d["query"] != want {
		t.Errorf("query %q, want %q", d["query"], want)
	}
	ch := d["choices"].([]any)
	// Python strips before removing the tags, so the second keeps a space.
	if ch[0] != ", the man adds wax to the windshield. and cuts it." || ch[1] != " a b" {
		t.Errorf("choices %q", ch)
	}
	if d["gold"] != 3 {
		t.Errorf("gold %v", d["gold"])
	}
}

// TestFewshotSamplingFixedSeed: lm-eval's default sampler is one
// random.Random(1234) per task drawing, for each evaluated document in
// order, n+1 examples from its split and dropping the document itself.
// The expected draws were made by CPython 3.11:
//
//	r = random.Random(1234); [r.sample(list(range(10)), 4) for _ in range(3)]
//	→ [7, 1, 0, 9], [9, 0, 1, 8], [5, 3, 0, 7]
//
// so documents 0, 1, 2 get examples [7 1 9], [9 0 8], [5 3 0].
func TestFewshotSamplingFixedSeed(t *testing.T) {
	var docs []map[string]any
	for i := 0; i < 10; i++ {
		docs = append(docs, map[string]any{"q": "q" + itoa(i), "a": "a" + itoa(i)})
	}
	three := 3
	def := &evaltasks.Task{Task: "fs", DatasetPath: "x/y", TestSplit: "test", OutputType: evaltasks.GenerateUntil,
		DocToText: "{{q}}", DocToTarget: "{{a}}", NumFewshot: &three}
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	tk, err := newTask(def, docs, docs, true, evaltasks.DefaultFewshotSeed)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{7, 1, 9}, {9, 0, 8}, {5, 3, 0}}
	for i := 0; i < 3; i++ {
		ps, err := tk.contexts(docs[i], ContextOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, j := range want[i] {
			b.WriteString("q" + itoa(j) + " a" + itoa(j) + "\n\n")
		}
		b.WriteString("q" + itoa(i))
		if ps[0].Text != b.String() {
			t.Errorf("doc %d prompt %q, want %q", i, ps[0].Text, b.String())
		}
	}
}

// TestPromptConventions: the description opens the prompt, examples end
// with the few-shot delimiter, answers follow the target delimiter; with
// a chat template the examples collapse into one user turn.
func TestPromptConventions(t *testing.T) {
	two := 2
	def := &evaltasks.Task{Task: "p", DatasetPath: "x/y", TestSplit: "test", FewshotSplit: "dev", OutputType: evaltasks.MultipleChoice,
		DocToText: "Q: {{q}}\nA:", DocToTarget: "{{gold}}", DocToChoice: []any{"no", "yes"}, Description: "About {{topic}}.\n\n",
		NumFewshot: &two, FewshotConfig: &evaltasks.FewshotConfig{Sampler: "first_n"}}
	dev := []map[string]any{{"q": "one", "gold": 1, "topic": "t"}, {"q": "two", "gold": 0, "topic": "t"}, {"q": "three", "gold": 1, "topic": "t"}}
	doc := map[string]any{"q": "four", "gold": 1, "topic": "cats"}
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	tk, err := newTask(def, []map[string]any{doc}, dev, false, evaltasks.DefaultFewshotSeed)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := tk.contexts(doc, ContextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := "About cats.\n\nQ: one\nA: yes\n\nQ: two\nA: no\n\nQ: four\nA:"
	if ps[0].Text != want {
		t.Errorf("prompt %q\nwant   %q", ps[0].Text, want)
	}
	insts, err := tk.instances(doc, ContextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 2 || insts[0].cont != " no" || insts[1].cont != " yes" {
		t.Errorf("continuations %q %q, want \" no\" \" yes\" (leading-space target delimiter)", insts[0].cont, insts[1].cont)
	}
	// Chat: the system message holds the description; the examples and the
	// question are one user message; no delimiter before the choice.
	ps, err = tk.contexts(doc, ContextOptions{ApplyChatTemplate: true, SystemInstruction: "Be brief."})
	if err != nil {
		t.Fatal(err)
	}
	m := ps[0].Messages
	if len(m) != 2 || m[0].Role != "system" || m[0].Content != "Be brief.\n\nAbout cats.\n\n" || m[1].Role != "user" ||
		m[1].Content != "Q: one\nA: yes\n\nQ: two\nA: no\n\nQ: four\nA:" {
		t.Errorf("chat messages %#v", m)
	}
	insts, err = tk.instances(doc, ContextOptions{ApplyChatTemplate: true})
	if err != nil {
		t.Fatal(err)
	}
	if insts[0].cont != "no" {
		t.Errorf("chat continuation %q, want %q", insts[0].cont, "no")
	}
}

func TestExactMatchOptionsAndFilters(t *testing.T) {
	em, err := newExactMatcher(evaltasks.Metric{Metric: "exact_match", IgnoreCase: true, RegexesToIgnore: []string{",", `\$`, "(?s).*#### ", `\.$`}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pred, ref string
		want      bool
	}{
		{"1,234", "1234", true},
		{"$18.", "18", true},
		{"so #### 18", "18", true},
		{"18.5", "18", false},
		{"ABC", "abc", true},
	} {
		if got := em.match(c.pred, c.ref); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.pred, c.ref, got)
		}
	}
	punct, _ := newExactMatcher(evaltasks.Metric{IgnorePunctuation: true, IgnoreNumbers: true})
	if !punct.match("a.b!1", "ab") {
		t.Error("ignore_punctuation/ignore_numbers")
	}
	strict, err := compilePipeline(evaltasks.FilterPipeline{Name: "strict-match", Filter: []evaltasks.Filter{{Function: "regex", RegexPattern: `The answer is (\-?[0-9\.\,]+).`}, {Function: "take_first"}}})
	if err != nil {
		t.Fatal(err)
	}
	flex, err := compilePipeline(evaltasks.FilterPipeline{Name: "flexible-extract", Filter: []evaltasks.Filter{{Function: "regex", GroupSelect: -1, RegexPattern: `(-?[$0-9.,]{2,})|(-?[0-9]+)`}, {Function: "take_first"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp := "Tom has 3 apples and buys 12. The answer is 15. Then 7"
	// The pattern's final "." matches the space after "15." (as in Python),
	// so the group keeps the full stop; exact_match's \.$ removes it.
	if v, _ := applyPipeline(strict, []any{resp}); v != "15." {
		t.Errorf("strict %q", v)
	}
	if v, _ := applyPipeline(flex, []any{resp}); v != "7" {
		t.Errorf("flexible %q", v)
	}
	if v, _ := applyPipeline(strict, []any{"no number"}); v != "[invalid]" {
		t.Errorf("fallback %q", v)
	}
}

func TestAggregationsAndStderr(t *testing.T) {
	xs := []any{1.0, 0.0, 1.0, 1.0}
	v, _ := aggregate("mean", xs)
	se, ok, _ := stderr("mean", xs, 1000)
	// sample stddev of {1,0,1,1} = 0.5; / sqrt(4) = 0.25
	if v != 0.75 || !ok || math.Abs(se-0.25) > 1e-12 {
		t.Errorf("mean %v stderr %v %v", v, se, ok)
	}
	lls := []any{-1.0, -3.0}
	if p, _ := aggregate("perplexity", lls); math.Abs(p-math.Exp(2)) > 1e-12 {
		t.Errorf("perplexity %v", p)
	}
	pairs := []any{llCount{-4, 2}, llCount{-2, 2}}
	if b, _ := aggregate("bits_per_byte", pairs); math.Abs(b-1.5/math.Ln2) > 1e-12 {
		t.Errorf("bits_per_byte %v", b)
	}
	if w, _ := aggregate("weighted_perplexity", pairs); math.Abs(w-math.Exp(1.5)) > 1e-12 {
		t.Errorf("weighted_perplexity %v", w)
	}
	if _, ok, _ := stderr("bits_per_byte", pairs, 1000); ok {
		t.Error("bits_per_byte has no standard error in lm-eval")
	}
	if n := countWords(" a b  c "); n != 5 {
		t.Errorf("count_words = %d, want 5 as Python's len(re.split(r'\\s+', ...))", n)
	}
}

func TestPyLiteral(t *testing.T) {
	v, err := parsePyLiteral(`['a', "b'c", 'd\'e', 3, -1.5, True, None, ('x',), {'k': [1]}]`)
	if err != nil {
		t.Fatal(err)
	}
	l := v.([]any)
	if l[0] != "a" || l[1] != "b'c" || l[2] != "d'e" || l[3] != int64(3) || l[4] != -1.5 || l[5] != true || l[6] != nil {
		t.Errorf("parsed %#v", l)
	}
	if _, err := parsePyLiteral("['a'"); err == nil {
		t.Error("unterminated list accepted")
	}
}

// TestUntilDefaults: lm-eval stops generation at the few-shot delimiter
// when generation_kwargs say no until; an explicit empty list stops at
// nothing (but EOS).
func TestUntilDefaults(t *testing.T) {
	five := 5
	doc := map[string]any{"q": "?", "a": "x"}
	for _, c := range []struct {
		kw   *evaltasks.GenerationKwargs
		want []string
	}{
		{nil, []string{"\n\n"}},
		{&evaltasks.GenerationKwargs{MaxGenToks: &five}, []string{"\n\n"}},
		{&evaltasks.GenerationKwargs{Until: []string{}, MaxGenToks: &five}, []string{}},
		{&evaltasks.GenerationKwargs{Until: []string{"Q:"}}, []string{"Q:"}},
	} {
		def := &evaltasks.Task{Task: "g", DatasetPath: "x/y", TestSplit: "test", OutputType: evaltasks.GenerateUntil,
			DocToText: "{{q}}", DocToTarget: "{{a}}", GenerationKwargs: c.kw}
		tk := mcTask(t, def, []map[string]any{doc})
		insts, err := tk.instances(doc, ContextOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if fmtList(insts[0].until) != fmtList(c.want) {
			t.Errorf("%+v: until %q, want %q", c.kw, insts[0].until, c.want)
		}
	}
	// The distinction survives the step config's JSON.
	b, _ := json.Marshal(evaltasks.GenerationKwargs{Until: []string{}})
	var back evaltasks.GenerationKwargs
	if err := json.Unmarshal(b, &back); err != nil || back.Until == nil {
		t.Errorf("empty until lost in %s", b)
	}
}

func fmtList(l []string) string { return strings.Join(l, "|") + fmt.Sprint(len(l)) }

// TestBBHCoTFewshotShipped checks the shipped bbh_cot_fewshot task against
// lm-eval's rules by hand: the prompt is the description, the three
// chain-of-thought exemplars (no delimiter between "step by step.\n" and
// the reasoning: target_delimiter "") and the question, joined by "\n\n";
// generation stops at "</s>", "Q" or a blank line; the get-answer filter
// keeps what follows "the answer is " up to the line's last character
// (Python's findall with the (?<=…) lookbehind and (?=.) lookahead).
func TestBBHCoTFewshotShipped(t *testing.T) {
	s, err := evaltasks.Lookup("bbh_cot_fewshot")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tasks) != 27 || len(s.Groups) != 1 || s.Groups[0].AggregateMetricList[0].FilterList[0] != "get-answer" {
		t.Fatalf("bbh_cot_fewshot: %d tasks, groups %+v", len(s.Tasks), s.Groups)
	}
	var def *evaltasks.Task
	for i := range s.Tasks {
		if s.Tasks[i].Task == "bbh_cot_fewshot_boolean_expressions" {
			def = &s.Tasks[i]
		}
	}
	if def == nil {
		t.Fatal("no bbh_cot_fewshot_boolean_expressions")
	}
	doc := map[string]any{"input": "True and not False is", "target": "True"}
	tk := mcTask(t, def, []map[string]any{doc})
	insts, err := tk.instances(doc, ContextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := insts[0].prompt.Text
	want0 := "Evaluate the result of a random Boolean expression.\n\nQ: not ( ( not not True ) ) is\nA: Let's think step by step.\nRemember that (i)"
	if !strings.HasPrefix(p, want0) {
		t.Errorf("prompt starts %q\nwant          %q", p[:min(len(p), len(want0))], want0)
	}
	wantEnd := "= not not False = True. So the answer is True.\n\nQ: True and not False is\nA: Let's think step by step.\n"
	if !strings.HasSuffix(p, wantEnd) || strings.Count(p, "\nA: Let's think step by step.\n") != 4 {
		t.Errorf("prompt ends %q\nwant        %q", p[max(0, len(p)-len(wantEnd)):], wantEnd)
	}
	if fmtList(insts[0].until) != fmtList([]string{"</s>", "Q", "\n\n"}) {
		t.Errorf("until %q", insts[0].until)
	}
	getAnswer, err := compilePipeline(def.FilterList[0])
	if err != nil {
		t.Fatal(err)
	}
	em, err := newExactMatcher(def.MetricList[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		resp, filtered string
		match          bool
	}{
		{"not False = True. So the answer is True.", "True", true},
		{"So the answer is True", "Tru", false},                                                  // the lookahead wants one more character
		{"So the answer is (B).\nMore", "(B)", false},                                            // against target "True"
		{"Thus the answer is True.\n", "True", true},                                             // "." stops at the newline
		{"the answer is True. And the answer is False.", "True. And the answer is False", false}, // greedy, one match
		{"I cannot tell.", "[invalid]", false},
	} {
		v, err := applyPipeline(getAnswer, []any{c.resp})
		if err != nil {
			t.Fatal(err)
		}
		if v != c.filtered {
			t.Errorf("get-answer(%q) = %q, want %q", c.resp, v, c.filtered)
		}
		if got := em.match(fmt.Sprint(v), "True"); got != c.match {
			t.Errorf("exact_match(%q, \"True\") = %v", v, got)
		}
	}
}
