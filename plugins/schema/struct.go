package schema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// FromStruct derives a schema from the Go struct an op decodes its config
// into, so the declaration and the decoder are one: keys come from the json
// tags, types from the Go types (string, ints, floats, bool, nested structs
// → objects, map[string]T → maps, []T → lists, json.RawMessage / any →
// anything; a pointer makes the key nullable), and constraints from two
// more tags:
//
//	schema:"required,min=0,gt=0,max=1,lt=1,enum=linear|cosine|constant,nonempty,open,default=linear"
//	doc:"what the key means"
//
// min/max are inclusive bounds, gt/lt exclusive; default is parsed by the
// field's type; open lets an object hold keys it does not declare. A struct
// with a method `SchemaRules() []schema.Rule` (value receiver) adds its
// cross-field rules. Fields tagged json:"-" are not part of the config.
func FromStruct(v any) (*Field, error) {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("schema.FromStruct: want a struct, got %T", v)
	}
	return fromType(t, "", map[reflect.Type]bool{})
}

// MustFromStruct is FromStruct for package-level declarations; it panics on
// a malformed declaration (a programming error caught by any test).
func MustFromStruct(v any) *Field {
	f, err := FromStruct(v)
	if err != nil {
		panic(err)
	}
	return f
}

var (
	rawMessageType = reflect.TypeOf(json.RawMessage(nil))
	rulesType      = reflect.TypeOf((*interface{ SchemaRules() []Rule })(nil)).Elem()
)

func fromType(t reflect.Type, path string, seen map[reflect.Type]bool) (*Field, error) {
	f := &Field{}
	if t.Kind() == reflect.Pointer {
		f.Nullable = true
		t = t.Elem()
	}
	switch {
	case t == rawMessageType || t.Kind() == reflect.Interface:
		f.Type = Any
	case t.Kind() == reflect.String:
		f.Type = String
	case t.Kind() == reflect.Bool:
		f.Type = Bool
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		f.Type = Int
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		f.Type = Number
	case t.Kind() == reflect.Slice:
		f.Type = List
		elem, err := fromType(t.Elem(), path+"[]", seen)
		if err != nil {
			return nil, err
		}
		f.Elem = elem
	case t.Kind() == reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("schema: %s: map keys must be strings", orRoot(path))
		}
		f.Type = Map
		if t.Elem().Kind() == reflect.Interface {
			break // map[string]any: values unchecked
		}
		elem, err := fromType(t.Elem(), path+".*", seen)
		if err != nil {
			return nil, err
		}
		f.Elem = elem
	case t.Kind() == reflect.Struct:
		if seen[t] {
			return nil, fmt.Errorf("schema: %s: recursive type %s", orRoot(path), t)
		}
		seen[t] = true
		defer delete(seen, t)
		f.Type = Object
		if err := addStructFields(f, t, path, seen); err != nil {
			return nil, err
		}
		if t.Implements(rulesType) {
			f.Rules = reflect.Zero(t).Interface().(interface{ SchemaRules() []Rule }).SchemaRules()
		}
	default:
		return nil, fmt.Errorf("schema: %s: unsupported Go type %s", orRoot(path), t)
	}
	return f, nil
}

func addStructFields(f *Field, t reflect.Type, path string, seen map[reflect.Type]bool) error {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			if err := addStructFields(f, sf.Type, path, seen); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = sf.Name
		}
		sub, err := fromType(sf.Type, join(path, name), seen)
		if err != nil {
			return err
		}
		sub.Name = name
		sub.Doc = sf.Tag.Get("doc")
		if err := applyTag(sub, sf.Tag.Get("schema")); err != nil {
			return fmt.Errorf("schema: %s: %w", join(path, name), err)
		}
		f.Fields = append(f.Fields, sub)
	}
	return nil
}

func applyTag(f *Field, tag string) error {
	if tag == "" {
		return nil
	}
	for _, part := range strings.Split(tag, ",") {
		key, val, hasVal := strings.Cut(strings.TrimSpace(part), "=")
		num := func() (*float64, error) {
			x, err := strconv.ParseFloat(val, 64)
			if err != nil || !hasVal {
				return nil, fmt.Errorf("%s=%q: want a number", key, val)
			}
			return &x, nil
		}
		var err error
		switch key {
		case "":
		case "required":
			f.Required = true
		case "nonempty":
			f.NonEmpty = true
		case "open":
			f.Open = true
		case "min":
			f.Min, err = num()
		case "gt":
			f.Min, err = num()
			f.ExclusiveMin = true
		case "max":
			f.Max, err = num()
		case "lt":
			f.Max, err = num()
			f.ExclusiveMax = true
		case "enum":
			f.Enum = strings.Split(val, "|")
		case "default":
			f.Default, err = parseDefault(f.Type, val)
		default:
			return fmt.Errorf("unknown schema tag %q", key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseDefault(t Type, s string) (any, error) {
	switch t {
	case String:
		return s, nil
	case Int:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("default=%q: want an int", s)
		}
		return i, nil
	case Number:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("default=%q: want a number", s)
		}
		return x, nil
	case Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("default=%q: want true or false", s)
		}
		return b, nil
	}
	return nil, fmt.Errorf("default= is not supported for %s fields", t)
}

// Decode validates the config object cfg against s, fills in its
// defaults and unmarshals it into v strictly: a key v does not have is an
// error (unless s is open there). Errors list every issue.
func Decode(s *Field, cfg map[string]any, v any) error {
	if issues := s.Validate(cfg); len(issues) > 0 {
		return &Error{Issues: issues}
	}
	var tree any = s.ApplyDefaults(cfg)
	if s != nil {
		tree = s.prune(tree)
	}
	raw, err := json.Marshal(tree)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if s != nil {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

// Error is a config that fails its schema.
type Error struct {
	Issues []Issue
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		parts[i] = is.String()
	}
	return "invalid config: " + strings.Join(parts, "; ")
}

// prune drops the keys an open object accepts without declaring them, so
// strict decoding sees only declared keys.
func (f *Field) prune(v any) any {
	switch f.Type {
	case Object:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(m))
		for _, sub := range f.Fields {
			if x, ok := m[sub.Name]; ok {
				out[sub.Name] = sub.prune(x)
			}
		}
		if !f.Open {
			for k, x := range m {
				if _, ok := out[k]; !ok {
					out[k] = x // undeclared in a closed object: Validate reported it
				}
			}
		}
		return out
	case Map, List:
		if f.Elem == nil {
			return v
		}
		switch c := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(c))
			for k, x := range c {
				out[k] = f.Elem.prune(x)
			}
			return out
		case []any:
			out := make([]any, len(c))
			for i, x := range c {
				out[i] = f.Elem.prune(x)
			}
			return out
		}
	}
	return v
}
