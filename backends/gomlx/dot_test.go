package gomlx

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The matmul-shaped DotGeneral gradient equals GoMLX's stock one, for
// batch axes, several contracting axes given out of order, and crosses on
// both sides.
func TestDotGeneralGradientMatchesStock(t *testing.T) {
	b, err := engine(Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                   string
		lhs, rhs               []int
		lhsC, lhsB, rhsC, rhsB []int
	}{
		{"matmul", []int{3, 4}, []int{4, 5}, []int{1}, nil, []int{0}, nil},
		{"linear", []int{2, 3, 4}, []int{5, 4}, []int{2}, nil, []int{1}, nil},
		{"attention", []int{2, 3, 2, 2, 4}, []int{2, 5, 2, 4}, []int{4}, []int{0, 2}, []int{3}, []int{0, 2}},
		{"two-contract-unsorted", []int{3, 4, 2, 5}, []int{2, 6, 4}, []int{2, 1}, nil, []int{0, 2}, nil},
		{"batch-last", []int{4, 3, 2}, []int{2, 4, 5}, []int{0}, []int{2}, []int{1}, []int{0}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randT := func(dims []int) *tensors.Tensor {
		data := make([]float32, size(dims))
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		return tensors.FromFlatDataAndDimensions(data, dims...)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, y := randT(c.lhs), randT(c.rhs)
			run := func(custom bool) []*tensors.Tensor {
				e, err := NewExec(b, func(lhs, rhs *Node) []*Node {
					defer forgetDots(lhs.Graph())
					var out *Node
					if custom {
						out = dotGeneral(lhs, c.lhsC, c.lhsB, rhs, c.rhsC, c.rhsB)
					} else {
						out = DotGeneral(lhs, c.lhsC, c.lhsB, rhs, c.rhsC, c.rhsB)
					}
					w := Iota(lhs.Graph(), out.Shape(), out.Rank()-1) // a non-uniform adjoint
					loss := ReduceAllSum(Mul(out, AddScalar(ConvertDType(w, out.DType()), 0.5)))
					return Gradient(loss, lhs, rhs)
				})
				if err != nil {
					t.Fatal(err)
				}
				res, err := e.Exec(x, y)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			var got, want []*tensors.Tensor
			if err := try(func() error { got, want = run(true), run(false); return nil }); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				g, _ := tensors.CopyFlatData[float32](got[i])
				w, _ := tensors.CopyFlatData[float32](want[i])
				for j := range w {
					if math.Abs(float64(g[j]-w[j])) > 1e-4*math.Max(1, math.Abs(float64(w[j]))) {
						t.Fatalf("operand %d element %d: %v, stock %v", i, j, g[j], w[j])
					}
				}
			}
		})
	}
}
