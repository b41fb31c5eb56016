// Package ifeval scores IFEval: whether a response follows each of a
// prompt's verifiable instructions, strictly and loosely, as
// lm-evaluation-harness's ifeval task does (lm_eval/tasks/ifeval:
// instructions.py, utils.py, after Google's instruction_following_eval).
//
// Every instruction of the IFEval registry is implemented. Three pieces of
// the Python rely on NLP libraries that have no Go equivalent here, so the
// result can differ on some responses:
//
//   - language:response_language and change_case:english_capital /
//     english_lowercase detect the language with langdetect; here with
//     github.com/abadojack/whatlanggo (trigram profiles). Both agree on
//     clear text and can disagree on short or mixed-language text.
//   - length_constraints:number_sentences counts sentences with NLTK's
//     punkt model; here with lm-eval's own rule-based split_into_sentences
//     (instructions_util.py), which punkt usually agrees with.
//   - change_case:capital_word_frequency tokenizes words with
//     nltk.word_tokenize; here with a Penn-Treebank-style split on
//     whitespace and punctuation (hyphenated words stay one word).
package ifeval

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/abadojack/whatlanggo"
	"github.com/dlclark/regexp2"
)

// Outcome is one mode's verdict: every instruction followed, and each.
type Outcome struct {
	All  bool
	Each []bool
}

// Result is a response's strict and loose verdicts.
type Result struct {
	Strict, Loose Outcome
}

// Score checks resp against the instructions of an IFEval document (its
// instruction_id_list and kwargs).
func Score(doc map[string]any, resp string) (Result, error) {
	ids, err := stringList(doc["instruction_id_list"])
	if err != nil {
		return Result{}, fmt.Errorf("ifeval: instruction_id_list: %w", err)
	}
	kwl, _ := doc["kwargs"].([]any)
	prompt, _ := doc["prompt"].(string)
	var checks []checker
	for i, id := range ids {
		var kw map[string]any
		if i < len(kwl) {
			kw, _ = kwl[i].(map[string]any)
		}
		// lm-eval drops None and other falsy values before building.
		clean := map[string]any{}
		for k, v := range kw {
			if truthy(v) {
				clean[k] = v
			}
		}
		c, err := build(id, clean, prompt)
		if err != nil {
			return Result{}, fmt.Errorf("ifeval: instruction %d (%s): %w", i, id, err)
		}
		checks = append(checks, c)
	}
	var r Result
	r.Strict.All, r.Loose.All = true, true
	variants := looseVariants(resp)
	for _, c := range checks {
		s := strings.TrimSpace(resp) != "" && c(resp)
		l := false
		for _, v := range variants {
			if strings.TrimSpace(v) != "" && c(v) {
				l = true
				break
			}
		}
		r.Strict.Each = append(r.Strict.Each, s)
		r.Loose.Each = append(r.Loose.Each, l)
		r.Strict.All = r.Strict.All && s
		r.Loose.All = r.Loose.All && l
	}
	return r, nil
}

// looseVariants are the eight responses the loose check tries: as is,
// without asterisks, without its first and/or last line.
func looseVariants(resp string) []string {
	lines := strings.Split(resp, "\n")
	join := func(ls []string) string { return strings.TrimSpace(strings.Join(ls, "\n")) }
	var first, last, both string
	if len(lines) > 1 {
		first, last = join(lines[1:]), join(lines[:len(lines)-1])
	}
	if len(lines) > 2 {
		both = join(lines[1 : len(lines)-1])
	}
	noStar := func(s string) string { return strings.ReplaceAll(s, "*", "") }
	return []string{resp, noStar(resp), first, last, both, noStar(first), noStar(last), noStar(both)}
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case int:
		return x != 0
	case int64:
		return x != 0
	case float64:
		return x != 0
	case bool:
		return x
	case []any:
		return len(x) > 0
	case json.Number:
		return x.String() != "0"
	}
	return true
}

func stringList(v any) ([]string, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list, got %T", v)
	}
	out := make([]string, len(l))
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("element %d is %T", i, e)
		}
		out[i] = s
	}
	return out, nil
}

type checker func(resp string) bool

type args map[string]any

func (a args) str(k string) (string, bool) {
	s, ok := a[k].(string)
	return s, ok
}

func (a args) num(k string) (int, bool) {
	switch x := a[k].(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		return int(x), true
	case json.Number:
		n, err := x.Int64()
		return int(n), err == nil
	}
	return 0, false
}

func (a args) need(keys ...string) error {
	for _, k := range keys {
		if _, ok := a[k]; !ok {
			return fmt.Errorf("missing argument %q", k)
		}
	}
	return nil
}

