package starlib

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/marin-go/marin/host/graph"
)

// fieldKind is the type a record field accepts.
type fieldKind int

const (
	kindAny fieldKind = iota
	kindInt
	kindFloat // ints accepted and stored as float
	kindString
	kindBool
)

func (k fieldKind) String() string {
	return [...]string{"any value", "int", "float", "string", "bool"}[k]
}

// field describes one keyword argument of a config builtin.
type field struct {
	name     string
	kind     fieldKind
	def      starlark.Value // default; nil means None
	optional bool           // None allowed
	// nonSemantic fields are recorded but never hashed (resources, cadence).
	nonSemantic bool
	check       func(v starlark.Value) error
	doc         string
}

// recordType is a config class such as SimpleSFTConfig.
type recordType struct {
	name   string
	fields []field
	// validate checks cross-field rules after all fields are set.
	validate func(r *Record) error
	// aliases are other keyword names of fields (PEFT's names of
	// LoraConfig's fields).
	aliases map[string]string
}

func (t *recordType) field(name string) (*field, bool) {
	for i := range t.fields {
		if t.fields[i].name == name {
			return &t.fields[i], true
		}
	}
	return nil, false
}

// Record is an immutable config object made by a builtin constructor. It
// remembers where the script made it so later validation errors point there.
type Record struct {
	typ    *recordType
	values map[string]starlark.Value
	pos    syntax.Position
	// fieldPos is where each field given as a keyword was written.
	fieldPos map[string]syntax.Position
}

var (
	_ starlark.HasAttrs = (*Record)(nil)
	_ starlark.Callable = (*recordConstructor)(nil)
)

func (r *Record) String() string {
	var b strings.Builder
	b.WriteString(r.typ.name)
	b.WriteByte('(')
	first := true
	for _, f := range r.typ.fields {
		v := r.values[f.name]
		if v == starlark.None && f.def == nil {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "%s=%s", f.name, v.String())
	}
	b.WriteByte(')')
	return b.String()
}
func (r *Record) Type() string          { return r.typ.name }
func (r *Record) Freeze()               {}
func (r *Record) Truth() starlark.Bool  { return starlark.True }
func (r *Record) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: %s", r.typ.name) }
func (r *Record) Attr(name string) (starlark.Value, error) {
	if v, ok := r.values[name]; ok {
		return v, nil
	}
	if name == "replace" {
		return starlark.NewBuiltin(r.typ.name+".replace", r.replace), nil
	}
	return nil, nil
}
func (r *Record) AttrNames() []string {
	names := make([]string, 0, len(r.typ.fields)+1)
	for _, f := range r.typ.fields {
		names = append(names, f.name)
	}
	names = append(names, "replace")
	sort.Strings(names)
	return names
}

// Get returns a field value.
func (r *Record) Get(name string) starlark.Value { return r.values[name] }

// fieldPosOr is where field name was written, else where the record was made.
func (r *Record) fieldPosOr(name string) syntax.Position {
	if p, ok := r.fieldPos[name]; ok {
		return p
	}
	return r.pos
}

// Pos is the script position that made the record.
func (r *Record) Pos() syntax.Position { return r.pos }

// replace returns a copy with some fields changed, like dataclasses.replace.
func (r *Record) replace(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("%s: takes keyword arguments only", b.Name())
	}
	base := map[string]starlark.Value{}
	for k, v := range r.values {
		base[k] = v
	}
	return newRecord(thread, r.typ, b.Name(), nil, kwargs, base, r.fieldPos)
}

// recordConstructor is the builtin that makes records of one type.
type recordConstructor struct{ typ *recordType }

func (c *recordConstructor) String() string        { return "<class " + c.typ.name + ">" }
func (c *recordConstructor) Type() string          { return "class" }
func (c *recordConstructor) Freeze()               {}
func (c *recordConstructor) Truth() starlark.Bool  { return starlark.True }
func (c *recordConstructor) Hash() (uint32, error) { return starlark.String(c.typ.name).Hash() }
func (c *recordConstructor) Name() string          { return c.typ.name }
func (c *recordConstructor) CallInternal(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return newRecord(thread, c.typ, c.typ.name, args, kwargs, nil, nil)
}

