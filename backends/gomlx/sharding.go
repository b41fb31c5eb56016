package gomlx

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Over several devices the model trains FSDP-style with GoMLX's
// AutoSharding strategy (XLA's Shardy partitioner): a one-axis device mesh
// ("data"); every weight matrix, its moments and its Kahan compensation
// are split along one axis over the mesh, each device holding one shard;
// the batch is split by rows over the same axis (data parallelism). The
// graphs are written for the whole (logical) tensors, and XLA inserts the
// all-gathers of the weights and the reduce-scatters of the gradients.
// Vectors (norm weights, biases) are small and stay replicated. Checkpoints
// and exports gather the shards on the host (Model.Params), so they hold
// whole tensors and any device count resumes them.
//
// GoMLX's pure-Go engine has no AutoSharding: sharded training needs XLA.

// MeshAxis is the device mesh's one axis, over which both the state and the
// batch are split.
const MeshAxis = "data"

// sharding lays a model's state and batches over the mesh.
type sharding struct {
	mesh *distributed.DeviceMesh
	n    int
	// param is each parameter's spec, in paramSpec order.
	param []*distributed.ShardingSpec
	// batch splits the batch inputs' rows.
	batch *distributed.ShardingSpec
}

// shardAxis is the axis of a tensor of shape split over n devices: the
// first of a matrix's axes that n divides, -1 when it stays replicated.
func shardAxis(shape []int, n int) int {
	if len(shape) < 2 || n <= 1 {
		return -1
	}
	for a, d := range shape {
		if d%n == 0 {
			return a
		}
	}
	return -1
}

// newSharding builds the mesh of n devices and the specs of specs' tensors.
func newSharding(n int, specs []paramSpec) (*sharding, error) {
	mesh, err := distributed.NewDeviceMesh([]int{n}, []string{MeshAxis})
	if err != nil {
		return nil, fmt.Errorf("gomlx: device mesh of %d: %w", n, err)
	}
	s := &sharding{mesh: mesh, n: n}
	for _, p := range specs {
		spec, err := paramSharding(mesh, p.shape)
		if err != nil {
			return nil, fmt.Errorf("gomlx: sharding of %s %v: %w", p.name, p.shape, err)
		}
		s.param = append(s.param, spec)
	}
	if s.batch, err = distributed.BuildSpec(mesh).S(MeshAxis).Done(); err != nil {
		return nil, err
	}
	return s, nil
}

// paramSharding is the spec of a parameter of shape on mesh.
func paramSharding(mesh *distributed.DeviceMesh, shape []int) (*distributed.ShardingSpec, error) {
	axis := shardAxis(shape, mesh.NumDevices())
	if axis < 0 {
		return distributed.NewReplicatedShardingSpec(mesh), nil
	}
	b := distributed.BuildSpec(mesh)
	for a := range shape {
		if a == axis {
			b = b.S(MeshAxis)
		} else {
			b = b.R()
		}
	}
	return b.Done()
}

// split cuts host tensor t of parameter i into its per-device shards.
func (s *sharding) split(i int, t *tensors.Tensor) ([]*tensors.Tensor, error) {
	dt, err := distributed.ShardTensor(s.param[i], t)
	if err != nil {
		return nil, fmt.Errorf("gomlx: shard parameter %d: %w", i, err)
	}
	return dt.Shards(), nil
}

// merge gathers parameter i's shards (one per device) into one host tensor.
func (s *sharding) merge(i int, shards []*tensors.Tensor) (*tensors.Tensor, error) {
	dt, err := distributed.NewTensor(s.param[i], shards)
	if err != nil {
		return nil, fmt.Errorf("gomlx: gather parameter %d: %w", i, err)
	}
	t, err := dt.Merge()
	if err != nil {
		return nil, fmt.Errorf("gomlx: gather parameter %d: %w", i, err)
	}
	return t, nil
}
