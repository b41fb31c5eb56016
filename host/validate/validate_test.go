package validate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
)

type trainCfg struct {
	LR     float64 `json:"learning_rate" schema:"gt=0"`
	Device string  `json:"device" schema:"enum=cpu"`
	Tok    string  `json:"tokenizer"`
}

// fakeCatalog serves "train" (cpu) and "gomlx/train".
type fakeCatalog struct{ planned []string }

func (f *fakeCatalog) Spec(op string) (OpSpec, error) {
	switch op {
	case "train":
		return OpSpec{Plugin: executor.PluginRef{Name: "cpu"}, Schema: schema.MustFromStruct(trainCfg{}), Plans: true}, nil
	case "gomlx/train":
		s := schema.MustFromStruct(trainCfg{})
		s.Lookup("device").Enum = []string{"cpu", "cuda"}
		return OpSpec{Plugin: executor.PluginRef{Name: "gomlx"}, Schema: s}, nil
	case "shell/run":
		return OpSpec{Plugin: executor.PluginRef{Name: "shell"}}, nil
	}
	return OpSpec{}, errors.New(`no plugin serves op "` + op + `"`)
}

func (f *fakeCatalog) Backends() []string { return []string{"cpu", "gomlx"} }

func (f *fakeCatalog) Plan(_ context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	f.planned = append(f.planned, req.StepName)
	res := &sdk.PlanResult{Notes: []string{"note for " + req.StepName}}
	if tok, _ := req.Config["tokenizer"].(string); tok == "missing" {
		res.Errorf("tokenizer", "no such tokenizer")
	} else {
		res.Set = map[string]any{"tokenizer_digest": "sha256:x"}
	}
	return res, nil
}

func step(name, backend string, cfg map[string]any) *graph.Step {
	return &graph.Step{Name: name, Op: "train", Backend: backend, Config: cfg, Pos: "exp.star:9:5",
		Sources: map[string]graph.Source{
			"learning_rate": {Pos: "exp.star:3:5", Attr: "SimpleSFTConfig.learning_rate"},
			"device":        {Pos: "exp.star:4:5", Attr: "ResourceConfig.device"},
			"tokenizer":     {Pos: "exp.star:5:5", Attr: "SimpleSFTConfig.tokenizer"},
		}}
}

func check(t *testing.T, o Options, steps ...*graph.Step) (*Result, *fakeCatalog) {
	t.Helper()
	plan, err := graph.Build("file:///p", steps)
	if err != nil {
		t.Fatal(err)
	}
	cat := &fakeCatalog{}
	return Check(context.Background(), plan, cat, o), cat
}

func diags(r *Result) []string {
	var out []string
	for _, d := range r.Diagnostics {
		out = append(out, d.String())
	}
	return out
}

func TestCheckPlacesEveryProblemInTheScript(t *testing.T) {
	r, cat := check(t, Options{DefaultBackend: "cpu"},
		step("ok", "cpu", map[string]any{"learning_rate": 0.1, "device": "cpu", "tokenizer": "t"}),
		step("bad", "cpu", map[string]any{"learning_rate": -1.0, "device": "cuda", "tokenizer": "t"}),
		step("gx", "gomlx", map[string]any{"learning_rate": 0.1, "device": "cuda", "tokenizer": "t"}),
		step("nobackend", "jax", map[string]any{"learning_rate": 0.1}),
		step("unplanned", "cpu", map[string]any{"learning_rate": 0.1, "tokenizer": "missing"}),
	)
	want := []string{
		`exp.star:3:5: SimpleSFTConfig.learning_rate: must be positive, got -1 (step bad, op train)`,
		`exp.star:4:5: ResourceConfig.device: must be one of "cpu", got "cuda" (step bad, op train)`,
		`exp.star:5:5: SimpleSFTConfig.tokenizer: no such tokenizer (step unplanned, op train)`,
		`exp.star:9:5: resources.backend: "jax" is not a backend; backends: cpu, gomlx (step nobackend, op jax/train)`,
	}
	if got := diags(r); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r.Ops["gx"] != "gomlx/train" || r.Ops["ok"] != "train" {
		t.Errorf("routing: %v", r.Ops)
	}
	// Plan runs only for ops that plan and whose config passed its schema.
	if strings.Join(cat.planned, ",") != "ok,unplanned" {
		t.Errorf("planned %v", cat.planned)
	}
	if len(r.Pins) != 1 || len(r.Notes["ok"]) != 1 {
		t.Errorf("pins %v notes %v", r.Pins, r.Notes)
	}
	var e *Error
	if !errors.As(r.Err(), &e) || e.OnlyUnserved() || !strings.Contains(e.Error(), "4 problems found while planning") {
		t.Errorf("Err() = %v", r.Err())
	}
}

func TestBackendOverrideAndUnservedOps(t *testing.T) {
	// --backend gomlx routes the step to gomlx/train, whose schema allows cuda.
	r, _ := check(t, Options{DefaultBackend: "cpu", Backend: "gomlx"},
		step("s", "cpu", map[string]any{"learning_rate": 0.1, "device": "cuda"}))
	if len(r.Diagnostics) != 0 || r.Ops["s"] != "gomlx/train" {
		t.Errorf("override: %v %v", diags(r), r.Ops)
	}
	r, _ = check(t, Options{DefaultBackend: "cpu", Backend: "tpu9"},
		step("s", "cpu", map[string]any{"learning_rate": 0.1}))
	if got := diags(r); len(got) != 1 || !strings.Contains(got[0], `--backend "tpu9" is not a backend`) {
		t.Errorf("bad override: %v", got)
	}
	plan, _ := graph.Build("file:///p", []*graph.Step{{Name: "x", Op: "nope/op", Pos: "exp.star:1:1"}})
	res := Check(context.Background(), plan, &fakeCatalog{}, Options{})
	var e *Error
	if !errors.As(res.Err(), &e) || !e.OnlyUnserved() {
		t.Errorf("an unserved op: %v", res.Err())
	}
}

func TestApplyPinsReportsChanges(t *testing.T) {
	st := &graph.Step{Name: "t", Op: "tokenize", Config: map[string]any{"tokenizer": "a"}}
	pins := map[*graph.Step]map[string]any{st: {"tokenizer_digest": "sha256:1"}}
	if !ApplyPins(pins) || st.Config["tokenizer_digest"] != "sha256:1" {
		t.Fatal("pin not applied")
	}
	if ApplyPins(pins) {
		t.Error("applying the same pin twice reported a change")
	}
}
