// Package graph holds the step graph an experiment script builds: steps, the
// config values that link them, and the planner that gives every step its
// version, content hash and output path.
//
// A step's config is a JSON-like tree (nil, bool, int64, float64, string,
// []any, map[string]any) that may also hold the special values below. Every
// leaf counts in the step's version except those wrapped in Unversioned, so
// any config change moves the step (and its dependents) to a new path.
package graph

import (
	"fmt"
	"strings"
	"time"
)

// Step is one node of the graph: an operation served by a plugin and its config.
type Step struct {
	// Name is the output directory stem relative to the prefix, e.g.
	// "tokenized/tulu"; the output lands in {prefix}/{Name}-{hash6}.
	Name string
	// Op names the plugin operation that produces the output, e.g. "tokenize".
	Op string
	// Config is the step's configuration tree.
	Config map[string]any
	// Description is free text shown in plans; not versioned.
	Description string
	// OverrideOutputPath, when set, replaces {Name}-{hash6}: relative to the
	// prefix, or an absolute storage URL.
	OverrideOutputPath string
	// Timeout bounds one execution of the step (0: none). Not versioned.
	Timeout time.Duration
	// Pos is the script position that created the step ("exp.star:12:5").
	Pos string
	// Backend, when set, names the compute backend that should serve Op
	// (from the script's resources, e.g. "gomlx"). It is not versioned:
	// backends produce the same numbers, so switching one never moves an
	// output path. The executor dispatches such a step to the op
	// "{Backend}/{Op}" (see executor.DispatchOp).
	Backend string
	// Sources says where in the script each config value was written, by
	// dotted config path ("learning_rate", "resources.device",
	// "data.components.tulu.weight"); "" is the fallback for the whole
	// config. Plan-time diagnostics use it to point at the value.
	Sources map[string]Source
}

// Source is where a config value came from: a script position and the
// attribute as the script spells it ("SimpleSFTConfig.learning_rate").
type Source struct {
	Pos  string
	Attr string
}

// SourceOf returns the source of the value at a dotted config path: the
// entry for the path itself, or for its nearest recorded parent with the
// rest of the path appended to the attribute, else the step's position.
func (s *Step) SourceOf(path string) Source {
	rest := ""
	p := path
	for {
		if src, ok := s.Sources[p]; ok && (p != "" || path == "" || src.Attr != "") {
			if src.Pos == "" {
				src.Pos = s.Pos
			}
			if rest != "" {
				switch {
				case src.Attr == "":
					src.Attr = strings.TrimPrefix(rest, ".")
				case strings.HasPrefix(rest, "["):
					src.Attr += rest
				default:
					src.Attr += rest
				}
			}
			return src
		}
		if p == "" {
			return Source{Pos: s.Pos, Attr: path}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			rest = "." + p + rest
			p = ""
			continue
		}
		if p[i] == '.' {
			rest = p[i:] + rest
		} else {
			rest = p[i:] + rest
		}
		p = p[:i]
	}
}

// InputRef is a config value standing for the output path of another step
// (or a file under it). It is what output_path_of(step, sub) returns, and it
// makes the referenced step a dependency.
type InputRef struct {
	Step *Step
	Sub  string
}

// ThisOutput is a config value standing for the step's own output path.
type ThisOutput struct {
	Sub string
}

// Unversioned wraps a config value that is recorded but not hashed: changing
// it never changes the output path. Builtins also use it for fields that do
// not change results (resources, checkpoint cadence, logging).
type Unversioned struct {
	Value any
}

func (r *InputRef) String() string {
	if r.Sub == "" {
		return fmt.Sprintf("output_path_of(%s)", r.Step.Name)
	}
	return fmt.Sprintf("output_path_of(%s, %q)", r.Step.Name, r.Sub)
}
