// Package schema declares and checks the configuration of a plugin op.
//
// An op's config is a JSON object. Its schema says which keys exist, their
// types, which are required, their defaults, enums and numeric ranges, and
// rules across fields ("exactly one of model_config, model_name_or_path,
// initialize_from_checkpoint_path"). A plugin declares the schema once —
// usually derived from the Go struct it decodes the config into (FromStruct)
// — and sends it in its Describe reply; the host validates every step's
// config against it while planning, so `marin --dry-run` reports a mistake
// with the script position of the value before anything runs, in the style
// of Terraform's provider schemas. The plugin SDK checks the same schema
// again when the op runs and decodes strictly (unknown keys are errors).
//
// Values are what encoding/json produces (nil, bool, float64 or json.Number,
// string, []any, map[string]any) or the Go equivalents (int, int64).
package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Type is the type of a config value.
type Type string

// The value types.
const (
	String Type = "string"
	Int    Type = "int"    // a whole number
	Number Type = "number" // any number (an int is a number)
	Bool   Type = "bool"
	Object Type = "object" // the keys in Fields (plus any other key when Open)
	Map    Type = "map"    // any string keys, each value an Elem
	List   Type = "list"   // a list of Elem
	Any    Type = "any"    // anything, unchecked
)

// Field describes one config key, or (as a schema's root) the whole config.
type Field struct {
	Name string `json:"name,omitempty"`
	Type Type   `json:"type"`
	Doc  string `json:"doc,omitempty"`
	// Required keys must be present and not null.
	Required bool `json:"required,omitempty"`
	// Nullable keys may be null (null means unset).
	Nullable bool `json:"nullable,omitempty"`
	// Default is the value the op uses when the key is absent (or null).
	Default any `json:"default,omitempty"`
	// Enum lists the allowed values of a string.
	Enum []string `json:"enum,omitempty"`
	// Min and Max bound a number; Exclusive* make the bounds strict.
	Min          *float64 `json:"min,omitempty"`
	Max          *float64 `json:"max,omitempty"`
	ExclusiveMin bool     `json:"exclusive_min,omitempty"`
	ExclusiveMax bool     `json:"exclusive_max,omitempty"`
	// NonEmpty strings, lists and maps must have at least one element.
	NonEmpty bool `json:"non_empty,omitempty"`
	// Fields are an Object's keys.
	Fields []*Field `json:"fields,omitempty"`
	// Open objects accept keys other than Fields, unchecked.
	Open bool `json:"open,omitempty"`
	// Elem is the type of a List's elements and a Map's values.
	Elem *Field `json:"elem,omitempty"`
	// Rules are checks across an Object's fields.
	Rules []Rule `json:"rules,omitempty"`
}

// RuleKind names a cross-field rule.
type RuleKind string

// The rules. Paths are dotted and relative to the object that holds the
// rule; a "*" segment matches every key of a map ("components.*.weight").
// A value is "set" when it is present, not null, and (for objects, lists
// and strings) not empty.
const (
	// ExactlyOneOf: exactly one of Paths is set.
	ExactlyOneOf RuleKind = "exactly_one_of"
	// AtMostOneOf: no two of Paths are set.
	AtMostOneOf RuleKind = "at_most_one_of"
	// AtLeastOneOf: one of Paths or more is set.
	AtLeastOneOf RuleKind = "at_least_one_of"
	// Requires: when Paths[0] is set, every other path is set too.
	Requires RuleKind = "requires"
	// NotGreater: Paths[0] ≤ Paths[1] when both are set numbers.
	NotGreater RuleKind = "not_greater"
	// Equal: Paths[0] = Paths[1] when both are set and not zero.
	Equal RuleKind = "equal"
	// Divides: Paths[0] divides Paths[1] when both are set positive ints.
	Divides RuleKind = "divides"
	// SomePositive: Paths[0] (with one "*") matches at least one number > 0.
	SomePositive RuleKind = "some_positive"
)

// Rule is a check across fields.
type Rule struct {
	Kind  RuleKind `json:"kind"`
	Paths []string `json:"paths"`
	// Message, when set, replaces the rule's generic message.
	Message string `json:"message,omitempty"`
}

