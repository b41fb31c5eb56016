package starlib

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/golden"
)

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
			golden.Compare(t, filepath.Join("testdata", name+".golden"), buf.Bytes())
		})
	}
}
