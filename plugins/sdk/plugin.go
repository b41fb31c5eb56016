// Package sdk is what a marin plugin is written with.
//
// A plugin is a separate executable that the marin host starts as a child
// process and talks to over gRPC (hashicorp/go-plugin). It serves one or more
// ops; the host sends it one step at a time and the plugin streams progress
// and logs back, then a result. A whole plugin is a main function:
//
//	func main() {
//		sdk.Serve(&sdk.Plugin{
//			Name: "csvpairs", Kind: sdk.KindDataset, Version: "0.1.0",
//			Ops: map[string]sdk.Op{
//				"csvpairs/convert": {
//					Description: "convert prompt,response CSV files to documents",
//					Run: func(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
//						in, err := req.String("input")
//						if err != nil {
//							return err
//						}
//						r.Progress(0, 1, "files", "converting "+in)
//						// ... read in, write under req.OutputPath ...
//						return nil
//					},
//				},
//			},
//		})
//	}
//
// Build it, put the executable in a directory on $MARIN_PLUGIN_PATH or in
// ~/.marin/plugins, and `marin plugins` lists it; steps whose op it serves run
// through it. plugins/examples/wordcount is a complete example.
//
// An op's returned error reaches the host as a structured diagnostic; return a
// *Diagnostic to add detail or name the config key at fault. A panic inside an
// op is recovered and reported the same way, so the plugin process survives.
// Large data never travels over the protocol: read and write the storage URLs
// in the request yourself.
//
// The marin binary serves its own built-in plugins with ServeNamed.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	pluginpb "github.com/marin-go/marin/plugins/proto"
	"github.com/marin-go/marin/plugins/schema"
)

// Kind says what sort of work a plugin does.
type Kind string

// The plugin kinds the host knows. They match executor.PluginRef.Kind.
const (
	KindDataset Kind = "dataset" // resolves a dataset name to rows
	KindFormat  Kind = "format"  // renders messages into segments with train flags
	KindBackend Kind = "backend" // tokenizes, trains, generates
	KindGeneric Kind = "generic" // anything else
)

// Plugin describes a plugin and the ops it serves.
type Plugin struct {
	Name    string        // short name, e.g. "wordcount"; unique among installed plugins
	Kind    Kind          // what sort of plugin this is
	Version string        // the plugin's own version, e.g. "0.1.0"
	Ops     map[string]Op // op name (e.g. "wordcount/count") → implementation
	// Format renders conversations; format plugins (KindFormat) set it and
	// may serve no ops. See FormatFunc.
	Format FormatFunc
}

// Op is one operation a plugin serves.
type Op struct {
	Description string // one line, shown by `marin plugins`
	Run         RunFunc
	// Schema declares the op's config: keys, types, required, defaults,
	// enums, ranges and cross-field rules (package plugins/schema; usually
	// schema.MustFromStruct of the struct Run decodes into). The host checks
	// every step against it while planning, so `marin --dry-run` reports
	// mistakes before anything runs; the SDK checks it again before Run and
	// Request.Decode then decodes strictly (unknown keys are errors) with the
	// defaults filled in. nil: the op declares nothing and gets any config.
	Schema *schema.Field
	// Plan, when set, is called while the host plans (see PlanFunc).
	Plan PlanFunc
}

// RunFunc executes an op for one step. ctx is cancelled when the host gives
// up on the step (deadline, interrupt); long loops should watch it.
type RunFunc func(ctx context.Context, req *Request, r Reporter) error

// Reporter sends progress and logs to the host while an op runs. Its methods
// are safe for concurrent use; calls after the op returned are dropped.
type Reporter interface {
	// Progress reports done out of total units (total 0: unknown), e.g.
	// Progress(300, 1000, "rows", "reading shard 2").
	Progress(done, total float64, unit, msg string)
	// Log sends a structured log line; kv holds key, value pairs. Levels are
	// trace, debug, info, warn, error; lines below the host's level are
	// dropped in the plugin, so debug logging costs nothing by default.
	Log(level, msg string, kv ...string)
}

// Diagnostic is an op failure explained for a person. Return one (or wrap
// one with %w) from an op to give the host more than the error text: the
// summary sent is always the full error text, Detail and Attribute come from
// the innermost Diagnostic in the chain.
type Diagnostic struct {
	Summary   string // one line
	Detail    string // optional longer explanation
	Attribute string // the config key the problem is about, if any
}

func (d *Diagnostic) Error() string { return d.Summary }

// Validate reports whether p can be served: a name, a known kind, and at least
// one op, each with a name and a Run function; a format plugin needs a
// Format function instead of ops.
func (p *Plugin) Validate() error {
	if p == nil {
		return errors.New("plugin is nil")
	}
	if p.Name == "" {
		return errors.New("plugin has no name")
	}
	if strings.ContainsAny(p.Name, " \t\n/") {
		return fmt.Errorf("plugin %q: name may not contain spaces or slashes", p.Name)
	}
	if kindToProto(p.Kind) == pluginpb.Kind_KIND_UNSPECIFIED {
		return fmt.Errorf("plugin %q: unknown kind %q (want dataset, format, backend or generic)", p.Name, p.Kind)
	}
	switch {
	case p.Kind == KindFormat && p.Format == nil:
		return fmt.Errorf("plugin %q is a format plugin without a Format function", p.Name)
	case p.Kind != KindFormat && p.Format != nil:
		return fmt.Errorf("plugin %q has a Format function but is of kind %q, not format", p.Name, p.Kind)
	case len(p.Ops) == 0 && p.Kind != KindFormat:
		return fmt.Errorf("plugin %q serves no ops", p.Name)
	}
	for name, op := range p.Ops {
		if name == "" || strings.TrimSpace(name) != name {
			return fmt.Errorf("plugin %q: op name %q is empty or padded with spaces", p.Name, name)
		}
		if op.Run == nil {
			return fmt.Errorf("plugin %q: op %q has no Run function", p.Name, name)
		}
		if op.Schema != nil {
			raw, err := op.Schema.Marshal()
			if err == nil {
				_, err = schema.Unmarshal(raw)
			}
			if err != nil {
				return fmt.Errorf("plugin %q: op %q: %w", p.Name, name, err)
			}
		}
	}
	return nil
}

// OpNames returns p's op names, sorted.
func (p *Plugin) OpNames() []string {
	names := make([]string, 0, len(p.Ops))
	for name := range p.Ops {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func kindToProto(k Kind) pluginpb.Kind {
	switch k {
	case KindDataset:
		return pluginpb.Kind_KIND_DATASET
	case KindFormat:
		return pluginpb.Kind_KIND_FORMAT
	case KindBackend:
		return pluginpb.Kind_KIND_BACKEND
	case KindGeneric:
		return pluginpb.Kind_KIND_GENERIC
	}
	return pluginpb.Kind_KIND_UNSPECIFIED
}

// KindFromProto converts a wire kind to a Kind; "" for an unknown value.
func KindFromProto(k pluginpb.Kind) Kind {
	switch k {
	case pluginpb.Kind_KIND_DATASET:
		return KindDataset
	case pluginpb.Kind_KIND_FORMAT:
		return KindFormat
	case pluginpb.Kind_KIND_BACKEND:
		return KindBackend
	case pluginpb.Kind_KIND_GENERIC:
		return KindGeneric
	}
	return ""
}
