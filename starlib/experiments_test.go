package starlib

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/host/graph"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestExperimentGoldens pins the version JSON and output path of every step
// of the shipped experiment scripts. A diff here means every user's cached
// outputs move: review it.
func TestExperimentGoldens(t *testing.T) {
	scripts, err := filepath.Glob("../experiments/*.star")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no experiment scripts: %v", err)
	}
	for _, script := range scripts {
		name := strings.TrimSuffix(filepath.Base(script), ".star")
		t.Run(name, func(t *testing.T) {
			res, err := ExecFile(script, nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := graph.Build("file:///marin-output", res.Roots)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			for _, s := range p.Steps {
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, s.VersionJSON, "  ", "  "); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&buf, "%s  (op %s)\n  %s\n\n", s.RelPath, s.Step.Op, pretty.String())
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./starlib -run TestExperimentGoldens -update)", err)
			}
			if !bytes.Equal(want, buf.Bytes()) {
				t.Errorf("%s differs from the plan; rerun with -update if the change is intended.\n%s", golden, lineDiff(string(want), buf.String()))
			}
		})
	}
}

// lineDiff shows the first differing lines.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  golden: %s\n  now:    %s", i+1, x, y)
		}
	}
	return ""
}