// relation applies lm-eval's "less than" / "at least".
func relation(rel string, n, threshold int) bool {
	if rel == "less than" {
		return n < threshold
	}
	return n >= threshold
}

func checkRelation(rel string) error {
	if rel != "less than" && rel != "at least" {
		return fmt.Errorf("relation %q: want \"less than\" or \"at least\"", rel)
	}
	return nil
}

func pyRegex(pattern string, opts regexp2.RegexOptions) (*regexp2.Regexp, error) {
	return regexp2.Compile(pattern, opts)
}

func countMatches(re *regexp2.Regexp, s string) int {
	n := 0
	m, err := re.FindStringMatch(s)
	for err == nil && m != nil {
		n++
		m, err = re.FindNextMatch(m)
	}
	return n
}

// build makes the checker of one instruction (lm-eval's build_description
// then check_following).
func build(id string, a args, prompt string) (checker, error) {
	switch id {
	case "keywords:existence":
		kws, err := stringList(a["keywords"])
		if err != nil {
			return nil, fmt.Errorf("keywords: %w", err)
		}
		var res []*regexp2.Regexp
		for _, k := range kws {
			re, err := pyRegex(k, regexp2.IgnoreCase)
			if err != nil {
				return nil, err
			}
			res = append(res, re)
		}
		return func(v string) bool {
			for _, re := range res {
				if ok, _ := re.MatchString(v); !ok {
					return false
				}
			}
			return true
		}, nil
	case "keywords:frequency":
		if err := a.need("keyword", "frequency", "relation"); err != nil {
			return nil, err
		}
		kw, _ := a.str("keyword")
		freq, _ := a.num("frequency")
		rel, _ := a.str("relation")
		if err := checkRelation(rel); err != nil {
			return nil, err
		}
		re, err := pyRegex(strings.TrimSpace(kw), regexp2.IgnoreCase)
		if err != nil {
			return nil, err
		}
		return func(v string) bool { return relation(rel, countMatches(re, v), freq) }, nil
	case "keywords:forbidden_words":
		words, err := stringList(a["forbidden_words"])
		if err != nil {
			return nil, fmt.Errorf("forbidden_words: %w", err)
		}
		var res []*regexp2.Regexp
		for _, w := range words {
			re, err := pyRegex(`\b`+w+`\b`, regexp2.IgnoreCase)
			if err != nil {
				return nil, err
			}
			res = append(res, re)
		}
		return func(v string) bool {
			for _, re := range res {
				if ok, _ := re.MatchString(v); ok {
					return false
				}
			}
			return true
		}, nil
	case "keywords:letter_frequency":
		if err := a.need("letter", "let_frequency", "let_relation"); err != nil {
			return nil, err
		}
		letter, _ := a.str("letter")
		freq, _ := a.num("let_frequency")
		rel, _ := a.str("let_relation")
		if err := checkRelation(rel); err != nil {
			return nil, err
		}
		letter = strings.ToLower(strings.TrimSpace(letter))
		return func(v string) bool {
			return relation(rel, strings.Count(strings.ToLower(v), letter), freq)
		}, nil
	case "language:response_language":
		lang, ok := a.str("language")
		if !ok {
			return nil, fmt.Errorf("missing argument \"language\"")
		}
		return func(v string) bool { return detectLanguage(v) == lang }, nil
	case "length_constraints:number_sentences":
		if err := a.need("num_sentences", "relation"); err != nil {
			return nil, err
		}
		n, _ := a.num("num_sentences")
		rel, _ := a.str("relation")
		if err := checkRelation(rel); err != nil {
			return nil, err
		}
		return func(v string) bool { return relation(rel, len(SplitIntoSentences(v)), n) }, nil
	case "length_constraints:number_paragraphs":
		n, ok := a.num("num_paragraphs")
		if !ok {
			return nil, fmt.Errorf("missing argument \"num_paragraphs\"")
		}
		divider := regexp.MustCompile(`\s?\*\*\*\s?`)
		return func(v string) bool {
			paras := divider.Split(v, -1)
			count := len(paras)
			for i, p := range paras {
				if strings.TrimSpace(p) == "" {
					if i == 0 || i == len(paras)-1 {
						count--
					} else {
						return false
					}
				}
			}
			return count == n
		}, nil
	case "length_constraints:number_words":
		if err := a.need("num_words", "relation"); err != nil {
			return nil, err
		}
		n, _ := a.num("num_words")
		rel, _ := a.str("relation")
		if err := checkRelation(rel); err != nil {
			return nil, err
		}
		return func(v string) bool { return relation(rel, CountWords(v), n) }, nil
	case "length_constraints:nth_paragraph_first_word":
		if err := a.need("num_paragraphs", "nth_paragraph", "first_word"); err != nil {
			return nil, err
		}
		n, _ := a.num("num_paragraphs")
		nth, _ := a.num("nth_paragraph")
		fw, _ := a.str("first_word")
		fw = strings.ToLower(fw)
		return func(v string) bool {
			paras := strings.Split(v, "\n\n")
			count := len(paras)
			for _, p := range paras {
				if strings.TrimSpace(p) == "" {
					count--
				}
			}
			if nth > count || nth < 1 {
				return false
			}
			p := strings.TrimSpace(paras[nth-1])
			if p == "" {
				return false
			}
			word := strings.TrimSpace(strings.Fields(p)[0])
			word = strings.TrimLeft(word, "'")
			word = strings.TrimLeft(word, `"`)
			var first strings.Builder
			for _, r := range word {
				if strings.ContainsRune(`.,?!'"`, r) {
					break
				}
				first.WriteString(strings.ToLower(string(r)))
			}
			return count == n && first.String() == fw
		}, nil
	case "detectable_content:number_placeholders":
		n, ok := a.num("num_placeholders")
		if !ok {
			return nil, fmt.Errorf("missing argument \"num_placeholders\"")
		}
		re := regexp.MustCompile(`\[.*?\]`)
		return func(v string) bool { return len(re.FindAllString(v, -1)) >= n }, nil
	case "detectable_content:postscript":
		marker, ok := a.str("postscript_marker")
		if !ok {
			return nil, fmt.Errorf("missing argument \"postscript_marker\"")
		}
		marker = strings.TrimSpace(marker)
		var pat string
		switch marker {
		case "P.P.S":
			pat = `\s*p\.\s?p\.\s?s.*$`
		case "P.S.":
			pat = `\s*p\.\s?s\..*$`
		default:
			pat = `\s*` + strings.ToLower(marker) + `.*$`
		}
		re, err := pyRegex(pat, regexp2.Multiline)
		if err != nil {
			return nil, err
		}
		return func(v string) bool {
			ok, _ := re.MatchString(strings.ToLower(v))
			return ok
		}, nil
	case "detectable_format:number_bullet_lists":
		n, ok := a.num("num_bullets")
		if !ok {
			return nil, fmt.Errorf("missing argument \"num_bullets\"")
		}
		star := regexp.MustCompile(`(?m)^\s*\*[^\*].*$`)
		dash := regexp.MustCompile(`(?m)^\s*-.*$`)
		return func(v string) bool {
			return len(pyFindAll(star, v))+len(pyFindAll(dash, v)) == n
		}, nil
	case "detectable_format:constrained_response":
		opts := []string{"My answer is yes.", "My answer is no.", "My answer is maybe."}
		return func(v string) bool {
			v = strings.TrimSpace(v)
			for _, o := range opts {
				if strings.Contains(v, o) {
					return true
				}
			}
			return false
		}, nil
	case "detectable_format:number_highlighted_sections":
		n, ok := a.num("num_highlights")
		if !ok {
			return nil, fmt.Errorf("missing argument \"num_highlights\"")
		}
		single := regexp.MustCompile(`\*[^\n\*]*\*`)
		double := regexp.MustCompile(`\*\*[^\n\*]*\*\*`)
		return func(v string) bool {
			count := 0
			for _, h := range single.FindAllString(v, -1) {
				if strings.TrimSpace(strings.Trim(h, "*")) != "" {
					count++
				}
			}
			for _, h := range double.FindAllString(v, -1) {
				if strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(h, "**"), "**")) != "" {
					count++
				}
			}
			return count >= n
		}, nil
	case "detectable_format:multiple_sections":
		if err := a.need("section_spliter", "num_sections"); err != nil {
			return nil, err
		}
		sp, _ := a.str("section_spliter")
		n, _ := a.num("num_sections")
		re, err := pyRegex(`\s?`+strings.TrimSpace(sp)+`\s?\d+\s?`, regexp2.None)
		if err != nil {
			return nil, err
		}
		return func(v string) bool { return countMatches(re, v) >= n }, nil
	case "detectable_format:json_format":
		return func(v string) bool {
			v = strings.TrimSpace(v)
			for _, p := range []string{"```json", "```Json", "```JSON", "```"} {
				if strings.HasPrefix(v, p) {
					v = strings.TrimPrefix(v, p)
					break
				}
			}
			v = strings.TrimSpace(strings.TrimSuffix(v, "```"))
			return pyJSONValid(v)
		}, nil
	case "detectable_format:title":
		re := regexp.MustCompile(`<<[^\n]+>>`)
		return func(v string) bool {
			for _, t := range re.FindAllString(v, -1) {
				if strings.TrimSpace(strings.TrimRight(strings.TrimLeft(t, "<"), ">")) != "" {
					return true
				}
			}
			return false
		}, nil
	case "combination:two_responses":
		return func(v string) bool {
			var valid []string
			parts := strings.Split(v, "******")
			for i, p := range parts {
				if strings.TrimSpace(p) == "" {
					if i != 0 && i != len(parts)-1 {
						return false
					}
				} else {
					valid = append(valid, p)
				}
			}
			return len(valid) == 2 && strings.TrimSpace(valid[0]) != strings.TrimSpace(valid[1])
		}, nil
	case "combination:repeat_prompt":
		p, ok := a.str("prompt_to_repeat")
		if !ok {
			return nil, fmt.Errorf("prompt_to_repeat must be set")
		}
		want := strings.ToLower(strings.TrimSpace(p))
		return func(v string) bool {
			return strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), want)
		}, nil
	case "startend:end_checker":
		end, ok := a.str("end_phrase")
		if !ok {
			return nil, fmt.Errorf("missing argument \"end_phrase\"")
		}
		end = strings.ToLower(strings.TrimSpace(end))
		return func(v string) bool {
			v = strings.ToLower(strings.Trim(strings.TrimSpace(v), `"`))
			return strings.HasSuffix(v, end)
		}, nil
	case "change_case:capital_word_frequency":
		if err := a.need("capital_frequency", "capital_relation"); err != nil {
			return nil, err
		}
		n, _ := a.num("capital_frequency")
		rel, _ := a.str("capital_relation")
		if err := checkRelation(rel); err != nil {
			return nil, err
		}
		return func(v string) bool {
			c := 0
			for _, w := range wordTokenize(v) {
				if isUpper(w) {
					c++
				}
			}
			return relation(rel, c, n)
		}, nil
	case "change_case:english_capital":
		return func(v string) bool { return isUpper(v) && detectLanguage(v) == "en" }, nil
	case "change_case:english_lowercase":
		return func(v string) bool { return isLower(v) && detectLanguage(v) == "en" }, nil
	case "punctuation:no_comma":
		return func(v string) bool { return !strings.Contains(v, ",") }, nil
	case "startend:quotation":
		return func(v string) bool {
			v = strings.TrimSpace(v)
			r := []rune(v)
			return len(r) > 1 && r[0] == '"' && r[len(r)-1] == '"'
		}, nil
	}
	return nil, fmt.Errorf("unknown instruction %q", id)
}

