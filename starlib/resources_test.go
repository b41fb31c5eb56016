package starlib

import (
	"reflect"
	"strings"
	"testing"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/host/runner"
)

// The scheduler fields of ResourceConfig reach the training step's config,
// where the cluster runners read them, without moving its output path.
func TestResourceConfigSchedulerFields(t *testing.T) {
	src := func(res string) string {
		return strings.ReplaceAll(render(nil), `resources = JaxDistributedConfig(backend = "cpu")`, "resources = "+res)
	}
	f := newFixture(t)
	ref := paths(f.plan("ref.star", src(`ResourceConfig()`)))
	full := `ResourceConfig(backend = "gomlx", device = "cuda", num_devices = 8, node_count = 2, cpus = 32,
        memory = "480G", time_limit = "12h", partition = "gpu", account = "nlp", qos = "high", gres = "gpu:h100:8",
        queue_name = "team", node_selector = {"pool": "h100"},
        tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}], image = "marin:gpu")`
	p := f.plan("full.star", src(full))
	if got := paths(p); !reflect.DeepEqual(got, ref) {
		t.Errorf("scheduler fields moved output paths:\n%v\n%v", got, ref)
	}
	var train *graph.Planned
	for _, st := range p.Steps {
		if st.Step.Op == "train" {
			train = st
		}
	}
	res, err := runner.ParseResources(train.Config["resources"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 2 || res.Device != "cuda" || res.DevicesPerNode != 8 || res.CPUs != 32 || res.MemoryMiB != 480*1024 ||
		res.TimeLimit.Hours() != 12 || res.Partition != "gpu" || res.Account != "nlp" || res.QOS != "high" || res.Gres != "gpu:h100:8" ||
		res.QueueName != "team" || res.NodeSelector["pool"] != "h100" || len(res.Tolerations) != 1 || res.Tolerations[0].Operator != "Exists" ||
		res.Image != "marin:gpu" {
		t.Errorf("resources as the runners read them: %+v", res)
	}
	// Defaults ask for nothing in particular.
	for _, st := range f.plan("ref2.star", src(`ResourceConfig()`)).Steps {
		if st.Step.Op != "train" {
			continue
		}
		res, err := runner.ParseResources(st.Config["resources"], nil)
		if err != nil || !reflect.DeepEqual(res, runner.Resources{Nodes: 1, Device: "cpu"}) {
			t.Errorf("default resources %+v, %v", res, err)
		}
	}
}