func newRecord(thread *starlark.Thread, t *recordType, fn string, args starlark.Tuple, kwargs []starlark.Tuple, base map[string]starlark.Value, basePos map[string]syntax.Position) (*Record, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("%s: takes keyword arguments only (got %d positional)", fn, len(args))
	}
	cs := site(thread)
	r := &Record{typ: t, values: map[string]starlark.Value{}, pos: cs.pos, fieldPos: map[string]syntax.Position{}}
	for _, f := range t.fields {
		if base != nil {
			r.values[f.name] = base[f.name]
			if p, ok := basePos[f.name]; ok {
				r.fieldPos[f.name] = p
			}
		} else if f.def != nil {
			r.values[f.name] = f.def
		} else {
			r.values[f.name] = starlark.None
		}
	}
	given := map[string]string{}
	for _, kv := range kwargs {
		name := string(kv[0].(starlark.String))
		as := name
		if canon, ok := t.aliases[name]; ok {
			name = canon
		}
		if prev, ok := given[name]; ok {
			return nil, fmt.Errorf("%s: %s given twice (as %s and %s)", fn, name, prev, as)
		}
		given[name] = as
		f, ok := t.field(name)
		if !ok {
			return nil, fmt.Errorf("%s: unexpected keyword argument %q%s", fn, name, suggest(name, fieldNames(t)))
		}
		v, err := checkField(fn, f, kv[1])
		if err != nil {
			return nil, err
		}
		r.values[name] = v
		r.fieldPos[name] = cs.at(as)
	}
	if t.validate != nil {
		if err := t.validate(r); err != nil {
			return nil, fmt.Errorf("%s: %w", fn, err)
		}
	}
	return r, nil
}

func fieldNames(t *recordType) []string {
	var n []string
	for _, f := range t.fields {
		n = append(n, f.name)
	}
	return n
}

func checkField(fn string, f *field, v starlark.Value) (starlark.Value, error) {
	if v == starlark.None {
		if f.optional || f.def == nil {
			return v, nil
		}
		return nil, fmt.Errorf("%s: %s must not be None", fn, f.name)
	}
	switch f.kind {
	case kindInt:
		if _, ok := v.(starlark.Int); !ok {
			return nil, fmt.Errorf("%s: %s must be an int, got %s %s", fn, f.name, v.Type(), v.String())
		}
	case kindFloat:
		switch x := v.(type) {
		case starlark.Float:
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("%s: %s must be finite, got %s", fn, f.name, x.String())
			}
		case starlark.Int:
			v = starlark.Float(float64(x.Float()))
		default:
			return nil, fmt.Errorf("%s: %s must be a number, got %s %s", fn, f.name, v.Type(), v.String())
		}
	case kindString:
		if _, ok := v.(starlark.String); !ok {
			return nil, fmt.Errorf("%s: %s must be a string, got %s %s", fn, f.name, v.Type(), v.String())
		}
	case kindBool:
		if _, ok := v.(starlark.Bool); !ok {
			return nil, fmt.Errorf("%s: %s must be True or False, got %s %s", fn, f.name, v.Type(), v.String())
		}
	}
	if f.check != nil {
		if err := f.check(v); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", fn, f.name, err)
		}
	}
	return v, nil
}

// configValue converts a record into the graph config tree; non-semantic
// fields are wrapped so they are recorded but not hashed.
func (r *Record) configValue() (any, error) {
	m := map[string]any{}
	for _, f := range r.typ.fields {
		v, err := toConfig(r.values[f.name])
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", r.typ.name, f.name, err)
		}
		if f.nonSemantic {
			v = graph.Unversioned{Value: v}
		}
		m[f.name] = v
	}
	return m, nil
}

// sources records where each field of r (and of records nested in it) was
// written, under the config path prefix.
func (r *Record) sources(prefix string, out map[string]graph.Source) {
	for _, f := range r.typ.fields {
		key := joinKey(prefix, f.name)
		p, ok := r.fieldPos[f.name]
		if !ok {
			p = r.pos
		}
		out[key] = graph.Source{Pos: posString(p), Attr: r.typ.name + "." + f.name}
		switch v := r.values[f.name].(type) {
		case *Record:
			v.sources(key, out)
		case *MixtureConfig:
			v.sources(key, out)
		}
	}
}

// joinKey joins dotted config paths.
func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
