package starlib

import (
	"fmt"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/marin-go/marin/host/graph"
)

func addExecutorBuiltins(env starlark.StringDict) {
	env["ExecutorStep"] = starlark.NewBuiltin("ExecutorStep", executorStep)
	env["executor_main"] = starlark.NewBuiltin("executor_main", executorMain)
	env["versioned"] = starlark.NewBuiltin("versioned", versioned)
	env["unversioned"] = starlark.NewBuiltin("unversioned", unversioned)
	env["output_path_of"] = starlark.NewBuiltin("output_path_of", outputPathOf)
	env["this_output_path"] = starlark.NewBuiltin("this_output_path", thisOutputPath)
}

// newStep makes a graph step at the caller's script position.
func newStep(thread *starlark.Thread, name, op string, config map[string]any) *Step {
	return &Step{s: &graph.Step{Name: name, Op: op, Config: config, Pos: posString(callerPos(thread))}}
}

func checkStepName(fn, name string) error {
	if name == "" {
		return fmt.Errorf("%s: name must not be empty", fn)
	}
	if strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return fmt.Errorf("%s: name %q must be a relative path like \"tokenized/tulu\"", fn, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "." || part == ".." {
			return fmt.Errorf("%s: name %q must not contain . or .. segments", fn, name)
		}
	}
	if strings.ContainsAny(name, "\\\x00\n\t") || strings.Contains(name, "://") {
		return fmt.Errorf("%s: name %q contains characters not allowed in a path", fn, name)
	}
	return nil
}

// ExecutorStep(name, op, config={}, description=None, override_output_path=None, timeout=None)
//
// `fn` is accepted as an alias of `op` so Python-shaped scripts read the same.
func executorStep(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, op, fn, desc, override string
		config                       starlark.Value = starlark.None
		timeout                      starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name", &name, "op?", &op, "config?", &config, "description?", &desc,
		"override_output_path?", &override, "timeout?", &timeout, "fn?", &fn); err != nil {
		return nil, err
	}
	if op == "" {
		op = fn
	} else if fn != "" && fn != op {
		return nil, fmt.Errorf("%s: give op or fn, not both", b.Name())
	}
	if op == "" {
		return nil, fmt.Errorf("%s: missing op: the plugin operation that produces this step's output, e.g. op=\"tokenize\"", b.Name())
	}
	if err := checkStepName(b.Name(), name); err != nil {
		return nil, err
	}
	cfg := map[string]any{}
	switch c := config.(type) {
	case starlark.NoneType:
	case *starlark.Dict, *Record, *MixtureConfig:
		v, err := toConfig(c)
		if err != nil {
			return nil, fmt.Errorf("%s: config%w", b.Name(), prefixErr(err))
		}
		cfg = v.(map[string]any)
	default:
		return nil, fmt.Errorf("%s: config must be a dict or a config object, got %s", b.Name(), config.Type())
	}
	st := newStep(thread, name, op, cfg)
	st.s.Description = desc
	cs := site(thread)
	st.s.Sources = map[string]graph.Source{"": {Pos: posString(cs.at("config")), Attr: "ExecutorStep.config"}}
	if r, ok := config.(*Record); ok {
		r.sources("", st.s.Sources)
	}
	if m, ok := config.(*MixtureConfig); ok {
		m.sources("", st.s.Sources)
	}
	for k, p := range cs.args {
		if rest, ok := strings.CutPrefix(k, "config."); ok {
			st.s.Sources[rest] = graph.Source{Pos: posString(p), Attr: "ExecutorStep.config." + rest}
		}
	}
	st.s.OverrideOutputPath = override
	if timeout != starlark.None {
		d, err := durationArg(timeout)
		if err != nil {
			return nil, fmt.Errorf("%s: timeout: %w", b.Name(), err)
		}
		st.s.Timeout = d
	}
	return st, nil
}

// prefixErr renders a nested config error after "config".
func prefixErr(err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "[") {
		return fmt.Errorf("%s", msg)
	}
	return fmt.Errorf(": %s", msg)
}

