package evaltasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ignoredKeys are lm-eval config keys that do not change what marin
// computes (decontamination, tags, documentation); they are accepted and
// dropped so lm-eval YAML files load unchanged.
var ignoredKeys = map[string]bool{
	"tag": true, "should_decontaminate": true, "doc_to_decontamination_query": true,
	"reference": true,
}

// Doc is one YAML document of a config file: a task or a group.
type Doc struct {
	Task  *Task
	Group *Group
}

// Name is the task's or group's name.
func (d Doc) Name() string {
	if d.Task != nil {
		return d.Task.Task
	}
	return d.Group.Group
}

// Parse reads lm-eval-shaped YAML (one or more documents, each a task or a
// group). include: names a file read through fsys, relative to dir; its
// keys are defaults the including document overrides, as in lm-eval.
// `!function` values are refused with a message saying what marin offers
// instead.
func Parse(fsys fs.FS, dir, name string, data []byte) ([]Doc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Doc
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		m, err := nodeMap(&n, name)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		m, err = resolveIncludes(fsys, dir, name, m, nil)
		if err != nil {
			return nil, err
		}
		d, err := fromMap(m)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i+1, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// nodeMap turns a YAML document into a map, refusing !function tags.
func nodeMap(n *yaml.Node, file string) (map[string]any, error) {
	var bad error
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Tag == "!function" && bad == nil {
			bad = fmt.Errorf("%s:%d: %q is a Python function, which cannot run here; use a Jinja template, or one of marin's process_docs (%s) or process_results (%s)",
				file, n.Line, "!function "+n.Value, strings.Join(ProcessDocsNames, ", "), strings.Join(ProcessResultsNames, ", "))
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	if bad != nil {
		return nil, bad
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s:%d: want a mapping of config keys, got %T", file, n.Line, v)
	}
	return m, nil
}

func resolveIncludes(fsys fs.FS, dir, file string, m map[string]any, chain []string) (map[string]any, error) {
	inc, ok := m["include"]
	if !ok {
		return m, nil
	}
	name, ok := inc.(string)
	if !ok {
		return nil, fmt.Errorf("%s: include must be a file name", file)
	}
	if fsys == nil {
		return nil, fmt.Errorf("%s: include %q: includes are only resolved for files in a directory", file, name)
	}
	p := path.Join(dir, name)
	for _, c := range chain {
		if c == p {
			return nil, fmt.Errorf("%s: include cycle: %s -> %s", file, strings.Join(chain, " -> "), p)
		}
	}
	data, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("%s: include %q: %w", file, name, err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	base, err := nodeMap(&n, p)
	if err != nil {
		return nil, err
	}
	if base == nil {
		base = map[string]any{}
	}
	base, err = resolveIncludes(fsys, path.Dir(p), p, base, append(chain, p))
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range m {
		if k != "include" {
			out[k] = v
		}
	}
	return out, nil
}

// fromMap decodes one config mapping strictly.
func fromMap(m map[string]any) (Doc, error) {
	clean := map[string]any{}
	for k, v := range m {
		if ignoredKeys[k] {
			continue
		}
		clean[k] = normalizeYAML(v)
	}
	// Old-style task configs list their groups under "group" next to
	// "task"; marin defines groups separately.
	if _, isTask := clean["task"].(string); isTask {
		delete(clean, "group")
		if dk, ok := clean["dataset_kwargs"].(map[string]any); ok {
			if df, ok := dk["data_files"].(map[string]any); ok {
				for split, v := range df {
					if s, ok := v.(string); ok {
						df[split] = []any{s}
					}
				}
			}
		}
		if gk, ok := clean["generation_kwargs"].(map[string]any); ok {
			if s, ok := gk["until"].(string); ok {
				gk["until"] = []any{s}
			}
		}
		var t Task
		if err := strictJSON(clean, &t); err != nil {
			return Doc{}, err
		}
		return Doc{Task: &t}, nil
	}
	if _, isGroup := clean["group"].(string); isGroup {
		// lm-eval's AggMetricConfig takes one filter name for a list.
		if al, ok := clean["aggregate_metric_list"].([]any); ok {
			for _, a := range al {
				if am, ok := a.(map[string]any); ok {
					if s, ok := am["filter_list"].(string); ok {
						am["filter_list"] = []any{s}
					}
				}
			}
		}
		var g Group
		if err := strictJSON(clean, &g); err != nil {
			return Doc{}, err
		}
		return Doc{Group: &g}, nil
	}
	return Doc{}, fmt.Errorf("neither a task (a string \"task\" key) nor a group (a string \"group\" key)")
}

// normalizeYAML turns YAML decoded values into JSON-shaped ones.
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
		return x
	case map[any]any:
		m := map[string]any{}
		for k, e := range x {
			m[fmt.Sprint(k)] = normalizeYAML(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
		return x
	}
	return v
}

func strictJSON(m map[string]any, v any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// DecodeTask decodes a task definition from JSON (as a step config carries
// it), strictly.
func DecodeTask(b []byte) (*Task, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	d, err := fromMap(m)
	if err != nil {
		return nil, err
	}
	if d.Task == nil {
		return nil, fmt.Errorf("not a task definition")
	}
	return d.Task, nil
}

// Collection is a set of parsed task and group documents from which suites
// are assembled.
type Collection struct {
	docs  map[string]Doc
	order []string
	// where each document was read from, for messages
	from map[string]string
}

// NewCollection returns an empty collection.
func NewCollection() *Collection {
	return &Collection{docs: map[string]Doc{}, from: map[string]string{}}
}

// Add adds documents read from file; a name defined twice is an error.
func (c *Collection) Add(file string, docs []Doc) error {
	for _, d := range docs {
		n := d.Name()
		if prev, ok := c.from[n]; ok {
			return fmt.Errorf("%s: %s is already defined in %s", file, n, prev)
		}
		c.docs[n] = d
		c.from[n] = file
		c.order = append(c.order, n)
	}
	return nil
}

// Names lists the defined tasks and groups, sorted.
func (c *Collection) Names() []string {
	out := append([]string(nil), c.order...)
	sort.Strings(out)
	return out
}

// Has reports whether name is defined.
func (c *Collection) Has(name string) bool { _, ok := c.docs[name]; return ok }

// Suite assembles the suite of name: the task, or the group and everything
// below it.
func (c *Collection) Suite(name string) (*Suite, error) {
	d, ok := c.docs[name]
	if !ok {
		return nil, fmt.Errorf("no task or group %q", name)
	}
	s := &Suite{Name: name}
	if d.Task != nil {
		s.Tasks = []Task{*d.Task}
		return s, s.Validate()
	}
	seen := map[string]bool{}
	var add func(n string, chain []string) error
	add = func(n string, chain []string) error {
		for _, x := range chain {
			if x == n {
				return fmt.Errorf("group cycle: %s -> %s", strings.Join(chain, " -> "), n)
			}
		}
		if seen[n] {
			return nil
		}
		seen[n] = true
		d, ok := c.docs[n]
		if !ok {
			return fmt.Errorf("group %s: member %s is not defined", chain[len(chain)-1], n)
		}
		if d.Task != nil {
			s.Tasks = append(s.Tasks, *d.Task)
			return nil
		}
		s.Groups = append(s.Groups, *d.Group)
		for _, m := range d.Group.Task {
			if err := add(m, append(chain, n)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := add(name, nil); err != nil {
		return nil, err
	}
	return s, s.Validate()
}
