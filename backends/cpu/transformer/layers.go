package transformer

import (
	"math"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
)

// reduceChunk is the fixed number of rows whose contributions to a
// per-column sum (norm-weight and bias gradients) are added before partial
// sums are combined. Fixed, so results never depend on the thread count.
const reduceChunk = 64

// rmsNorm sets y = w ⊙ (x · rstd) row by row, rstd = 1/sqrt(mean(x²)+eps),
// and records rstd (one per row).
func rmsNorm(y, x, rstd, w []float32, n, d int, eps float64) {
	kernels.ParallelRange(n, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*d : r*d+d]
			var ss float64
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			rs := float32(1 / math.Sqrt(ss/float64(d)+eps))
			rstd[r] = rs
			yr := y[r*d : r*d+d]
			for i, v := range xr {
				yr[i] = w[i] * (v * rs)
			}
		}
	})
}

// rmsNormBackward adds the gradient with respect to x into dx and with
// respect to w into dw, given the output gradient dy.
func rmsNormBackward(dx, dw, dy, x, rstd, w []float32, n, d int) {
	nChunks := (n + reduceChunk - 1) / reduceChunk
	var partial []float32
	if dw != nil { // nil: a frozen norm weight
		partial = make([]float32, nChunks*d)
	}
	kernels.ParallelFor(nChunks, func(_, c int) {
		var pw []float32
		if partial != nil {
			pw = partial[c*d : c*d+d]
		}
		for r := c * reduceChunk; r < min((c+1)*reduceChunk, n); r++ {
			xr, gr, dr := x[r*d:r*d+d], dy[r*d:r*d+d], dx[r*d:r*d+d]
			rs := rstd[r]
			var dot float64
			for i, v := range xr {
				xh := v * rs
				g := gr[i]
				if pw != nil {
					pw[i] += g * xh
				}
				dot += float64(g*w[i]) * float64(xh)
			}
			mean := float32(dot / float64(d))
			for i, v := range xr {
				xh := v * rs
				dr[i] += rs * (gr[i]*w[i] - xh*mean)
			}
		}
	})
	if partial != nil {
		sumChunksInto(dw, partial, nChunks, d)
	}
}

// sumChunksInto adds, column by column, the nChunks rows of partial into
// dst, in chunk order.
func sumChunksInto(dst, partial []float32, nChunks, d int) {
	kernels.ParallelRange(d, 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var s float32
			for c := 0; c < nChunks; c++ {
				s += partial[c*d+i]
			}
			dst[i] += s
		}
	})
}

// addColSums adds the column sums of the n×d matrix x into dst (a bias
// gradient), deterministically.
func addColSums(dst, x []float32, n, d int) {
	nChunks := (n + reduceChunk - 1) / reduceChunk
	partial := make([]float32, nChunks*d)
	kernels.ParallelFor(nChunks, func(_, c int) {
		p := partial[c*d : c*d+d]
		for r := c * reduceChunk; r < min((c+1)*reduceChunk, n); r++ {
			for i, v := range x[r*d : r*d+d] {
				p[i] += v
			}
		}
	})
	sumChunksInto(dst, partial, nChunks, d)
}

// linear sets y = x·Wᵀ (+ bias) for n rows, or y += x·Wᵀ (+ bias) when
// accumulate is set. W is [out, in].
func linear(y, x []float32, n int, w, bias *llama.Tensor, accumulate bool) {
	out, in := w.Shape[0], w.Shape[1]
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	kernels.Sgemm(false, true, n, out, in, 1, x, in, w.Data, in, beta, y, out)
	if bias != nil {
		b := bias.Data
		kernels.ParallelRange(n, 32, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				yr := y[r*out : r*out+out]
				for i := range yr {
					yr[i] += b[i]
				}
			}
		})
	}
}

// linearBackward adds dy·W into dx (or sets it when !accumulateDx), and
// dyᵀ·x into the weight gradient gw and the column sums of dy into the bias
// gradient gb (each when non-nil: nil is a frozen tensor). dx may be nil to
// skip the input gradient.
func linearBackward(dx []float32, accumulateDx bool, gw, gb *llama.Tensor, dy, x []float32, n int, w *llama.Tensor) {
	out, in := w.Shape[0], w.Shape[1]
	if gw != nil { // nil: a frozen weight
		kernels.Sgemm(true, false, out, in, n, 1, dy, out, x, in, 1, gw.Data, in)
	}
	if gb != nil {
		addColSums(gb.Data, dy, n, out)
	}
	if dx != nil {
		beta := float32(0)
		if accumulateDx {
			beta = 1
		}
		kernels.Sgemm(false, false, n, in, out, 1, dy, out, w.Data, in, beta, dx, in)
	}
}

// addInto sets dst[i] += src[i] in parallel.
func addInto(dst, src []float32) {
	kernels.ParallelRange(len(src), 1<<14, func(lo, hi int) {
		d, s := dst[lo:hi], src[lo:hi]
		for i, v := range s {
			d[i] += v
		}
	})
}

// parallelCopy is copy(dst, src) spread over threads.
func parallelCopy(dst, src []float32) {
	kernels.ParallelRange(len(src), 1<<16, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
}
