package transformer

import (
	"math"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
)

// queryBlock is the number of query rows whose scores are computed together;
// keys after a block's last query are skipped (causality) and so are keys
// before the earliest start of the block's segments.
const queryBlock = 64

// seqLayout describes, for every position of a batch, which keys it may
// attend to: keys of its own segment at or before it.
type seqLayout struct {
	B, T int
	seg  []int32 // B·T; −1 padding
	// keyFirst[i] is the first position of i's segment in its row; contig[i]
	// says the segment runs without a break from keyFirst[i] to i, so the
	// valid keys are exactly [keyFirst[i], i].
	keyFirst []int32
	contig   []bool
}

func newSeqLayout(b *llama.Batch) *seqLayout {
	n := b.B * b.T
	l := &seqLayout{B: b.B, T: b.T, seg: make([]int32, n), keyFirst: make([]int32, n), contig: make([]bool, n)}
	if b.Segments != nil {
		copy(l.seg, b.Segments)
	}
	for r := 0; r < b.B; r++ {
		first := map[int32]int32{}
		runStart := int32(0)
		for t := 0; t < b.T; t++ {
			i := r*b.T + t
			s := l.seg[i]
			if t == 0 || l.seg[i-1] != s {
				runStart = int32(t)
			}
			if s < 0 {
				continue
			}
			f, ok := first[s]
			if !ok {
				f = int32(t)
				first[s] = f
			}
			l.keyFirst[i] = f
			l.contig[i] = f == runStart
		}
	}
	return l
}

// keyRange returns the keys [lo, hi) that queries [q0, q1) of row r may
// attend to, or ok=false when all of them are padding.
func (l *seqLayout) keyRange(r, q0, q1 int) (lo, hi int, ok bool) {
	lo, hi = l.T, 0
	for t := q0; t < q1; t++ {
		i := r*l.T + t
		if l.seg[i] < 0 {
			continue
		}
		lo = min(lo, int(l.keyFirst[i]))
		hi = t + 1
	}
	return lo, hi, hi > 0
}

// attnDims are the attention shapes.
type attnDims struct {
	H, KV, hd    int
	qDim, kvDim  int
	group        int
	scale        float32
	scratchFloat int // floats of scratch one worker needs
}

func newAttnDims(cfg llama.Config, T int) attnDims {
	d := attnDims{H: cfg.NumAttentionHeads, KV: cfg.NumKeyValueHeads, hd: cfg.HeadDim}
	d.qDim, d.kvDim = d.H*d.hd, d.KV*d.hd
	d.group = d.H / d.KV
	d.scale = cfg.AttentionScale()
	d.scratchFloat = 2 * queryBlock * T
	return d
}

// softmaxRow turns row (raw scores q·k for keys [lo, lo+len(row))) of query
// i into probabilities softmax(scale·score) over the valid keys, zero
// elsewhere, and returns the log-sum-exp of the valid scaled scores. With
// recompute set (backward) it recomputes the probabilities as
// exp(scale·score − lse) from the given lse instead.
func (l *seqLayout) softmaxRow(row []float32, i, t, lo int, scale, lse float32, recompute bool) float32 {
	if l.seg[i] < 0 {
		clear(row)
		return 0
	}
	if l.contig[i] {
		a, e := int(l.keyFirst[i])-lo, t-lo+1
		clear(row[:a])
		clear(row[e:])
		v := row[a:e]
		if recompute {
			kernels.ExpSum(v, v, scale, -lse)
			return lse
		}
		m := kernels.Max(v) * scale
		s := kernels.ExpSum(v, v, scale, -m)
		inv := float32(1 / s)
		for j := range v {
			v[j] *= inv
		}
		return m + float32(math.Log(s))
	}
	// A segment id that reappears after a break: check every key.
	r := i / l.T
	s0 := l.seg[i]
	valid := func(j int) bool {
		k := lo + j
		return k <= t && l.seg[r*l.T+k] == s0
	}
	if recompute {
		for j := range row {
			if valid(j) {
				row[j] = float32(math.Exp(float64(scale*row[j] - lse)))
			} else {
				row[j] = 0
			}
		}
		return lse
	}
	m := float32(math.Inf(-1))
	for j, v := range row {
		if valid(j) && scale*v > m {
			m = scale * v
		}
	}
	var s float64
	for j := range row {
		if valid(j) {
			e := math.Exp(float64(scale*row[j] - m))
			row[j] = float32(e)
			s += e
		} else {
			row[j] = 0
		}
	}
	inv := float32(1 / s)
	for j := range row {
		row[j] *= inv
	}
	return m + float32(math.Log(s))
}

