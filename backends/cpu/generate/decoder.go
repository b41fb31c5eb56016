// Package generate is the CPU engine's decoder: a Llama-family model run
// over rows of sequences with a key/value cache (sample.Decoder), over
// backends/model/llama's parameters. backends/model/sample drives it (its
// generation loop and sampling); marin generate and chat and the
// eval/exact_match op use it through that package.
//
// The decoder computes what transformer.Model.Logits computes for each
// sequence (same RMSNorm, RoPE tables, grouped-query attention and SwiGLU),
// but keeps every layer's keys and values so each new token costs one row
// of work instead of a pass over the whole sequence. The rows fed in one
// call share the matrix products (one sgemm over all their tokens);
// attention runs per row over its own cache, so a row's logits do not
// depend on the other rows. They agree with transformer.Model.Logits to
// float32 rounding (the sums run in another order).
package generate

import (
	"context"
	"fmt"
	"math"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/sample"
)

var _ sample.Decoder = (*Decoder)(nil)

// Decoder runs a model over Rows() sequences with a key/value cache. It is
// not safe for concurrent use.
type Decoder struct {
	cfg    llama.Config // normalized
	p      *llama.Params
	maxLen int
	rope   *llama.RopeTable
	// kc, vc: per row, per layer, [positions, kvDim], grown on demand up
	// to maxLen.
	kc, vc [][][]float32
	n      []int // positions each row holds

	// scratch, grown to the largest chunk fed
	cap                int
	x, h, q, k, v, att []float32
	gate, up, a        []float32
	pos                []int32
	scores             [][]float32 // per (row, head) of a chunk
	hl                 []float32
	out                [][]float32 // per row: the logits returned
}

// NewDecoder returns a decoder for params of rows sequences holding up to
// maxLen positions each (at most max_position_embeddings; 0 means that
// limit). The cache grows with the positions used.
func NewDecoder(params *llama.Params, rows, maxLen int) (*Decoder, error) {
	cfg := params.Config.Normalized()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rows <= 0 {
		return nil, fmt.Errorf("decoder: %d rows", rows)
	}
	if maxLen <= 0 || maxLen > cfg.MaxPositionEmbeddings {
		maxLen = cfg.MaxPositionEmbeddings
	}
	if lim := cfg.SlidingWindowLimit(); lim > 0 && maxLen > lim {
		maxLen = lim
	}
	d := &Decoder{cfg: cfg, p: params, maxLen: maxLen, rope: llama.NewRopeTable(cfg, 0), n: make([]int, rows), out: make([][]float32, rows)}
	d.kc = make([][][]float32, rows)
	d.vc = make([][][]float32, rows)
	for r := range rows {
		d.kc[r] = make([][]float32, cfg.NumHiddenLayers)
		d.vc[r] = make([][]float32, cfg.NumHiddenLayers)
	}
	return d, nil
}

// Rows is the number of sequences.
func (d *Decoder) Rows() int { return len(d.n) }

// MaxLen is the number of positions each row holds.
func (d *Decoder) MaxLen() int { return d.maxLen }

// Len is the number of positions row r holds.
func (d *Decoder) Len(r int) int { return d.n[r] }

// Reset forgets every position of every row.
func (d *Decoder) Reset() { clear(d.n) }

// Truncate forgets the positions of row r from n on.
func (d *Decoder) Truncate(r, n int) {
	if n < d.n[r] && n >= 0 {
		d.n[r] = n
	}
}

// Close lets go of the caches.
func (d *Decoder) Close() error {
	for r := range d.kc {
		clear(d.kc[r])
		clear(d.vc[r])
	}
	clear(d.n)
	return nil
}

// feedChunk bounds the rows of one pass (prompt prefill), over all rows.
const feedChunk = 256

