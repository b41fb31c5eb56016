package llama

import (
	"fmt"
	"math"

	"github.com/marin-go/marin/backends/kernels"
)

// Decoder generates text with a key/value cache: feed each row's prompt with
// Append, then one sampled token per row per Append call. Each row is one
// document whose positions count from 0. A Decoder shares its Model's
// parameters (read-only) but not its buffers, and is not safe for
// concurrent use, nor for use concurrently with its Model.
type Decoder struct {
	m      *Model
	rows   int
	maxLen int
	k, v   [][]float32 // per layer: [rows, maxLen, kvDim], post-RoPE keys
	length []int
	rope   *ropeTable
}

// NewDecoder returns a decoder for rows sequences of at most maxLen tokens
// (prompt and generated together; at most max_position_embeddings).
func (m *Model) NewDecoder(rows, maxLen int) (*Decoder, error) {
	c := m.Config
	if rows <= 0 || maxLen <= 0 {
		return nil, fmt.Errorf("new decoder: %d rows of %d tokens", rows, maxLen)
	}
	if maxLen > c.MaxPositionEmbeddings {
		return nil, fmt.Errorf("new decoder: %d tokens exceed max_position_embeddings %d", maxLen, c.MaxPositionEmbeddings)
	}
	if lim := c.SlidingWindowLimit(); lim > 0 && maxLen > lim {
		return nil, fmt.Errorf("new decoder: %d tokens exceed the sliding window %d (not implemented)", maxLen, lim)
	}
	kvDim := c.NumKeyValueHeads * c.HeadDim
	d := &Decoder{m: m, rows: rows, maxLen: maxLen, length: make([]int, rows), rope: newRopeTable(c, maxLen)}
	for range c.NumHiddenLayers {
		d.k = append(d.k, make([]float32, rows*maxLen*kvDim))
		d.v = append(d.v, make([]float32, rows*maxLen*kvDim))
	}
	return d, nil
}

// Len is the number of tokens cached for row.
func (d *Decoder) Len(row int) int { return d.length[row] }

// Reset empties every row.
func (d *Decoder) Reset() { clear(d.length) }

// ResetRow empties one row.
func (d *Decoder) ResetRow(row int) { d.length[row] = 0 }

// Append feeds tokens[r] to row r (rows may get different numbers of tokens,
// none included) and returns, for every row that got tokens, the
// next-token logits after its last one (VocabSize values; nil for the
// others). The logits equal Model.Logits over the row's whole sequence, up
// to float32 rounding.
func (d *Decoder) Append(tokens [][]int32) ([][]float32, error) {
	if len(tokens) != d.rows {
		return nil, fmt.Errorf("decoder append: %d rows of tokens for %d rows", len(tokens), d.rows)
	}
	c := d.m.Config
	for r, toks := range tokens {
		if d.length[r]+len(toks) > d.maxLen {
			return nil, fmt.Errorf("decoder append: row %d would hold %d tokens, the decoder holds %d", r, d.length[r]+len(toks), d.maxLen)
		}
		for _, t := range toks {
			if t < 0 || int(t) >= c.VocabSize {
				return nil, fmt.Errorf("decoder append: token %d in row %d is outside the vocabulary [0, %d)", t, r, c.VocabSize)
			}
		}
	}
	out := make([][]float32, d.rows)
	for r, toks := range tokens {
		if len(toks) == 0 {
			continue
		}
		out[r] = d.appendRow(r, toks)
	}
	return out, nil
}

func (d *Decoder) appendRow(row int, toks []int32) []float32 {
	m := d.m
	c := m.Config
	n := len(toks)
	dm, F := c.HiddenSize, c.IntermediateSize
	dims := newAttnDims(c, d.maxLen)
	start := d.length[row]
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(start + i)
	}
	x := make([]float32, n*dm)
	for i, t := range toks {
		copy(x[i*dm:(i+1)*dm], m.Params.Embed.Data[int(t)*dm:int(t+1)*dm])
	}
	h := make([]float32, n*dm)
	rstd := make([]float32, n)
	q := make([]float32, n*dims.qDim)
	att := make([]float32, n*dims.qDim)
	gate, up := make([]float32, n*F), make([]float32, n*F)
	total := start + n
	scores := make([][]float32, kernels.Threads())
	for i := range scores {
		scores[i] = make([]float32, n*total)
	}
	for li := range c.NumHiddenLayers {
		p := &m.Params.Layers[li]
		kc := d.k[li][row*d.maxLen*dims.kvDim:]
		vc := d.v[li][row*d.maxLen*dims.kvDim:]
		rmsNorm(h, x, rstd, p.InputNorm.Data, n, dm, c.RMSNormEps)
		linear(q, h, n, p.Q, p.QBias, false)
		linear(kc[start*dims.kvDim:], h, n, p.K, p.KBias, false)
		linear(vc[start*dims.kvDim:], h, n, p.V, p.VBias, false)
		d.rope.apply(q, dims.qDim, dims.H, pos, 0, n)
		d.rope.apply(kc[start*dims.kvDim:], dims.kvDim, dims.KV, pos, 0, n)
		kernels.ParallelFor(dims.H, func(w, hd int) {
			kvh := hd / dims.group
			s := scores[w][:n*total]
			kernels.SgemmSerial(false, true, n, total, dims.hd, dims.scale, q[hd*dims.hd:], dims.qDim, kc[kvh*dims.hd:], dims.kvDim, 0, s, total)
			for i := 0; i < n; i++ {
				rowS := s[i*total : (i+1)*total]
				valid := rowS[:start+i+1]
				clear(rowS[start+i+1:])
				mx := kernels.Max(valid)
				sum := kernels.ExpSum(valid, valid, 1, -mx)
				inv := float32(1 / sum)
				for j := range valid {
					valid[j] *= inv
				}
			}
			kernels.SgemmSerial(false, false, n, dims.hd, total, 1, s, total, vc[kvh*dims.hd:], dims.kvDim, 0, att[hd*dims.hd:], dims.qDim)
		})
		linear(x, att, n, p.O, p.OBias, true)
		rmsNorm(h, x, rstd, p.PostAttentionNorm.Data, n, dm, c.RMSNormEps)
		linear(gate, h, n, p.Gate, p.GateBias, false)
		linear(up, h, n, p.Up, p.UpBias, false)
		kernels.SwiGLU(gate, gate, up)
		linear(x, gate, n, p.Down, p.DownBias, true)
	}
	last := x[(n-1)*dm : n*dm]
	hl := make([]float32, dm)
	rmsNorm(hl, last, rstd[:1], m.Params.Norm.Data, 1, dm, c.RMSNormEps)
	logits := make([]float32, c.VocabSize)
	kernels.Sgemm(false, true, 1, c.VocabSize, dm, 1, hl, dm, m.headWeight().Data, dm, 0, logits, c.VocabSize)
	d.length[row] = total
	return logits
}

// LogSoftmax turns logits into log-probabilities in place (a convenience
// for samplers) and returns the log-sum-exp.
func LogSoftmax(logits []float32) float32 {
	mx := kernels.Max(logits)
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v - mx))
	}
	lse := mx + float32(math.Log(s))
	for i := range logits {
		logits[i] -= lse
	}
	return lse
}
