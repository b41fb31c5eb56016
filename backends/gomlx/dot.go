package gomlx

import (
	"slices"
	"sync"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// GoMLX v0.26.0's gradient of DotGeneral multiplies the output's adjoint by
// the other operand broadcast over every axis before reducing: for
// x[b,s,k]·w[k,n] that is a [b,s,n,k] tensor, tens of gigabytes for a
// small model. dotGeneral records the axes of the products this package
// builds, and dotVJP (registered for DotGeneral nodes) computes their
// gradients as two more DotGenerals, as XLA frameworks do. Nodes this
// package did not build keep the stock gradient.

type dotAxes struct {
	lhsContract, lhsBatch, rhsContract, rhsBatch []int
}

var (
	dotMu       sync.Mutex
	dotRecorded = map[*Node]dotAxes{}
	stockDotVJP VJP
	installDot  sync.Once
)

// The registration happens at init, before any graph is built, so no
// gradient computation reads the map while it changes.
func init() { installDotVJP() }

func installDotVJP() {
	installDot.Do(func() {
		stockDotVJP = VJPRegistration[NodeTypeDotGeneral]
		VJPRegistration[NodeTypeDotGeneral] = dotVJP
	})
}

// dotGeneral is graph.DotGeneral with a matmul-shaped gradient.
func dotGeneral(lhs *Node, lhsContract, lhsBatch []int, rhs *Node, rhsContract, rhsBatch []int) *Node {
	installDotVJP()
	out := DotGeneral(lhs, lhsContract, lhsBatch, rhs, rhsContract, rhsBatch)
	dotMu.Lock()
	dotRecorded[out] = dotAxes{lhsContract, lhsBatch, rhsContract, rhsBatch}
	dotMu.Unlock()
	return out
}

// forgetDots drops the recorded axes of a finished graph's nodes.
func forgetDots(g *Graph) {
	dotMu.Lock()
	defer dotMu.Unlock()
	for n := range dotRecorded {
		if n.Graph() == g {
			delete(dotRecorded, n)
		}
	}
}

func dotVJP(node *Node, vjps []*Node, outShape shapes.Shape) []*Node {
	dotMu.Lock()
	ax, ok := dotRecorded[node]
	dotMu.Unlock()
	if !ok {
		return stockDotVJP(node, vjps, outShape)
	}
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	v := vjps[0]
	lhsCross := crossAxes(lhs.Rank(), ax.lhsContract, ax.lhsBatch)
	rhsCross := crossAxes(rhs.Rank(), ax.rhsContract, ax.rhsBatch)
	nb := len(ax.lhsBatch)
	// v's axes: [batch..., lhsCross..., rhsCross...].
	vBatch := iota(0, nb)
	vLhsCross := iota(nb, len(lhsCross))
	vRhsCross := iota(nb+len(lhsCross), len(rhsCross))

	// dL/dlhs = v · rhs, contracting rhs's cross axes: gives
	// [batch..., lhsCross..., rhs's contracting axes in increasing order].
	gl := DotGeneral(v, vRhsCross, vBatch, rhs, rhsCross, ax.rhsBatch)
	gl = transposeBack(gl, lhs.Rank(), ax.lhsBatch, lhsCross, ax.lhsContract, ax.rhsContract)
	// dL/drhs = v · lhs, contracting lhs's cross axes: gives
	// [batch..., rhsCross..., lhs's contracting axes in increasing order].
	gr := DotGeneral(v, vLhsCross, vBatch, lhs, lhsCross, ax.lhsBatch)
	gr = transposeBack(gr, rhs.Rank(), ax.rhsBatch, rhsCross, ax.rhsContract, ax.lhsContract)
	return []*Node{gl, gr}
}

// transposeBack permutes g, laid out as [batch..., cross..., partner's
// contracting axes sorted], into the operand's own axis order.
func transposeBack(g *Node, rank int, batch, cross, contract, partnerContract []int) *Node {
	sorted := slices.Clone(partnerContract)
	slices.Sort(sorted)
	// perm[i] is the axis of g that becomes the operand's axis i.
	perm := make([]int, rank)
	for i, a := range batch {
		perm[a] = i
	}
	for i, a := range cross {
		perm[a] = len(batch) + i
	}
	for k, a := range contract {
		perm[a] = len(batch) + len(cross) + slices.Index(sorted, partnerContract[k])
	}
	identity := true
	for i, p := range perm {
		if i != p {
			identity = false
		}
	}
	if identity {
		return g
	}
	return TransposeAllAxes(g, perm...)
}

func crossAxes(rank int, contract, batch []int) []int {
	var out []int
	for a := range rank {
		if !slices.Contains(contract, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

func iota(start, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = start + i
	}
	return out
}
