package eval

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/ardanlabs/jinja"
	"github.com/dlclark/regexp2"
)

// Templates run on github.com/ardanlabs/jinja (what backends/tokens/chat
// uses for chat templates). lm-eval's templates call two things that engine
// lacks, which are supplied here: Python's list/str .index(x) (rewritten to
// the filter |_py_index(x)) and lm-eval's regex_replace filter. Values a
// template computes (doc_to_choice lists) are read back exactly by
// rendering `{{ (expr)|tojson }}` and decoding the JSON, where lm-eval
// renders the Python repr and literal_evals it: the same value, without
// the engine's repr quirks.

// docField is a compiled doc_to_text / doc_to_target / doc_to_choice /
// description value: a column name, a template, an integer or a list.
type docField struct {
	src    string
	tmpl   *jinja.Template // the template (nil for int, list, column-only)
	value  *jinja.Template // `{{ (expr)|tojson }}` when src is one {{ expr }}
	isInt  bool
	n      int
	list   []any
	isList bool
	set    bool
}

var singleExpr = regexp.MustCompile(`^\{\{-?([\s\S]*?)-?\}\}$`)

func compileField(v any) (*docField, error) {
	f := &docField{set: v != nil}
	switch x := v.(type) {
	case nil:
		return f, nil
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer", x)
		}
		f.isInt, f.n = true, int(n)
	case float64:
		f.isInt, f.n = true, int(x)
	case int:
		f.isInt, f.n = true, x
	case int64:
		f.isInt, f.n = true, int(x)
	case []any:
		f.isList, f.list = true, x
	case []string:
		f.isList = true
		for _, s := range x {
			f.list = append(f.list, s)
		}
	case map[string]any:
		// lm-eval takes a dict's values as the choices.
		f.isList = true
		keys := sortedKeys(x)
		for _, k := range keys {
			f.list = append(f.list, x[k])
		}
	case string:
		f.src = x
		t, err := compileTemplate(x)
		if err != nil {
			return nil, err
		}
		f.tmpl = t
		if m := singleExpr.FindStringSubmatch(strings.TrimSpace(x)); m != nil && !strings.Contains(m[1], "{{") && !strings.Contains(m[1], "}}") && !strings.Contains(m[1], "{%") {
			vt, err := compileTemplate("{{ (" + m[1] + ")|tojson }}")
			if err == nil {
				f.value = vt
			}
		}
	default:
		return nil, fmt.Errorf("%T: want a column name, a template, an integer or a list", v)
	}
	return f, nil
}

// compileTemplate compiles a lm-eval template after rewriting .index(.
func compileTemplate(src string) (*jinja.Template, error) {
	t, err := jinja.Compile(rewriteIndex(src))
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", abbreviate(src, 80), err)
	}
	return t, nil
}

// rewriteIndex turns `.index(` inside {{ }} and {% %} (outside string
// literals) into `|_py_index(`: Python's list.index and str.index, which
// lm-eval templates use (arc's choices.label.index(answerKey)).
func rewriteIndex(src string) string {
	var b strings.Builder
	i := 0
	for i < len(src) {
		open := -1
		for j := i; j+1 < len(src); j++ {
			if src[j] == '{' && (src[j+1] == '{' || src[j+1] == '%') {
				open = j
				break
			}
		}
		if open < 0 {
			b.WriteString(src[i:])
			break
		}
		b.WriteString(src[i : open+2])
		closer := "}}"
		if src[open+1] == '%' {
			closer = "%}"
		}
		j := open + 2
		var quote byte
		for j < len(src) {
			c := src[j]
			if quote != 0 {
				b.WriteByte(c)
				if c == '\\' && j+1 < len(src) {
					b.WriteByte(src[j+1])
					j += 2
					continue
				}
				if c == quote {
					quote = 0
				}
				j++
				continue
			}
			if c == '\'' || c == '"' {
				quote = c
				b.WriteByte(c)
				j++
				continue
			}
			if strings.HasPrefix(src[j:], closer) {
				break
			}
			if strings.HasPrefix(src[j:], ".index(") {
				b.WriteString("|_py_index(")
				j += len(".index(")
				continue
			}
			b.WriteByte(c)
			j++
		}
		i = j
	}
	return b.String()
}

// filters are the extra filters every render gets.
var filters = map[string]jinja.Value{
	"_py_index": jinja.NewCallable("index", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		if len(args) != 2 {
			return jinja.Undefined(), fmt.Errorf("index() takes exactly one argument")
		}
		obj, x := args[0], args[1]
		switch {
		case obj.IsList():
			for i, it := range obj.AsList().Items {
				if it.Equals(x) {
					return jinja.NewInt(int64(i)), nil
				}
			}
			return jinja.Undefined(), fmt.Errorf("%s is not in list", x.String())
		case obj.IsString() && x.IsString():
			k := strings.Index(obj.AsString(), x.AsString())
			if k < 0 {
				return jinja.Undefined(), fmt.Errorf("substring %s not found", x.String())
			}
			// Python counts code points.
			return jinja.NewInt(int64(len([]rune(obj.AsString()[:k])))), nil
		}
		return jinja.Undefined(), fmt.Errorf("index() on %s", obj.String())
	}),
	"regex_replace": jinja.NewCallable("regex_replace", func(args []jinja.Value, kw map[string]jinja.Value) (jinja.Value, error) {
		if len(args) < 3 {
			return jinja.Undefined(), fmt.Errorf("regex_replace(pattern, repl) needs two arguments")
		}
		re, err := regexp2.Compile(args[1].AsString(), regexp2.None)
		if err != nil {
			return jinja.Undefined(), err
		}
		count := -1
		if len(args) > 3 && args[3].IsInt() && args[3].AsInt() > 0 {
			count = int(args[3].AsInt())
		}
		out, err := re.Replace(args[0].AsString(), pyReplacement(args[2].AsString()), -1, count)
		if err != nil {
			return jinja.Undefined(), err
		}
		return jinja.NewString(out), nil
	}),
}

