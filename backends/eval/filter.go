package eval

import (
	"fmt"
	"strings"

	"github.com/dlclark/regexp2"

	"github.com/marin-go/marin/plugins/evaltasks"
)

// A filter pipeline turns a document's responses (generate_until outputs)
// into what the metrics compare, as lm-eval's FilterEnsemble does: each
// step maps the list of responses; take_first ends with one string.

type filterStep func(resps []any) ([]any, error)

type pipeline struct {
	name  string
	steps []filterStep
}

// defaultPipeline is lm-eval's "none" filter: take the first response.
func defaultPipeline() pipeline {
	return pipeline{name: "none", steps: []filterStep{takeFirst}}
}

func takeFirst(resps []any) ([]any, error) {
	if len(resps) == 0 {
		return nil, fmt.Errorf("take_first: no responses")
	}
	return []any{resps[0]}, nil
}

func compilePipeline(p evaltasks.FilterPipeline) (pipeline, error) {
	out := pipeline{name: p.Name}
	for i, f := range p.Filter {
		step, err := compileFilter(f)
		if err != nil {
			return pipeline{}, fmt.Errorf("filter %s step %d (%s): %w", p.Name, i, f.Function, err)
		}
		out.steps = append(out.steps, step)
	}
	return out, nil
}

func mapStrings(fn func(string) string) filterStep {
	return func(resps []any) ([]any, error) {
		out := make([]any, len(resps))
		for i, r := range resps {
			s, ok := r.(string)
			if !ok {
				return nil, fmt.Errorf("want text responses, got %T", r)
			}
			out[i] = fn(s)
		}
		return out, nil
	}
}

func compileFilter(f evaltasks.Filter) (filterStep, error) {
	switch f.Function {
	case "take_first":
		return takeFirst, nil
	case "take_first_k":
		return func(resps []any) ([]any, error) {
			if len(resps) < f.K {
				return nil, fmt.Errorf("take_first_k: %d responses, want %d", len(resps), f.K)
			}
			return resps[:f.K], nil
		}, nil
	case "lowercase":
		return mapStrings(strings.ToLower), nil
	case "uppercase":
		return mapStrings(strings.ToUpper), nil
	case "remove_whitespace":
		return mapStrings(func(s string) string { return strings.TrimSpace(s) }), nil
	case "majority_vote":
		return func(resps []any) ([]any, error) {
			// Counter.most_common(1): the highest count, first seen on ties.
			counts := map[any]int{}
			var order []any
			for _, r := range resps {
				if counts[r] == 0 {
					order = append(order, r)
				}
				counts[r]++
			}
			best := order[0]
			for _, r := range order {
				if counts[r] > counts[best] {
					best = r
				}
			}
			return []any{best}, nil
		}, nil
	case "regex":
		re, err := compilePyRegex(f.RegexPattern)
		if err != nil {
			return nil, err
		}
		fallback := f.Fallback
		if fallback == "" {
			fallback = "[invalid]"
		}
		return mapStrings(func(s string) string { return regexExtract(re, s, f.GroupSelect, fallback) }), nil
	}
	return nil, fmt.Errorf("unknown filter function %q", f.Function)
}

// regexExtract is lm-eval's RegexFilter on one response: Python's
// re.findall (whole matches without groups, the group with one, tuples
// with several), the group_select-th match (negative counts from the end),
// the first non-empty group of a tuple, stripped; the fallback when nothing
// matches.
func regexExtract(re *regexp2.Regexp, s string, groupSelect int, fallback string) string {
	var matches [][]string
	m, err := re.FindStringMatch(s)
	for err == nil && m != nil {
		groups := m.Groups()
		var vals []string
		if len(groups) == 1 {
			vals = []string{m.String()}
		} else {
			for _, g := range groups[1:] {
				vals = append(vals, g.String())
			}
		}
		matches = append(matches, vals)
		m, err = re.FindNextMatch(m)
	}
	if len(matches) == 0 {
		return fallback
	}
	i := groupSelect
	if i < 0 {
		i += len(matches)
	}
	if i < 0 || i >= len(matches) {
		// Python raises IndexError here; lm-eval would crash. Treat as no match.
		return fallback
	}
	vals := matches[i]
	out := ""
	if len(vals) == 1 {
		out = vals[0]
	} else {
		found := false
		for _, v := range vals {
			if v != "" {
				out, found = v, true
				break
			}
		}
		if !found {
			out = fallback
		}
	}
	return strings.TrimSpace(out)
}
