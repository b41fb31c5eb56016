package graph

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Placeholders used in version JSON so hashes never depend on where the
// prefix lives (Marin hashed absolute bucket paths; see MARIN_FACTS.md).
const (
	PrefixVar = "${prefix}"
	ThisVar   = "${this}"
)

// Planned is a step with its version, hash and paths resolved.
type Planned struct {
	Step *Step
	// Version is {"name", "op", "config": {dotted.path: value}, "dependencies": [relpaths]}.
	Version map[string]any
	// VersionJSON is the canonical JSON of Version; its md5 gives Hash.
	VersionJSON []byte
	// Hash is the first 6 hex digits of md5(VersionJSON).
	Hash string
	// RelPath is the output path relative to the prefix ("tokenized/tulu-1a2b3c"),
	// or the absolute URL when an override points outside the prefix.
	RelPath string
	// OutputPath is the absolute storage URL of the output.
	OutputPath string
	// Config is the config as the plugin receives it: inputs and this_output
	// replaced by absolute URLs, Unversioned unwrapped.
	Config map[string]any
	// Unversioned lists the dotted config paths that were not hashed.
	Unversioned []string
	// Deps are the planned steps this one reads from, in first-use order.
	Deps []*Planned
}

// Plan is the deduplicated, topologically ordered graph.
type Plan struct {
	Prefix string
	Steps  []*Planned
	byStep map[*Step]*Planned
}

// Lookup returns the planned node for a step created by the script.
func (p *Plan) Lookup(s *Step) *Planned { return p.byStep[s] }