// durationArg accepts seconds (int/float) or a Go duration string ("90s", "2h").
func durationArg(v starlark.Value) (time.Duration, error) {
	switch x := v.(type) {
	case starlark.Int:
		s, ok := x.Int64()
		if !ok || s <= 0 {
			return 0, fmt.Errorf("must be a positive number of seconds, got %s", x)
		}
		return time.Duration(s) * time.Second, nil
	case starlark.Float:
		if x <= 0 {
			return 0, fmt.Errorf("must be a positive number of seconds, got %s", x)
		}
		return time.Duration(float64(x) * float64(time.Second)), nil
	case starlark.String:
		d, err := time.ParseDuration(string(x))
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("must be a positive duration like \"90s\" or \"2h\", got %q", string(x))
		}
		return d, nil
	}
	return 0, fmt.Errorf("must be seconds or a duration string, got %s", v.Type())
}

// executor_main(*steps, description=None) records the steps to run.
func executorMain(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st := state(thread)
	if st.mainCalled {
		if st.mainPos.IsValid() {
			return nil, fmt.Errorf("%s: called more than once (first at %s)", b.Name(), st.mainPos)
		}
		return nil, fmt.Errorf("%s: only the main script may call it, not a loaded module", b.Name())
	}
	var desc string
	var stepsKw starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), nil, kwargs, "description?", &desc, "steps?", &stepsKw); err != nil {
		return nil, err
	}
	all := append(starlark.Tuple{}, args...)
	if stepsKw != starlark.None {
		it, ok := stepsKw.(starlark.Iterable)
		if !ok {
			return nil, fmt.Errorf("%s: steps must be a list of steps, got %s", b.Name(), stepsKw.Type())
		}
		iter := it.Iterate()
		var v starlark.Value
		for iter.Next(&v) {
			all = append(all, v)
		}
		iter.Done()
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%s: no steps given", b.Name())
	}
	var add func(v starlark.Value, where string) error
	add = func(v starlark.Value, where string) error {
		switch x := v.(type) {
		case *Step:
			st.roots = append(st.roots, x.s)
		case *starlark.List, starlark.Tuple:
			idx := x.(starlark.Indexable)
			for i := 0; i < idx.Len(); i++ {
				if err := add(idx.Index(i), fmt.Sprintf("%s[%d]", where, i)); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%s: %s is a %s, not a step", b.Name(), where, v.Type())
		}
		return nil
	}
	for i, a := range all {
		if err := add(a, fmt.Sprintf("argument %d", i+1)); err != nil {
			return nil, err
		}
	}
	st.mainCalled = true
	st.mainPos = callerPos(thread)
	st.description = desc
	return starlark.None, nil
}

// versioned(v) marks a value as part of the step version. Every config value
// is versioned here (unlike Python Marin), so it returns v unchanged; it is
// kept so scripts read like the tutorial.
func versioned(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
		return nil, err
	}
	if _, ok := v.(unversionedValue); ok {
		return nil, fmt.Errorf("%s: value is already unversioned", b.Name())
	}
	return v, nil
}

// unversioned(v): recorded in .executor_info but never hashed.
func unversioned(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
		return nil, err
	}
	if u, ok := v.(unversionedValue); ok {
		return u, nil
	}
	if _, err := toConfig(v); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return unversionedValue{v}, nil
}

// output_path_of(step, sub=None)
func outputPathOf(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	var sub string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "step", &v, "name?", &sub); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case *Step:
		return &InputName{ref: &graph.InputRef{Step: x.s, Sub: strings.Trim(sub, "/")}}, nil
	case *InputName:
		return &InputName{ref: &graph.InputRef{Step: x.ref.Step, Sub: joinPath(x.ref.Sub, sub)}}, nil
	}
	return nil, fmt.Errorf("%s: step must be an ExecutorStep, got %s", b.Name(), v.Type())
}

// this_output_path(name=None)
func thisOutputPath(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var sub string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name?", &sub); err != nil {
		return nil, err
	}
	return thisOutput{sub: strings.Trim(sub, "/")}, nil
}
