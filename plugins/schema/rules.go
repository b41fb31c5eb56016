package schema

import (
	"fmt"
	"strings"
)

func (r Rule) wellFormed() error {
	n := len(r.Paths)
	switch r.Kind {
	case ExactlyOneOf, AtMostOneOf, AtLeastOneOf:
		if n < 2 {
			return fmt.Errorf("rule %s needs two paths or more", r.Kind)
		}
	case Requires:
		if n < 2 {
			return fmt.Errorf("rule %s needs two paths or more", r.Kind)
		}
	case NotGreater, Equal, Divides:
		if n != 2 {
			return fmt.Errorf("rule %s needs two paths", r.Kind)
		}
	case SomePositive:
		if n != 1 || strings.Count(r.Paths[0], "*") != 1 {
			return fmt.Errorf("rule %s needs one path with one \"*\"", r.Kind)
		}
	default:
		return fmt.Errorf("unknown rule %q", r.Kind)
	}
	return nil
}

// check applies the rule to the object m found at base.
func (r Rule) check(base string, m map[string]any, out *[]Issue) {
	at := func(path, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if r.Message != "" {
			msg = r.Message
		}
		*out = append(*out, Issue{Path: join(base, path), Message: msg})
	}
	switch r.Kind {
	case ExactlyOneOf, AtMostOneOf, AtLeastOneOf:
		var set []string
		for _, p := range r.Paths {
			if isSet(get(m, p)) {
				set = append(set, p)
			}
		}
		switch {
		case len(set) > 1 && r.Kind != AtLeastOneOf:
			at(set[1], "conflicts with %s: give only one of %s", set[0], strings.Join(r.Paths, ", "))
		case len(set) == 0 && r.Kind != AtMostOneOf:
			at("", "give one of %s", strings.Join(r.Paths, ", "))
		}
	case Requires:
		if !isSet(get(m, r.Paths[0])) {
			return
		}
		for _, p := range r.Paths[1:] {
			if !isSet(get(m, p)) {
				at(r.Paths[0], "needs %s to be set too", p)
			}
		}
	case NotGreater, Equal:
		a, aok, _ := number(get(m, r.Paths[0]))
		b, bok, _ := number(get(m, r.Paths[1]))
		if !aok || !bok {
			return
		}
		if r.Kind == NotGreater && a > b {
			at(r.Paths[0], "%s exceeds %s (%s)", formatNum(a), r.Paths[1], formatNum(b))
		}
		if r.Kind == Equal && a != 0 && b != 0 && a != b {
			at(r.Paths[0], "%s differs from %s (%s); they must match", formatNum(a), r.Paths[1], formatNum(b))
		}
	case Divides:
		a, aok, aw := number(get(m, r.Paths[0]))
		b, bok, bw := number(get(m, r.Paths[1]))
		if !aok || !bok || !aw || !bw || a <= 0 || b <= 0 {
			return
		}
		if int64(b)%int64(a) != 0 {
			at(r.Paths[0], "%s does not divide %s (%s)", formatNum(a), r.Paths[1], formatNum(b))
		}
	case SomePositive:
		pre, post, _ := strings.Cut(r.Paths[0], "*")
		pre, post = strings.TrimSuffix(pre, "."), strings.TrimPrefix(post, ".")
		coll, ok := get(m, pre).(map[string]any)
		if !ok || len(coll) == 0 {
			return // an empty collection is the field's own error
		}
		for _, v := range coll {
			x := v
			if post != "" {
				sub, ok := v.(map[string]any)
				if !ok {
					continue
				}
				x = get(sub, post)
			}
			if f, ok, _ := number(x); ok && f > 0 {
				return
			}
		}
		at(pre, "no entry has a positive %s", orRoot(post))
	}
}

// get follows a dotted path through nested objects; nil when absent.
func get(m map[string]any, path string) any {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[part]
	}
	return cur
}

// isSet: present, not null, not an empty string, list or object.
func isSet(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
