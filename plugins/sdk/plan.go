package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/marin-go/marin/plugins/schema"
)

// PlanFunc checks a step while the host plans it, before anything runs: what
// the op's schema cannot say (a file that must exist, a model's positions
// against the sequence length, an estimate of memory against the device's),
// and values the step's version must pin (the digest of a tokenizer file, the
// revision a hub name resolves to). It must be quick and must not write.
type PlanFunc func(ctx context.Context, req *PlanRequest) (*PlanResult, error)

// PlanRequest is one step being planned.
type PlanRequest struct {
	Op       string
	StepName string
	// Config is the step's config (defaults not filled in). Values that are
	// other steps' outputs are their absolute URLs; they usually do not
	// exist yet, see IsStepOutput.
	Config     map[string]any
	ConfigJSON []byte
	Prefix     string
	LogLevel   string
}

// IsStepOutput reports whether a path string in the config lies under the
// run's prefix, i.e. is (or may be) written by a step of the experiment, so
// Plan should not expect it to exist.
func (r *PlanRequest) IsStepOutput(path string) bool {
	return r.Prefix != "" && (path == r.Prefix || len(path) > len(r.Prefix) && path[:len(r.Prefix)] == r.Prefix && path[len(r.Prefix)] == '/')
}

// Decode decodes the config into v like Request.Decode, leniently: Plan sees
// configs that may not pass the schema (the host reports those issues).
func (r *PlanRequest) Decode(v any) error {
	if err := json.Unmarshal(r.ConfigJSON, v); err != nil {
		return fmt.Errorf("decode config of step %q: %w", r.StepName, err)
	}
	return nil
}

// PlanResult is what Plan found.
type PlanResult struct {
	// Diagnostics are problems; each should name its config key in
	// Attribute (a dotted path such as "model_name_or_path").
	Diagnostics []*Diagnostic
	// Set holds config keys to add before the step is hashed (pins). They
	// must be keys of the op's schema.
	Set map[string]any
	// Notes are lines for the plan's display.
	Notes []string
}

// Errorf adds a diagnostic about the config key attr.
func (p *PlanResult) Errorf(attr, format string, args ...any) {
	p.Diagnostics = append(p.Diagnostics, &Diagnostic{Summary: fmt.Sprintf(format, args...), Attribute: attr})
}

// CallPlan runs op's Plan for req, turning a panic into a diagnostic. The host
// calls it in-process for built-in plugins; the gRPC server for the others.
func CallPlan(ctx context.Context, op Op, req *PlanRequest) (res *PlanResult, err error) {
	if op.Plan == nil {
		return &PlanResult{}, nil
	}
	if req.Config == nil {
		if req.Config, err = decodeConfig(req.ConfigJSON); err != nil {
			return nil, err
		}
	}
	if len(req.ConfigJSON) == 0 {
		if req.ConfigJSON, err = json.Marshal(req.Config); err != nil {
			return nil, err
		}
	}
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, &Diagnostic{Summary: fmt.Sprintf("plan of op %q panicked: %v", req.Op, p), Detail: string(debug.Stack())}
		}
	}()
	res, err = op.Plan(ctx, req)
	if res == nil {
		res = &PlanResult{}
	}
	if err == nil && op.Schema != nil {
		for k := range res.Set {
			if op.Schema.Lookup(k) == nil {
				return nil, fmt.Errorf("plan of op %q pins key %q, which its schema does not declare", req.Op, k)
			}
		}
	}
	return res, err
}

// checkConfig validates a config against the op's schema before Run.
func checkConfig(stepName string, op Op, cfg map[string]any) error {
	issues := op.Schema.Validate(cfg)
	if len(issues) == 0 {
		return nil
	}
	return &Diagnostic{
		Summary:   fmt.Sprintf("config of step %q: %v", stepName, (&schema.Error{Issues: issues}).Error()),
		Attribute: issues[0].Path,
	}
}
