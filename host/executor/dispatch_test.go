package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/storage"
)

func TestDispatchOp(t *testing.T) {
	cases := []struct{ op, step, override, def, want string }{
		{"tokenize", "", "", "", "tokenize"},         // no backend: never rerouted
		{"tokenize", "", "gomlx", "cpu", "tokenize"}, // --backend touches only backend steps
		{"train", "cpu", "", "cpu", "train"},
		{"train", "gomlx", "", "cpu", "gomlx/train"},
		{"train", "gomlx", "cpu", "cpu", "train"},
		{"train", "cpu", "gomlx", "", "gomlx/train"},
	}
	for _, c := range cases {
		if got := DispatchOp(c.op, c.step, c.override, c.def); got != c.want {
			t.Errorf("DispatchOp(%q, %q, %q, %q) = %q, want %q", c.op, c.step, c.override, c.def, got, c.want)
		}
	}
}

func TestBackendRoutesOpWithoutMovingThePath(t *testing.T) {
	n := 0
	mk := func(backend string) *graph.Plan {
		n++ // a fresh prefix per plan: each run starts from nothing
		s := &graph.Step{Name: "checkpoints/sft", Op: "train", Config: map[string]any{"lr": 1e-5}, Backend: backend}
		p, err := graph.Build(storage.NewMemURL(fmt.Sprintf("%s-%d", t.Name(), n)), []*graph.Step{s})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if a, b := mk("cpu"), mk("gomlx"); a.Steps[0].RelPath != b.Steps[0].RelPath {
		t.Fatalf("backend moved the path: %s vs %s", a.Steps[0].RelPath, b.Steps[0].RelPath)
	}
	for _, c := range []struct {
		backend  string
		override string
		want     string
	}{{"cpu", "", "train"}, {"gomlx", "", "gomlx/train"}, {"gomlx", "cpu", "train"}, {"cpu", "gomlx", "gomlx/train"}} {
		r := newFakeRunner()
		_, err := Run(context.Background(), mk(c.backend), Options{Runner: r, Backend: c.override, Heartbeat: time.Second, StaleAfter: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.lastReq["checkpoints/sft"].Op; got != c.want {
			t.Errorf("override %q: dispatched %q, want %q", c.override, got, c.want)
		}
	}
	r := newFakeRunner()
	r.unserved["gomlx/train"] = true
	_, err := Run(context.Background(), mk("gomlx"), Options{Runner: r, Backend: "gomlx"})
	var unserved *UnservedOpsError
	if !errors.As(err, &unserved) || !strings.Contains(err.Error(), `"gomlx/train"`) {
		t.Errorf("unserved backend op: %v", err)
	}
}
