package starlib

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/host/graph"
)

// fixture writes scripts into a temp dir and evaluates them (Tilt's starkit style).
type fixture struct {
	t   *testing.T
	dir string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return &fixture{t: t, dir: t.TempDir()}
}

func (f *fixture) file(name, src string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// exec evaluates a script and fails the test on error.
func (f *fixture) exec(name, src string) *Result {
	f.t.Helper()
	res, err := ExecFile(f.file(name, src), nil)
	if err != nil {
		f.t.Fatalf("exec %s: %v", name, err)
	}
	return res
}

// execErr evaluates a script that must fail and returns the error text.
func (f *fixture) execErr(name, src string) string {
	f.t.Helper()
	_, err := ExecFile(f.file(name, src), nil)
	if err == nil {
		f.t.Fatalf("exec %s: expected an error", name)
	}
	return err.Error()
}

// plan evaluates and plans a script under a fixed prefix.
func (f *fixture) plan(name, src string) *graph.Plan {
	f.t.Helper()
	res := f.exec(name, src)
	p, err := graph.Build("file:///prefix", res.Roots)
	if err != nil {
		f.t.Fatalf("plan %s: %v", name, err)
	}
	return p
}

// paths maps step name to relative output path.
func paths(p *graph.Plan) map[string]string {
	m := map[string]string{}
	for _, s := range p.Steps {
		m[s.Step.Name] = s.RelPath
	}
	return m
}

func mustContain(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%q\n  does not contain %q", got, w)
		}
	}
}