// pyFindAll is re.findall for patterns without groups.
func pyFindAll(re *regexp.Regexp, s string) []string { return re.FindAllString(s, -1) }

// pyJSONValid is json.loads succeeding: JSON, plus Python's NaN and
// Infinity literals.
func pyJSONValid(s string) bool {
	if json.Valid([]byte(s)) {
		return true
	}
	r := strings.NewReplacer("-Infinity", "0", "Infinity", "0", "NaN", "0").Replace(s)
	return r != s && json.Valid([]byte(r))
}

// isUpper is Python's str.isupper: some cased character and none lower.
func isUpper(s string) bool {
	cased := false
	for _, r := range s {
		if unicode.IsLower(r) || unicode.IsTitle(r) {
			return false
		}
		if unicode.IsUpper(r) {
			cased = true
		}
	}
	return cased
}

// isLower is Python's str.islower.
func isLower(s string) bool {
	cased := false
	for _, r := range s {
		if unicode.IsUpper(r) || unicode.IsTitle(r) {
			return false
		}
		if unicode.IsLower(r) {
			cased = true
		}
	}
	return cased
}

// detectLanguage returns the ISO 639-1 code of the text's language.
func detectLanguage(s string) string {
	info := whatlanggo.Detect(s)
	return info.Lang.Iso6391()
}

var wordRE = regexp.MustCompile(`[\p{L}\p{N}_]+`)

// CountWords is lm-eval's count_words: RegexpTokenizer(r"\w+").
func CountWords(s string) int { return len(wordRE.FindAllString(s, -1)) }

var tbToken = regexp.MustCompile(`[\p{L}\p{N}_]+(?:[-'][\p{L}\p{N}_]+)*|[^\s\p{L}\p{N}_]`)

// wordTokenize approximates nltk.word_tokenize: words (hyphens and
// apostrophes inside them kept) and single punctuation marks.
func wordTokenize(s string) []string { return tbToken.FindAllString(s, -1) }
