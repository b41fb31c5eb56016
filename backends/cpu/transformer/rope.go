package transformer

import "github.com/marin-go/marin/backends/model/llama"

// ropeApply rotates, in place, the heads of rows [r0, r1) of x (row stride
// ld, nHeads heads of 2·half values each) by their positions, in HF's
// rotate_half layout: pairs (i, i+half).
func ropeApply(t *llama.RopeTable, x []float32, ld, nHeads int, pos []int32, r0, r1 int) {
	half := t.Half
	for r := r0; r < r1; r++ {
		p := int(pos[r])
		c := t.Cos[p*half : p*half+half]
		s := t.Sin[p*half : p*half+half]
		row := x[r*ld : r*ld+nHeads*2*half]
		for h := 0; h < nHeads; h++ {
			lo := row[h*2*half : h*2*half+half]
			hi := row[h*2*half+half : h*2*half+2*half]
			for i := range lo {
				a, b := lo[i], hi[i]
				lo[i] = a*c[i] + (-b)*s[i]
				hi[i] = b*c[i] + a*s[i]
			}
		}
	}
}

// ropeApplyInverse is the transpose of ropeApply (rotation by −angle): the backward
// pass of apply for gradients.
func ropeApplyInverse(t *llama.RopeTable, x []float32, ld, nHeads int, pos []int32, r0, r1 int) {
	half := t.Half
	for r := r0; r < r1; r++ {
		p := int(pos[r])
		c := t.Cos[p*half : p*half+half]
		s := t.Sin[p*half : p*half+half]
		row := x[r*ld : r*ld+nHeads*2*half]
		for h := 0; h < nHeads; h++ {
			lo := row[h*2*half : h*2*half+half]
			hi := row[h*2*half+half : h*2*half+2*half]
			for i := range lo {
				a, b := lo[i], hi[i]
				lo[i] = a*c[i] + b*s[i]
				hi[i] = b*c[i] - a*s[i]
			}
		}
	}
}
