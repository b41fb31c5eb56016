package evaltasks

import (
	"regexp"
	"testing"
)

func TestRegistryLoads(t *testing.T) {
	c, err := Registry()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.TopLevel() {
		s, err := c.Suite(n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		t.Logf("%s: %d tasks, %d groups", n, len(s.Tasks), len(s.Groups))
	}
}

var fullCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestRegistryPinsRevisions(t *testing.T) {
	c, err := Registry()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.TopLevel() {
		s, err := c.Suite(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range s.Tasks {
			rev := task.Revision()
			if n == "leaderboard_gpqa" || n == "leaderboard_ifeval" {
				// No record of a full commit id; see their YAML files.
				if rev != "main" {
					t.Errorf("%s: revision %q", task.Task, rev)
				}
				continue
			}
			if !fullCommit.MatchString(rev) {
				t.Errorf("%s: revision %q is not a full commit id", task.Task, rev)
			}
		}
	}
}