// attentionForward computes, for every row b and head h, softmax(scale·
// Q·Kᵀ + mask)·V into out ([N, qDim]) and the log-sum-exp of each query's
// scores into lse ([B·H·T], index (b·H+h)·T+t). q is [N, qDim], k and v are
// [N, kvDim]; query head h reads key/value head h/group.
func attentionForward(out, lse, q, k, v []float32, l *seqLayout, d attnDims, scratch [][]float32) {
	T := l.T
	kernels.ParallelFor(l.B*d.H, func(w, task int) {
		b, h := task/d.H, task%d.H
		kvh := h / d.group
		S := scratch[w]
		for q0 := 0; q0 < T; q0 += queryBlock {
			q1 := min(q0+queryBlock, T)
			qb := q1 - q0
			oBlk := out[(b*T+q0)*d.qDim+h*d.hd:]
			lo, hi, ok := l.keyRange(b, q0, q1)
			if !ok {
				for t := q0; t < q1; t++ {
					clear(out[(b*T+t)*d.qDim+h*d.hd : (b*T+t)*d.qDim+h*d.hd+d.hd])
					lse[(b*d.H+h)*T+t] = 0
				}
				continue
			}
			nk := hi - lo
			s := S[:qb*nk]
			kernels.SgemmSerial(false, true, qb, nk, d.hd, 1,
				q[(b*T+q0)*d.qDim+h*d.hd:], d.qDim,
				k[(b*T+lo)*d.kvDim+kvh*d.hd:], d.kvDim, 0, s, nk)
			for t := q0; t < q1; t++ {
				lse[(b*d.H+h)*T+t] = l.softmaxRow(s[(t-q0)*nk:(t-q0+1)*nk], b*T+t, t, lo, d.scale, 0, false)
			}
			kernels.SgemmSerial(false, false, qb, d.hd, nk, 1, s, nk,
				v[(b*T+lo)*d.kvDim+kvh*d.hd:], d.kvDim, 0, oBlk, d.qDim)
		}
	})
}

// attentionBackward computes the gradients dq ([N, qDim]), dk and dv ([N,
// kvDim]) of the attention given the output gradient dout, recomputing the
// probabilities from q, k and lse. It overwrites dq, dk and dv.
func attentionBackward(dq, dk, dv, dout, q, k, v, out, lse []float32, l *seqLayout, d attnDims, scratch [][]float32) {
	T := l.T
	kernels.ParallelFor(l.B*d.KV, func(w, task int) {
		b, kvh := task/d.KV, task%d.KV
		for t := 0; t < T; t++ {
			i := (b*T + t) * d.kvDim
			clear(dk[i+kvh*d.hd : i+kvh*d.hd+d.hd])
			clear(dv[i+kvh*d.hd : i+kvh*d.hd+d.hd])
		}
		P := scratch[w][:queryBlock*T]
		dP := scratch[w][queryBlock*T:]
		var dsum [queryBlock]float32
		for h := kvh * d.group; h < (kvh+1)*d.group; h++ {
			for q0 := 0; q0 < T; q0 += queryBlock {
				q1 := min(q0+queryBlock, T)
				qb := q1 - q0
				qOff := (b*T+q0)*d.qDim + h*d.hd
				lo, hi, ok := l.keyRange(b, q0, q1)
				if !ok {
					for t := q0; t < q1; t++ {
						clear(dq[(b*T+t)*d.qDim+h*d.hd : (b*T+t)*d.qDim+h*d.hd+d.hd])
					}
					continue
				}
				nk := hi - lo
				kvOff := (b*T+lo)*d.kvDim + kvh*d.hd
				p := P[:qb*nk]
				kernels.SgemmSerial(false, true, qb, nk, d.hd, 1, q[qOff:], d.qDim, k[kvOff:], d.kvDim, 0, p, nk)
				for t := q0; t < q1; t++ {
					l.softmaxRow(p[(t-q0)*nk:(t-q0+1)*nk], b*T+t, t, lo, d.scale, lse[(b*d.H+h)*T+t], true)
					// D = rowsum(dO ⊙ O) for this head.
					o := out[(b*T+t)*d.qDim+h*d.hd : (b*T+t)*d.qDim+h*d.hd+d.hd]
					g := dout[(b*T+t)*d.qDim+h*d.hd : (b*T+t)*d.qDim+h*d.hd+d.hd]
					var s float32
					for j, ov := range o {
						s += ov * g[j]
					}
					dsum[t-q0] = s
				}
				// dV += Pᵀ·dO
				kernels.SgemmSerial(true, false, nk, d.hd, qb, 1, p, nk, dout[qOff:], d.qDim, 1, dv[kvOff:], d.kvDim)
				// dP = dO·Vᵀ
				dp := dP[:qb*nk]
				kernels.SgemmSerial(false, true, qb, nk, d.hd, 1, dout[qOff:], d.qDim, v[kvOff:], d.kvDim, 0, dp, nk)
				// dS = scale·P ⊙ (dP − D), the gradient of the raw scores.
				sc := d.scale
				for r := 0; r < qb; r++ {
					pr := p[r*nk : r*nk+nk]
					dr := dp[r*nk : r*nk+nk]
					dd := dsum[r]
					for j, pv := range pr {
						dr[j] = sc * pv * (dr[j] - dd)
					}
				}
				// dQ = dS·K ; dK += dSᵀ·Q
				kernels.SgemmSerial(false, false, qb, d.hd, nk, 1, dp, nk, k[kvOff:], d.kvDim, 0, dq[qOff:], d.qDim)
				kernels.SgemmSerial(true, false, nk, d.hd, qb, 1, dp, nk, q[qOff:], d.qDim, 1, dk[kvOff:], d.kvDim)
			}
		}
	})
}
