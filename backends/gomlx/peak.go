package gomlx

import (
	"math/rand/v2"
	"sync"
	"time"

	gobackends "github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// peaks caches the measured matmul rate per backend and dtype.
var peaks sync.Map // key string → float64

// matmulPeak measures the FLOP/s of a square matrix multiply in dtype on
// backend (the best of a few runs after one that compiles): the figure
// training MFU is reported against on this engine — the accelerator's own
// rate under XLA, the pure-Go engine's on CPU. n is 4096 on accelerators and
// 256 on the CPU engine. 0 when the measurement fails.
func matmulPeak(backend gobackends.Backend, dt dtypes.DType, accelerator bool) float64 {
	key := backend.Name() + "/" + dt.String()
	if v, ok := peaks.Load(key); ok {
		return v.(float64)
	}
	n := 256
	if accelerator {
		n = 4096
	}
	best := 0.0
	_ = try(func() error {
		e, err := NewExec(backend, func(a, b *Node) *Node {
			return ConvertDType(MatMul(ConvertDType(a, dt), ConvertDType(b, dt)), dtypes.Float32)
		})
		if err != nil {
			return err
		}
		defer e.Finalize()
		rng := rand.New(rand.NewPCG(1, 2))
		x := make([]float32, n*n)
		for i := range x {
			x[i] = rng.Float32()
		}
		a := tensors.FromFlatDataAndDimensions(x, n, n)
		b := tensors.FromFlatDataAndDimensions(x, n, n)
		for r := 0; r < 4; r++ {
			t0 := time.Now()
			out, err := e.Exec(a, b)
			if err != nil {
				return err
			}
			_ = out[0].Value() // wait for the device
			out[0].FinalizeAll()
			if r > 0 {
				if g := 2 * float64(n) * float64(n) * float64(n) / time.Since(t0).Seconds(); g > best {
					best = g
				}
			}
		}
		return nil
	})
	peaks.Store(key, best)
	return best
}