// Build plans the steps reachable from roots under prefix (a storage URL with
// no trailing slash). Steps whose versions are identical are merged, as in Marin.
func Build(prefix string, roots []*Step) (*Plan, error) {
	prefix = strings.TrimRight(prefix, "/")
	p := &Plan{Prefix: prefix, byStep: map[*Step]*Planned{}}
	byVersion := map[string]*Planned{}
	byPath := map[string]*Planned{}
	visiting := map[*Step]bool{}

	var visit func(s *Step, chain []string) (*Planned, error)
	visit = func(s *Step, chain []string) (*Planned, error) {
		if n, ok := p.byStep[s]; ok {
			return n, nil
		}
		if visiting[s] {
			return nil, fmt.Errorf("dependency cycle: %s -> %s", strings.Join(chain, " -> "), s.Name)
		}
		visiting[s] = true
		defer delete(visiting, s)
		if s.Name == "" {
			return nil, fmt.Errorf("%s: step has an empty name", s.Pos)
		}
		if s.Op == "" {
			return nil, fmt.Errorf("%s: step %q has no op", s.Pos, s.Name)
		}

		// Plan dependencies first so their paths are known.
		var deps []*Planned
		seen := map[*Planned]bool{}
		var walkErr error
		walkValue(s.Config, func(v any) {
			ref, ok := v.(*InputRef)
			if !ok || walkErr != nil {
				return
			}
			if ref.Step == nil {
				walkErr = fmt.Errorf("%s: step %q: input refers to no step", s.Pos, s.Name)
				return
			}
			d, err := visit(ref.Step, append(chain, s.Name))
			if err != nil {
				walkErr = err
				return
			}
			if !seen[d] {
				seen[d] = true
				deps = append(deps, d)
			}
		})
		if walkErr != nil {
			return nil, walkErr
		}

		n := &Planned{Step: s, Deps: deps}
		flat := map[string]any{}
		if err := flatten("", s.Config, flat, &n.Unversioned, p, prefix); err != nil {
			return nil, fmt.Errorf("%s: step %q: %w", s.Pos, s.Name, err)
		}
		depPaths := make([]any, 0, len(deps))
		for _, d := range deps {
			depPaths = append(depPaths, d.relOrURL())
		}
		n.Version = map[string]any{
			"name":         s.Name,
			"op":           s.Op,
			"config":       flat,
			"dependencies": depPaths,
		}
		js, err := CanonicalJSON(n.Version)
		if err != nil {
			return nil, fmt.Errorf("%s: step %q: %w", s.Pos, s.Name, err)
		}
		n.VersionJSON = js
		sum := md5.Sum(js)
		n.Hash = hex.EncodeToString(sum[:])[:6]

		key := string(js) + "\x00" + s.OverrideOutputPath
		if prev, ok := byVersion[key]; ok {
			p.byStep[s] = prev
			return prev, nil
		}

		switch o := s.OverrideOutputPath; {
		case o == "":
			n.RelPath = s.Name + "-" + n.Hash
			n.OutputPath = prefix + "/" + n.RelPath
		case strings.Contains(o, "://"):
			n.RelPath = strings.TrimRight(o, "/")
			n.OutputPath = n.RelPath
			if strings.HasPrefix(n.RelPath, prefix+"/") {
				n.RelPath = strings.TrimPrefix(n.RelPath, prefix+"/")
			}
		default:
			n.RelPath = strings.Trim(o, "/")
			n.OutputPath = prefix + "/" + n.RelPath
		}
		if other, ok := byPath[n.OutputPath]; ok {
			return nil, fmt.Errorf("%s: step %q and step %q (%s) both write %s", s.Pos, s.Name, other.Step.Name, other.Step.Pos, n.OutputPath)
		}
		byPath[n.OutputPath] = n

		cfg, err := resolve(s.Config, n, p)
		if err != nil {
			return nil, fmt.Errorf("%s: step %q: %w", s.Pos, s.Name, err)
		}
		n.Config, _ = cfg.(map[string]any)
		if n.Config == nil {
			n.Config = map[string]any{}
		}
		byVersion[key] = n
		p.byStep[s] = n
		p.Steps = append(p.Steps, n)
		return n, nil
	}

	for _, r := range roots {
		if _, err := visit(r, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (n *Planned) relOrURL() string {
	if strings.Contains(n.RelPath, "://") {
		return n.RelPath
	}
	return PrefixVar + "/" + n.RelPath
}

// walkValue calls f on every node of a config tree.
func walkValue(v any, f func(any)) {
	f(v)
	switch t := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(t) {
			walkValue(t[k], f)
		}
	case []any:
		for _, e := range t {
			walkValue(e, f)
		}
	case Unversioned:
		walkValue(t.Value, f)
	case *Unversioned:
		walkValue(t.Value, f)
	}
}

func joinSub(base, sub string) string {
	sub = strings.Trim(sub, "/")
	if sub == "" {
		return base
	}
	return base + "/" + sub
}

// flatten writes the versioned leaves of v into out under dotted keys.
func flatten(path string, v any, out map[string]any, unversioned *[]string, p *Plan, prefix string) error {
	switch t := v.(type) {
	case Unversioned:
		*unversioned = append(*unversioned, path)
		return nil
	case *Unversioned:
		*unversioned = append(*unversioned, path)
		return nil
	case map[string]any:
		if len(t) == 0 && path != "" {
			out[path] = map[string]any{}
		}
		for _, k := range sortedKeys(t) {
			if strings.Contains(k, ".") {
				return fmt.Errorf("config key %q contains a dot", joinKey(path, k))
			}
			if err := flatten(joinKey(path, k), t[k], out, unversioned, p, prefix); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if len(t) == 0 {
			out[path] = []any{}
		}
		for i, e := range t {
			if err := flatten(joinKey(path, strconv.Itoa(i)), e, out, unversioned, p, prefix); err != nil {
				return err
			}
		}
		return nil
	case *InputRef:
		out[path] = joinSub(p.byStep[t.Step].relOrURL(), t.Sub)
		return nil
	case ThisOutput:
		out[path] = joinSub(ThisVar, t.Sub)
		return nil
	case *ThisOutput:
		out[path] = joinSub(ThisVar, t.Sub)
		return nil
	case string:
		if strings.HasPrefix(t, prefix+"/") || t == prefix {
			out[path] = PrefixVar + strings.TrimPrefix(t, prefix)
		} else {
			out[path] = t
		}
		return nil
	case nil, bool, int64, float64:
		if f, ok := t.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return fmt.Errorf("config value %s is %v, which JSON cannot hold", path, f)
		}
		out[path] = t
		return nil
	case int:
		out[path] = int64(t)
		return nil
	default:
		return fmt.Errorf("config value %s has unsupported type %T", path, v)
	}
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// resolve returns the config the plugin sees.
func resolve(v any, self *Planned, p *Plan) (any, error) {
	switch t := v.(type) {
	case Unversioned:
		return resolve(t.Value, self, p)
	case *Unversioned:
		return resolve(t.Value, self, p)
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			r, err := resolve(e, self, p)
			if err != nil {
				return nil, err
			}
			m[k] = r
		}
		return m, nil
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			r, err := resolve(e, self, p)
			if err != nil {
				return nil, err
			}
			l[i] = r
		}
		return l, nil
	case *InputRef:
		return joinSub(p.byStep[t.Step].OutputPath, t.Sub), nil
	case ThisOutput:
		return joinSub(self.OutputPath, t.Sub), nil
	case *ThisOutput:
		return joinSub(self.OutputPath, t.Sub), nil
	case int:
		return int64(t), nil
	default:
		return t, nil
	}
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// CanonicalJSON encodes v with sorted keys, no insignificant whitespace and
// no HTML escaping, so equal values always give equal bytes.
func CanonicalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// encoding/json sorts map keys; structs are not used in config trees.
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
