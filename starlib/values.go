package starlib

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/schema"
)

// Step is the Starlark value of an executor step. Using it where a path is
// expected means its output path; `step / "sub"` is output_path_of(step, "sub").
type Step struct {
	s *graph.Step
}

var (
	_ starlark.HasAttrs  = (*Step)(nil)
	_ starlark.HasBinary = (*Step)(nil)
)

// GraphStep returns the underlying graph step.
func (s *Step) GraphStep() *graph.Step { return s.s }

func (s *Step) String() string        { return fmt.Sprintf("ExecutorStep(name=%q, op=%q)", s.s.Name, s.s.Op) }
func (s *Step) Type() string          { return "ExecutorStep" }
func (s *Step) Freeze()               {}
func (s *Step) Truth() starlark.Bool  { return starlark.True }
func (s *Step) Hash() (uint32, error) { return starlark.String(fmt.Sprintf("%p", s.s)).Hash() }
func (s *Step) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(s.s.Name), nil
	case "op", "fn":
		return starlark.String(s.s.Op), nil
	case "description":
		return starlark.String(s.s.Description), nil
	case "pos":
		return starlark.String(s.s.Pos), nil
	case "cd":
		return starlark.NewBuiltin("cd", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var sub string
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &sub); err != nil {
				return nil, err
			}
			return &InputName{ref: &graph.InputRef{Step: s.s, Sub: sub}}, nil
		}), nil
	}
	return nil, nil
}
func (s *Step) AttrNames() []string { return []string{"cd", "description", "fn", "name", "op", "pos"} }
func (s *Step) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	if op != syntax.SLASH || side != starlark.Left {
		return nil, nil
	}
	sub, ok := starlark.AsString(y)
	if !ok {
		return nil, fmt.Errorf("step / x: x must be a string, got %s", y.Type())
	}
	return &InputName{ref: &graph.InputRef{Step: s.s, Sub: sub}}, nil
}

// InputName is output_path_of(step, sub): a path under another step's output.
type InputName struct{ ref *graph.InputRef }

var _ starlark.HasBinary = (*InputName)(nil)

func (n *InputName) String() string        { return n.ref.String() }
func (n *InputName) Type() string          { return "InputName" }
func (n *InputName) Freeze()               {}
func (n *InputName) Truth() starlark.Bool  { return starlark.True }
func (n *InputName) Hash() (uint32, error) { return starlark.String(n.String()).Hash() }
func (n *InputName) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	if op != syntax.SLASH || side != starlark.Left {
		return nil, nil
	}
	sub, ok := starlark.AsString(y)
	if !ok {
		return nil, fmt.Errorf("path / x: x must be a string, got %s", y.Type())
	}
	return &InputName{ref: &graph.InputRef{Step: n.ref.Step, Sub: joinPath(n.ref.Sub, sub)}}, nil
}

// thisOutput is this_output_path(sub).
type thisOutput struct{ sub string }

func (t thisOutput) String() string {
	if t.sub == "" {
		return "this_output_path()"
	}
	return fmt.Sprintf("this_output_path(%q)", t.sub)
}
func (t thisOutput) Type() string          { return "OutputName" }
func (t thisOutput) Freeze()               {}
func (t thisOutput) Truth() starlark.Bool  { return starlark.True }
func (t thisOutput) Hash() (uint32, error) { return starlark.String(t.String()).Hash() }

// unversionedValue is unversioned(v): recorded, never hashed.
type unversionedValue struct{ v starlark.Value }

func (u unversionedValue) String() string        { return "unversioned(" + u.v.String() + ")" }
func (u unversionedValue) Type() string          { return "unversioned" }
func (u unversionedValue) Freeze()               { u.v.Freeze() }
func (u unversionedValue) Truth() starlark.Bool  { return u.v.Truth() }
func (u unversionedValue) Hash() (uint32, error) { return u.v.Hash() }

func joinPath(a, b string) string {
	a, b = strings.Trim(a, "/"), strings.Trim(b, "/")
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// toConfig converts a Starlark value into a graph config tree.
func toConfig(v starlark.Value) (any, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		i, ok := x.Int64()
		if !ok {
			return nil, fmt.Errorf("integer %s does not fit in 64 bits", x)
		}
		return i, nil
	case starlark.Float:
		return float64(x), nil
	case starlark.String:
		return string(x), nil
	case *starlark.List:
		return iterConfig(x)
	case starlark.Tuple:
		return iterConfig(x)
	case *starlark.Dict:
		m := make(map[string]any, x.Len())
		for _, item := range x.Items() {
			k, ok := starlark.AsString(item[0])
			if !ok {
				return nil, fmt.Errorf("config dict keys must be strings, got %s %s", item[0].Type(), item[0])
			}
			if strings.Contains(k, ".") {
				return nil, fmt.Errorf("config key %q must not contain a dot (dots separate nested keys in versions)", k)
			}
			cv, err := toConfig(item[1])
			if err != nil {
				return nil, fmt.Errorf("[%q]: %w", k, err)
			}
			m[k] = cv
		}
		return m, nil
	case *Step:
		return &graph.InputRef{Step: x.s}, nil
	case *InputName:
		return x.ref, nil
	case thisOutput:
		return graph.ThisOutput{Sub: x.sub}, nil
	case unversionedValue:
		inner, err := toConfig(x.v)
		if err != nil {
			return nil, err
		}
		return graph.Unversioned{Value: inner}, nil
	case *Record:
		return x.configValue()
	case *MixtureConfig:
		return x.configValue()
	default:
		return nil, fmt.Errorf("a %s cannot be part of a step config", v.Type())
	}
}

func iterConfig(it starlark.Indexable) (any, error) {
	out := make([]any, it.Len())
	for i := range out {
		cv, err := toConfig(it.Index(i))
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = cv
	}
	return out, nil
}

// callerPos is the script position of the builtin call being evaluated.
func callerPos(thread *starlark.Thread) syntax.Position {
	if thread.CallStackDepth() > 1 {
		return thread.CallFrame(1).Pos
	}
	return syntax.Position{}
}

func posString(p syntax.Position) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// suggest returns ` (did you mean "x"?)` for the closest candidates.
func suggest(name string, candidates []string) string { return schema.Suggest(name, candidates) }

// closest returns up to n candidates near name, nearest first.
func closest(name string, candidates []string, n int) []string {
	return schema.Closest(name, candidates, n)
}
