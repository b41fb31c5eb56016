package gomlx

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/train"
)

func specsOf(t *testing.T, cfg llama.Config) []paramSpec {
	t.Helper()
	shapes, err := llama.Shapes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []paramSpec
	for _, s := range shapes {
		out = append(out, paramSpec{name: s.Name, shape: s.Shape, decay: optim.LevanterWeightDecay(s.Name)})
	}
	return out
}

// The FSDP layout of Llama-3.1-8B over meshes of 2 and 8 devices: every
// matrix split along its first axis the mesh divides, vectors replicated,
// the batch split by rows; per device an n-th of the matrices.
func TestShardingSpecsOf8B(t *testing.T) {
	hm, ok, err := train.KnownHubModel("meta-llama/Llama-3.1-8B")
	if err != nil || !ok {
		t.Fatal(err)
	}
	specs := specsOf(t, hm.Config)
	for _, n := range []int{2, 8} {
		s, err := newSharding(n, specs)
		if err != nil {
			t.Fatal(err)
		}
		if s.mesh.NumDevices() != n || s.mesh.AxesNames()[0] != MeshAxis || s.batch.String() != "ShardingSpec{mesh=mesh, axes=[S(data)]}" {
			t.Fatalf("mesh %v, batch %v", s.mesh, s.batch)
		}
		var whole, perDevice int64
		for i, p := range specs {
			spec := s.param[i]
			size := int64(size(p.shape))
			whole += size
			if len(p.shape) == 1 {
				if !spec.IsReplicated() {
					t.Errorf("%s: vector sharded: %v", p.name, spec)
				}
				perDevice += size
				continue
			}
			if spec.String() != "ShardingSpec{mesh=mesh, axes=[S(data), R]}" {
				t.Errorf("n=%d %s %v: %v", n, p.name, p.shape, spec)
			}
			perDevice += size / int64(n)
		}
		if perDevice > whole/int64(n)+whole/1000 {
			t.Errorf("n=%d: a device holds %d of %d parameters", n, perDevice, whole)
		}
	}
	// Axes the mesh does not divide: the next one, else replicated.
	if a := shardAxis([]int{6, 8}, 4); a != 1 {
		t.Errorf("shardAxis([6 8], 4) = %d", a)
	}
	if a := shardAxis([]int{6, 10}, 4); a != -1 {
		t.Errorf("shardAxis([6 10], 4) = %d", a)
	}
	if a := shardAxis([]int{8, 8}, 1); a != -1 {
		t.Errorf("a mesh of one sharded: %d", a)
	}
}

// Shards cut on the host and gathered again give back every parameter,
// float32 and bf16, over meshes of 2 and 3 (uneven: some replicated).
func TestShardsGatherBack(t *testing.T) {
	cfg := tinyConfig(false)
	p := initParams(t, cfg, 2)
	specs := specsOf(t, cfg)
	for _, n := range []int{2, 3} {
		s, err := newSharding(n, specs)
		if err != nil {
			t.Fatal(err)
		}
		for i, pt := range p.Tensors() {
			for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.BFloat16} {
				shards, err := s.split(i, hostTensor(pt.Data, pt.Shape, dt))
				if err != nil {
					t.Fatal(err)
				}
				if len(shards) != n {
					t.Fatalf("%d shards over %d devices", len(shards), n)
				}
				whole, err := s.merge(i, shards)
				if err != nil {
					t.Fatal(err)
				}
				got, err := toFloat32(whole)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := toFloat32(hostTensor(pt.Data, pt.Shape, dt))
				for j := range want {
					if got[j] != want[j] {
						t.Fatalf("n=%d %s %s: value %d is %v, want %v", n, pt.Name, dt, j, got[j], want[j])
					}
				}
			}
		}
	}
}

// A mesh of one is no mesh: one device trains unsharded, with no
// distribution strategy (as every other test of this package runs; the
// pure-Go engine has one device and no AutoSharding, and refuses more:
// TestMoreDevicesThanTheEngineHas).
func TestMeshOfOne(t *testing.T) {
	m, err := New(initParams(t, tinyConfig(false), 0), Options{Devices: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.shard != nil || m.Devices() != 1 {
		t.Fatalf("one device: sharding %v over %d", m.shard, m.Devices())
	}
	if _, _, err := m.TrainStep(t.Context(), 1e-3, BenchBatch(tinyConfig(false), 2, 8, 1)); err != nil {
		t.Fatal(err)
	}
}