// Feed appends tokens[r] to row r and returns next-token logits (see
// sample.Decoder).
func (d *Decoder) Feed(ctx context.Context, tokens [][]int32, want sample.Want) ([][]float32, error) {
	passes, err := sample.PlanFeed(tokens, d.n, d.maxLen, d.cfg.VocabSize, feedChunk)
	if err != nil {
		return nil, err
	}
	V := d.cfg.VocabSize
	res := make([][]float32, len(d.n))
	for r, toks := range tokens {
		if len(toks) == 0 {
			continue
		}
		n := V
		if want == sample.Every {
			n = len(toks) * V
		}
		if cap(d.out[r]) < n {
			d.out[r] = make([]float32, n)
		}
		res[r] = d.out[r][:n]
	}
	done := make([]int, len(tokens)) // tokens of each row fed so far
	for _, take := range passes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var parts []part
		for r, k := range take {
			if k > 0 {
				parts = append(parts, part{row: r, toks: tokens[r][done[r] : done[r]+k], first: done[r], last: done[r]+k == len(tokens[r])})
				done[r] += k
			}
		}
		if err := d.forward(parts, want, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// part is one row's share of a pass: toks, which start at index first of
// what the row is fed in this call.
type part struct {
	row   int
	toks  []int32
	first int
	last  bool // the row's fed tokens end here
}

func (d *Decoder) grow(rows int) {
	if rows <= d.cap {
		return
	}
	c := d.cfg
	qDim, kvDim := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	d.cap = rows
	d.x = make([]float32, rows*c.HiddenSize)
	d.h = make([]float32, rows*c.HiddenSize)
	d.q = make([]float32, rows*qDim)
	d.k = make([]float32, rows*kvDim)
	d.v = make([]float32, rows*kvDim)
	d.att = make([]float32, rows*qDim)
	d.gate = make([]float32, rows*c.IntermediateSize)
	d.up = make([]float32, rows*c.IntermediateSize)
	d.a = make([]float32, rows*c.IntermediateSize)
	d.pos = make([]int32, rows)
	d.hl = make([]float32, rows*c.HiddenSize)
}

// reserve grows row r's caches to hold n positions.
func (d *Decoder) reserve(r, n int) {
	kvDim := d.cfg.NumKeyValueHeads * d.cfg.HeadDim
	for li := range d.kc[r] {
		if len(d.kc[r][li]) >= n*kvDim {
			continue
		}
		c := min(d.maxLen, max(n, 2*len(d.kc[r][li])/kvDim, 64))
		k, v := make([]float32, c*kvDim), make([]float32, c*kvDim)
		copy(k, d.kc[r][li][:d.n[r]*kvDim])
		copy(v, d.vc[r][li][:d.n[r]*kvDim])
		d.kc[r][li], d.vc[r][li] = k, v
	}
}

// forward runs the parts' tokens through every layer as one set of rows,
// appends their keys and values to their rows' caches and writes the
// logits want asks for into res.
func (d *Decoder) forward(parts []part, want sample.Want, res [][]float32) error {
	c := d.cfg
	N := 0
	for _, p := range parts {
		N += len(p.toks)
	}
	d.grow(N)
	D, F := c.HiddenSize, c.IntermediateSize
	qDim, kvDim := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	x := d.x[:N*D]
	emb := d.p.Embed.Data
	pos := d.pos[:N]
	i := 0
	for _, p := range parts {
		d.reserve(p.row, d.n[p.row]+len(p.toks))
		for j, t := range p.toks {
			copy(x[i*D:i*D+D], emb[int(t)*D:int(t)*D+D])
			pos[i] = int32(d.n[p.row] + j)
			i++
		}
	}
	if err := d.rope.Check(pos); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	h := d.h[:N*D]
	q, k, v := d.q[:N*qDim], d.k[:N*kvDim], d.v[:N*kvDim]
	att := d.att[:N*qDim]
	gate, up, a := d.gate[:N*F], d.up[:N*F], d.a[:N*F]
	for li := range d.p.Layers {
		lp := &d.p.Layers[li]
		rmsNorm(h, x, lp.InputNorm.Data, N, D, c.RMSNormEps)
		linear(q, h, N, lp.Q, lp.QBias, false)
		linear(k, h, N, lp.K, lp.KBias, false)
		linear(v, h, N, lp.V, lp.VBias, false)
		for i := 0; i < N; i++ {
			d.ropeRow(q[i*qDim:(i+1)*qDim], c.NumAttentionHeads, int(pos[i]))
			d.ropeRow(k[i*kvDim:(i+1)*kvDim], c.NumKeyValueHeads, int(pos[i]))
		}
		i0 := 0
		for _, p := range parts {
			n0 := d.n[p.row]
			copy(d.kc[p.row][li][n0*kvDim:], k[i0*kvDim:(i0+len(p.toks))*kvDim])
			copy(d.vc[p.row][li][n0*kvDim:], v[i0*kvDim:(i0+len(p.toks))*kvDim])
			i0 += len(p.toks)
		}
		d.attention(att, q, li, parts)
		linear(x, att, N, lp.O, lp.OBias, true)
		rmsNorm(h, x, lp.PostAttentionNorm.Data, N, D, c.RMSNormEps)
		linear(gate, h, N, lp.Gate, lp.GateBias, false)
		linear(up, h, N, lp.Up, lp.UpBias, false)
		kernels.SwiGLU(a, gate, up)
		linear(x, a, N, lp.Down, lp.DownBias, true)
	}
	i0 := 0
	for _, p := range parts {
		V := c.VocabSize
		switch {
		case want == sample.Every:
			d.logits(x[i0*D:], len(p.toks), res[p.row][p.first*V:(p.first+len(p.toks))*V])
		case p.last:
			d.logits(x[(i0+len(p.toks)-1)*D:], 1, res[p.row])
		}
		d.n[p.row] += len(p.toks)
		i0 += len(p.toks)
	}
	return nil
}

// logits computes the LM head's output for the first n rows of x into
// dst (n·vocab_size values).
func (d *Decoder) logits(x []float32, n int, dst []float32) {
	c := d.cfg
	D := c.HiddenSize
	head := d.p.LMHead
	if head == nil {
		head = d.p.Embed
	}
	hl := d.hl[:n*D]
	rmsNorm(hl, x, d.p.Norm.Data, n, D, c.RMSNormEps)
	kernels.Sgemm(false, true, n, c.VocabSize, D, 1, hl, D, head.Data, D, 0, dst, c.VocabSize)
}

// ropeRow rotates the heads of one row at position pos (HF's rotate_half).
func (d *Decoder) ropeRow(row []float32, heads, pos int) {
	half := d.rope.Half
	cs := d.rope.Cos[pos*half : pos*half+half]
	sn := d.rope.Sin[pos*half : pos*half+half]
	for hh := 0; hh < heads; hh++ {
		lo := row[hh*2*half : hh*2*half+half]
		hi := row[hh*2*half+half : hh*2*half+2*half]
		for i := range lo {
			a, b := lo[i], hi[i]
			lo[i] = a*cs[i] + (-b)*sn[i]
			hi[i] = b*cs[i] + a*sn[i]
		}
	}
}

// attention computes the attention output of the parts' new rows over
// their rows' cached keys and values of layer li (which already hold the
// new positions).
func (d *Decoder) attention(out, q []float32, li int, parts []part) {
	c := d.cfg
	H, hd := c.NumAttentionHeads, c.HeadDim
	qDim, kvDim := H*hd, c.NumKeyValueHeads*hd
	group := H / c.NumKeyValueHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	offs := make([]int, len(parts)) // each part's first row in q and out
	for i := 1; i < len(parts); i++ {
		offs[i] = offs[i-1] + len(parts[i-1].toks)
	}
	for len(d.scores) < len(parts)*H {
		d.scores = append(d.scores, nil)
	}
	kernels.ParallelFor(len(parts)*H, func(_, item int) {
		pi, h := item/H, item%H
		p := parts[pi]
		N, n0 := len(p.toks), d.n[p.row]
		total := n0 + N
		kvh := h / group
		if cap(d.scores[item]) < N*total {
			d.scores[item] = make([]float32, N*total)
		}
		s := d.scores[item][:N*total]
		kc, vc := d.kc[p.row][li], d.vc[p.row][li]
		qs, os := q[offs[pi]*qDim:], out[offs[pi]*qDim:]
		kernels.SgemmSerial(false, true, N, total, hd, scale, qs[h*hd:], qDim, kc[kvh*hd:], kvDim, 0, s, total)
		for i := 0; i < N; i++ {
			row := s[i*total : (i+1)*total]
			valid := row[:n0+i+1]
			clear(row[n0+i+1:])
			m := kernels.Max(valid)
			sum := kernels.ExpSum(valid, valid, 1, -m)
			inv := float32(1 / sum)
			for j := range valid {
				valid[j] *= inv
			}
		}
		kernels.SgemmSerial(false, false, N, hd, total, 1, s, total, vc[kvh*hd:], kvDim, 0, os[h*hd:], qDim)
	})
}

func rmsNorm(y, x, w []float32, n, d int, eps float64) {
	for r := 0; r < n; r++ {
		xr := x[r*d : r*d+d]
		var ss float64
		for _, v := range xr {
			ss += float64(v) * float64(v)
		}
		rs := float32(1 / math.Sqrt(ss/float64(d)+eps))
		yr := y[r*d : r*d+d]
		for i, v := range xr {
			yr[i] = w[i] * (v * rs)
		}
	}
}

// linear sets (or with accumulate adds) y = x·Wᵀ + bias for n rows.
func linear(y, x []float32, n int, w, bias *llama.Tensor, accumulate bool) {
	out, in := w.Shape[0], w.Shape[1]
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	kernels.Sgemm(false, true, n, out, in, 1, x, in, w.Data, in, beta, y, out)
	if bias != nil {
		for r := 0; r < n; r++ {
			yr := y[r*out : r*out+out]
			for i, b := range bias.Data {
				yr[i] += b
			}
		}
	}
}