// pyReplacement turns Python's \1 group references into regexp2's $1.
func pyReplacement(r string) string {
	var b strings.Builder
	for i := 0; i < len(r); i++ {
		if r[i] == '\\' && i+1 < len(r) && r[i+1] >= '0' && r[i+1] <= '9' {
			b.WriteString("${" + string(r[i+1]) + "}")
			i++
			continue
		}
		if r[i] == '$' {
			b.WriteString("$$")
			continue
		}
		b.WriteByte(r[i])
	}
	return b.String()
}

// render runs t on doc.
func render(t *jinja.Template, doc map[string]any) (string, error) {
	data := make(map[string]jinja.Value, len(doc)+len(filters))
	for k, v := range doc {
		data[k] = jinja.FromGoValue(v)
	}
	for k, v := range filters {
		data[k] = v
	}
	return t.RenderValues(data)
}

// text returns the field as a string (its column's value or its rendering).
func (f *docField) text(doc map[string]any) (string, error) {
	switch {
	case !f.set:
		return "", nil
	case f.isInt:
		return fmt.Sprint(f.n), nil
	case f.isList:
		return "", fmt.Errorf("a list where text is expected")
	}
	if v, ok := doc[f.src]; ok {
		return fmt.Sprint(v), nil
	}
	return render(f.tmpl, doc)
}

// textOrIndex is lm-eval's doc_to_text / doc_to_target for a string field:
// a column's value as is, else the rendering, which becomes an int when it
// is all digits and the task has choices, and (for targets) a list when it
// looks like one.
func (f *docField) textOrIndex(doc map[string]any, hasChoices, listOK bool) (any, error) {
	switch {
	case !f.set:
		return "", nil
	case f.isInt:
		return f.n, nil
	case f.isList:
		return f.list, nil
	}
	if v, ok := doc[f.src]; ok {
		return normalizeValue(v), nil
	}
	s, err := render(f.tmpl, doc)
	if err != nil {
		return nil, err
	}
	if hasChoices && isDigits(s) {
		var n int
		if _, err := fmt.Sscan(s, &n); err == nil {
			return n, nil
		}
	}
	if listOK && len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if v, err := f.evalValue(doc, s); err == nil {
			if l, ok := v.([]any); ok {
				return l, nil
			}
		}
	}
	return s, nil
}

// choices is lm-eval's doc_to_choice: a list (literal, a column, or the
// value of a template).
func (f *docField) choices(doc map[string]any) ([]string, error) {
	var v any
	switch {
	case f.isList:
		v = f.list
	case f.isInt:
		return nil, fmt.Errorf("doc_to_choice is an integer")
	default:
		if c, ok := doc[f.src]; ok {
			v = c
		} else {
			s, err := render(f.tmpl, doc)
			if err != nil {
				return nil, err
			}
			if v, err = f.evalValue(doc, s); err != nil {
				return nil, fmt.Errorf("doc_to_choice %q rendered %q, which is not a list: %w", abbreviate(f.src, 60), abbreviate(s, 60), err)
			}
		}
	}
	if s, ok := v.(string); ok {
		// A column holding a Python list literal (MuSR's choices).
		pv, err := parsePyLiteral(s)
		if err != nil {
			return nil, fmt.Errorf("doc_to_choice: %q is not a list", abbreviate(s, 60))
		}
		v = pv
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("doc_to_choice gave %T, want a list", v)
	}
	out := make([]string, len(l))
	for i, e := range l {
		switch x := e.(type) {
		case string:
			out[i] = x
		default:
			out[i] = pyStr(x)
		}
	}
	return out, nil
}

// evalValue is literal_eval(render(template)): through tojson when the
// template is a single expression, else by parsing the rendering.
func (f *docField) evalValue(doc map[string]any, rendered string) (any, error) {
	if f.value != nil {
		js, err := render(f.value, doc)
		if err == nil {
			var v any
			if err := json.Unmarshal([]byte(js), &v); err == nil {
				if s, ok := v.(string); ok {
					return parsePyLiteral(s)
				}
				return normalizeValue(v), nil
			}
		}
	}
	return parsePyLiteral(rendered)
}

// pyStr formats a value as Python's str() would for the simple cases.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d.0", int64(x))
		}
		return fmt.Sprint(x)
	}
	return fmt.Sprint(v)
}

// isDigits is Python's str.isdigit.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