// Issue is one way a config fails its schema.
type Issue struct {
	// Path is the dotted path of the offending value ("resources.device",
	// "data.components.tulu.weight", "tags[2]"); "" for the whole config.
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (i Issue) String() string {
	if i.Path == "" {
		return i.Message
	}
	return i.Path + ": " + i.Message
}

// Validate checks a config against the schema and returns every issue,
// sorted by path. A nil schema accepts anything.
func (f *Field) Validate(v any) []Issue {
	if f == nil {
		return nil
	}
	var out []Issue
	f.check("", v, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (f *Field) check(path string, v any, out *[]Issue) {
	add := func(format string, args ...any) {
		*out = append(*out, Issue{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if v == nil {
		if f.Required {
			add("is required")
		}
		return
	}
	switch f.Type {
	case Any, "":
		return
	case String:
		s, ok := v.(string)
		if !ok {
			add("must be a string, got %s", describe(v))
			return
		}
		if f.NonEmpty && s == "" {
			add("must not be empty")
		}
		if len(f.Enum) > 0 && !contains(f.Enum, s) {
			add("must be one of %s, got %q%s", quoteList(f.Enum), s, Suggest(s, f.Enum))
		}
	case Bool:
		if _, ok := v.(bool); !ok {
			add("must be true or false, got %s", describe(v))
		}
	case Int, Number:
		x, isNum, whole := number(v)
		if !isNum {
			add("must be a number, got %s", describe(v))
			return
		}
		if f.Type == Int && !whole {
			add("must be a whole number, got %s", formatNum(x))
			return
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			add("must be finite, got %s", formatNum(x))
			return
		}
		if msg := f.rangeMessage(x); msg != "" {
			add("%s, got %s", msg, formatNum(x))
		}
	case List:
		l, ok := v.([]any)
		if !ok {
			add("must be a list, got %s", describe(v))
			return
		}
		if f.NonEmpty && len(l) == 0 {
			add("must not be empty")
		}
		if f.Elem != nil {
			for i, e := range l {
				f.Elem.check(fmt.Sprintf("%s[%d]", path, i), e, out)
			}
		}
	case Map:
		m, ok := v.(map[string]any)
		if !ok {
			add("must be a dict, got %s", describe(v))
			return
		}
		if f.NonEmpty && len(m) == 0 {
			add("must not be empty")
		}
		if f.Elem != nil {
			for _, k := range sortedKeys(m) {
				f.Elem.check(join(path, k), m[k], out)
			}
		}
	case Object:
		m, ok := v.(map[string]any)
		if !ok {
			add("must be a dict, got %s", describe(v))
			return
		}
		known := map[string]bool{}
		for _, sub := range f.Fields {
			known[sub.Name] = true
			sub.check(join(path, sub.Name), m[sub.Name], out)
		}
		if !f.Open {
			var names []string
			for _, sub := range f.Fields {
				names = append(names, sub.Name)
			}
			for _, k := range sortedKeys(m) {
				if !known[k] {
					*out = append(*out, Issue{Path: join(path, k), Message: "unknown key" + Suggest(k, names)})
				}
			}
		}
		for _, r := range f.Rules {
			r.check(path, m, out)
		}
	default:
		add("schema error: unknown type %q", f.Type)
	}
}

func (f *Field) rangeMessage(x float64) string {
	lowOK := f.Min == nil || x > *f.Min || (!f.ExclusiveMin && x == *f.Min)
	highOK := f.Max == nil || x < *f.Max || (!f.ExclusiveMax && x == *f.Max)
	if lowOK && highOK {
		return ""
	}
	switch {
	case f.Min != nil && f.Max != nil:
		lo, hi := "[", "]"
		if f.ExclusiveMin {
			lo = "("
		}
		if f.ExclusiveMax {
			hi = ")"
		}
		return fmt.Sprintf("must be in %s%s, %s%s", lo, formatNum(*f.Min), formatNum(*f.Max), hi)
	case f.Min != nil:
		if f.ExclusiveMin {
			if *f.Min == 0 {
				return "must be positive"
			}
			return "must be greater than " + formatNum(*f.Min)
		}
		if *f.Min == 0 {
			return "must not be negative"
		}
		return "must be at least " + formatNum(*f.Min)
	default:
		if f.ExclusiveMax {
			return "must be less than " + formatNum(*f.Max)
		}
		return "must be at most " + formatNum(*f.Max)
	}
}

// Lookup returns the field at a dotted path below f ("resources.device",
// "data.components.NAME.weight", "tags[0]"), or nil.
func (f *Field) Lookup(path string) *Field {
	cur := f
	for _, part := range strings.Split(path, ".") {
		idx := 0
		if i := strings.IndexByte(part, '['); i >= 0 {
			idx = strings.Count(part[i:], "[")
			part = part[:i]
		}
		if cur == nil {
			return nil
		}
		switch cur.Type {
		case Object:
			var next *Field
			for _, sub := range cur.Fields {
				if sub.Name == part {
					next = sub
				}
			}
			cur = next
		case Map:
			cur = cur.Elem
		default:
			return nil
		}
		for ; idx > 0 && cur != nil; idx-- {
			if cur.Type != List {
				return nil
			}
			cur = cur.Elem
		}
	}
	return cur
}

// ApplyDefaults returns a copy of the config object m with every absent (or
// null, when the field is not Nullable) key that has a Default set to it,
// recursively through objects.
func (f *Field) ApplyDefaults(m map[string]any) map[string]any {
	if f == nil || f.Type != Object {
		return m
	}
	out := make(map[string]any, len(m)+len(f.Fields))
	for k, v := range m {
		out[k] = v
	}
	for _, sub := range f.Fields {
		v, present := out[sub.Name]
		if (!present || (v == nil && !sub.Nullable)) && sub.Default != nil {
			out[sub.Name] = sub.Default
			continue
		}
		if sub.Type == Object {
			if mm, ok := v.(map[string]any); ok {
				out[sub.Name] = sub.ApplyDefaults(mm)
			}
		}
		if sub.Type == Map && sub.Elem != nil && sub.Elem.Type == Object {
			if mm, ok := v.(map[string]any); ok {
				cp := make(map[string]any, len(mm))
				for k, e := range mm {
					if em, ok := e.(map[string]any); ok {
						cp[k] = sub.Elem.ApplyDefaults(em)
					} else {
						cp[k] = e
					}
				}
				out[sub.Name] = cp
			}
		}
	}
	return out
}

// Marshal encodes the schema for the wire (Describe).
func (f *Field) Marshal() ([]byte, error) { return json.Marshal(f) }

// Unmarshal decodes a schema sent by a plugin; empty input is no schema.
func Unmarshal(data []byte) (*Field, error) {
	if len(data) == 0 {
		return nil, nil
	}
	f := &Field{}
	if err := json.Unmarshal(data, f); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	if err := f.wellFormed(""); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	return f, nil
}

func (f *Field) wellFormed(path string) error {
	switch f.Type {
	case String, Int, Number, Bool, Any, "":
	case Object:
		for _, sub := range f.Fields {
			if sub == nil || sub.Name == "" {
				return fmt.Errorf("%s: a field has no name", orRoot(path))
			}
			if err := sub.wellFormed(join(path, sub.Name)); err != nil {
				return err
			}
		}
	case List, Map:
		if f.Elem != nil {
			if err := f.Elem.wellFormed(path + "[]"); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: unknown type %q", orRoot(path), f.Type)
	}
	for _, r := range f.Rules {
		if err := r.wellFormed(); err != nil {
			return fmt.Errorf("%s: %w", orRoot(path), err)
		}
	}
	return nil
}

func orRoot(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}

// describe names a value's type for messages.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("the bool %v", x)
	case json.Number:
		return "the number " + string(x)
	case float64, float32, int, int64, int32:
		return fmt.Sprintf("the number %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a dict"
	}
	return fmt.Sprintf("a %T", v)
}

// number reports v as a float64, whether it is a number and whether it is
// whole.
func number(v any) (x float64, ok, whole bool) {
	switch n := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return float64(i), true, true
		}
		f, err := n.Float64()
		if err != nil {
			return 0, false, false
		}
		return f, true, f == math.Trunc(f) && !math.IsInf(f, 0)
	case float64:
		return n, true, n == math.Trunc(n) && !math.IsInf(n, 0)
	case float32:
		return float64(n), true, float64(n) == math.Trunc(float64(n))
	case int:
		return float64(n), true, true
	case int64:
		return float64(n), true, true
	case int32:
		return float64(n), true, true
	}
	return 0, false, false
}

func formatNum(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
