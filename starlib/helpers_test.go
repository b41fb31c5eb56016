package starlib

import (
	"testing"

	"github.com/marin-go/marin/host/graph"
)

func planWith(t *testing.T, prefix string, res *Result) *graph.Plan {
	t.Helper()
	p, err := graph.Build(prefix, res.Roots)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func planErr(res *Result) (*graph.Plan, error) { return graph.Build("file:///p", res.Roots) }
