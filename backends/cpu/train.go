package cpu

import (
	"github.com/marin-go/marin/backends/evaluate"
	"github.com/marin-go/marin/backends/tasks"
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/plugins/sdk"
)

// trainOps adds the training side of the backend to ops: train (behind
// default_sft), eval/exact_match and tasks/generate (the quickstart's
// synthetic data).
func trainOps(ops map[string]sdk.Op) map[string]sdk.Op {
	ops[train.OpName] = train.Op()
	ops[evaluate.ExactMatchOp] = evaluate.Op()
	ops[tasks.OpName] = tasks.Op()
	return ops
}
