package transformer

import (
	"math"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
)

// logitsBudget bounds the floats of one chunk of logits (rows × vocab).
const logitsBudget = 1 << 24

// chunkRows is how many trained positions share one logits chunk.
func chunkRows(vocab int) int {
	return max(16, min(512, logitsBudget/vocab))
}

// headLoss computes the loss over the trained rows of hF ([N, d], the
// final-norm output) and, when dhF is non-nil, writes ∂(scale·(loss+zloss))
// /∂hF into dhF (zero on untrained rows) and adds the head weight's gradient
// into gw (unless nil: a frozen head).
func (m *Model) headLoss(hF []float32, rows []int32, dhF []float32, gw *llama.Tensor, scale float32, opts llama.LossOptions) llama.LossResult {
	ws := m.ws
	d, V := m.Config.HiddenSize, m.Config.VocabSize
	w := m.headWeight()
	tokens := ws.tokens
	wz := opts.ZLossWeight
	res := llama.LossResult{Count: len(rows)}
	if dhF != nil {
		clear(dhF)
	}
	cr := chunkRows(V)
	for c0 := 0; c0 < len(rows); c0 += cr {
		c1 := min(c0+cr, len(rows))
		n := c1 - c0
		hc := ws.headIn[:n*d]
		for j, r := range rows[c0:c1] {
			copy(hc[j*d:j*d+d], hF[int(r)*d:int(r)*d+d])
		}
		logits := ws.logits[:n*V]
		kernels.Sgemm(false, true, n, V, d, 1, hc, d, w.Data, d, 0, logits, V)
		ce := ws.rowLoss[:n]
		zl := ws.rowZ[:n]
		kernels.ParallelFor(n, func(_, j int) {
			row := logits[j*V : j*V+V]
			target := tokens[rows[c0+j]+1]
			zt := row[target]
			mx := kernels.Max(row)
			s := kernels.ExpSum(row, row, 1, -mx)
			lse := float64(mx) + math.Log(s)
			ce[j] = lse - float64(zt)
			zl[j] = wz * lse * lse
			if dhF == nil {
				return
			}
			// d/dz (lse − z_y + w·lse²) = softmax·(1 + 2w·lse) − onehot(y).
			f := float32((1 + 2*wz*lse) / s * float64(scale))
			for i := range row {
				row[i] *= f
			}
			row[target] -= scale
		})
		for j := 0; j < n; j++ {
			res.Loss += ce[j]
			res.ZLoss += zl[j]
		}
		if dhF == nil {
			continue
		}
		dhc := ws.headIn[n*d : 2*n*d]
		kernels.Sgemm(false, false, n, d, V, 1, logits, V, w.Data, d, 0, dhc, d)
		if gw != nil { // nil: a frozen head
			kernels.Sgemm(true, false, V, d, n, 1, logits, V, hc, d, 1, gw.Data, d)
		}
		for j, r := range rows[c0:c1] {
			copy(dhF[int(r)*d:int(r)*d+d], dhc[j*d:j*d+d])
		}
	}
	return res
}

// headWeight is the LM head matrix [vocab, d]: lm_head.weight, or the
// embeddings when tied.
func (m *Model) headWeight() *llama.Tensor {
	if m.Params.LMHead != nil {
		return m.Params.LMHead
	}
	return m.Params.Embed
}
