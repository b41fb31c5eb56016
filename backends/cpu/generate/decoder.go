// Package generate samples text from a Llama-family model on the CPU: a
// decoder with a key/value cache over backends/model/llama's parameters, greedy
// and temperature/top-p sampling, and prompts rendered with a chat format
// (backends/tokens/chat) that stop at the format's end of turn. marin generate,
// marin chat and the eval/exact_match op use it.
//
// The decoder computes what llama.Model.Logits computes for one sequence
// (same RMSNorm, RoPE tables, grouped-query attention and SwiGLU), but keeps
// every layer's keys and values so each new token costs one row of work
// instead of a pass over the whole sequence. Its logits agree with
// llama.Model.Logits to float32 rounding (the sums run in another order).
package generate

import (
	"fmt"
	"math"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
)

// Decoder runs a model one sequence at a time with a key/value cache. It is
// not safe for concurrent use.
type Decoder struct {
	cfg    llama.Config // normalized
	p      *llama.Params
	maxLen int
	half   int
	cos    []float32
	sin    []float32
	kc, vc [][]float32 // per layer: [maxLen, kvDim]
	n      int         // positions in the cache

	// scratch, grown to the largest chunk fed
	rows               int
	x, h, q, k, v, att []float32
	gate, up, a        []float32
	scores             [][]float32
	logits             []float32
}

// NewDecoder returns a decoder for params holding up to maxLen positions
// (at most max_position_embeddings; 0 means that limit).
func NewDecoder(params *llama.Params, maxLen int) (*Decoder, error) {
	cfg := params.Config.Normalized()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if maxLen <= 0 || maxLen > cfg.MaxPositionEmbeddings {
		maxLen = cfg.MaxPositionEmbeddings
	}
	if lim := cfg.SlidingWindowLimit(); lim > 0 && maxLen > lim {
		maxLen = lim
	}
	d := &Decoder{cfg: cfg, p: params, maxLen: maxLen, half: cfg.HeadDim / 2}
	d.cos, d.sin = llama.RopeCosSin(cfg, maxLen)
	kvDim := cfg.NumKeyValueHeads * cfg.HeadDim
	d.kc = make([][]float32, cfg.NumHiddenLayers)
	d.vc = make([][]float32, cfg.NumHiddenLayers)
	for i := range d.kc {
		d.kc[i] = make([]float32, maxLen*kvDim)
		d.vc[i] = make([]float32, maxLen*kvDim)
	}
	d.logits = make([]float32, cfg.VocabSize)
	return d, nil
}

// MaxLen is the number of positions the cache holds.
func (d *Decoder) MaxLen() int { return d.maxLen }

// Len is the number of positions fed so far.
func (d *Decoder) Len() int { return d.n }

// Reset forgets every position.
func (d *Decoder) Reset() { d.n = 0 }

// Truncate forgets the positions from n on, keeping the first n (to
// continue a conversation whose rendering shares a prefix with what was
// fed).
func (d *Decoder) Truncate(n int) {
	if n < d.n && n >= 0 {
		d.n = n
	}
}

func (d *Decoder) grow(rows int) {
	if rows <= d.rows {
		return
	}
	c := d.cfg
	qDim, kvDim := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	d.rows = rows
	d.x = make([]float32, rows*c.HiddenSize)
	d.h = make([]float32, rows*c.HiddenSize)
	d.q = make([]float32, rows*qDim)
	d.k = make([]float32, rows*kvDim)
	d.v = make([]float32, rows*kvDim)
	d.att = make([]float32, rows*qDim)
	d.gate = make([]float32, rows*c.IntermediateSize)
	d.up = make([]float32, rows*c.IntermediateSize)
	d.a = make([]float32, rows*c.IntermediateSize)
	d.scores = make([][]float32, c.NumAttentionHeads)
}

// feedChunk bounds the rows one pass processes (prompt prefill).
const feedChunk = 256

// Feed appends tokens to the sequence and returns the next-token logits
// after the last of them (VocabSize values, valid until the next call).
func (d *Decoder) Feed(tokens []int32) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("decoder: no tokens to feed")
	}
	if d.n+len(tokens) > d.maxLen {
		return nil, fmt.Errorf("decoder: %d positions would exceed the cache's %d (max_position_embeddings)", d.n+len(tokens), d.maxLen)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= d.cfg.VocabSize {
			return nil, fmt.Errorf("decoder: token %d at %d is outside the vocabulary [0, %d)", t, i, d.cfg.VocabSize)
		}
	}
	for len(tokens) > 0 {
		n := min(len(tokens), feedChunk)
		d.forward(tokens[:n], len(tokens) == n)
		tokens = tokens[n:]
	}
	return d.logits, nil
}

// forward runs the rows of one chunk through every layer; with last set it
// computes the logits of the final row.
func (d *Decoder) forward(tokens []int32, last bool) {
	c := d.cfg
	N := len(tokens)
	d.grow(N)
	D, F := c.HiddenSize, c.IntermediateSize
	qDim, kvDim := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	x := d.x[:N*D]
	emb := d.p.Embed.Data
	for i, t := range tokens {
		copy(x[i*D:i*D+D], emb[int(t)*D:int(t)*D+D])
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
			pos := d.n + i
			d.rope(q[i*qDim:(i+1)*qDim], c.NumAttentionHeads, pos)
			d.rope(k[i*kvDim:(i+1)*kvDim], c.NumKeyValueHeads, pos)
		}
		copy(d.kc[li][d.n*kvDim:], k)
		copy(d.vc[li][d.n*kvDim:], v)
		d.attention(att, q, li, N)
		linear(x, att, N, lp.O, lp.OBias, true)
		rmsNorm(h, x, lp.PostAttentionNorm.Data, N, D, c.RMSNormEps)
		linear(gate, h, N, lp.Gate, lp.GateBias, false)
		linear(up, h, N, lp.Up, lp.UpBias, false)
		kernels.SwiGLU(a, gate, up)
		linear(x, a, N, lp.Down, lp.DownBias, true)
	}
	d.n += N
	if !last {
		return
	}
	xl := x[(N-1)*D : N*D]
	hl := h[:D]
	rmsNorm(hl, xl, d.p.Norm.Data, 1, D, c.RMSNormEps)
	head := d.p.LMHead
	if head == nil {
		head = d.p.Embed
	}
	kernels.Sgemm(false, true, 1, c.VocabSize, D, 1, hl, D, head.Data, D, 0, d.logits, c.VocabSize)
}

// rope rotates the heads of one row at position pos (HF's rotate_half).
func (d *Decoder) rope(row []float32, heads, pos int) {
	half := d.half
	cs := d.cos[pos*half : pos*half+half]
	sn := d.sin[pos*half : pos*half+half]
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

// attention computes the attention output of the N new rows (positions
// d.n … d.n+N−1) over the cached keys and values of layer li.
func (d *Decoder) attention(out, q []float32, li, N int) {
	c := d.cfg
	H, hd := c.NumAttentionHeads, c.HeadDim
	qDim, kvDim := H*hd, c.NumKeyValueHeads*hd
	group := H / c.NumKeyValueHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	total := d.n + N
	kc, vc := d.kc[li], d.vc[li]
	kernels.ParallelFor(H, func(_, h int) {
		kvh := h / group
		if cap(d.scores[h]) < N*total {
			d.scores[h] = make([]float32, N*total)
		}
		s := d.scores[h][:N*total]
		kernels.SgemmSerial(false, true, N, total, hd, scale, q[h*hd:], qDim, kc[kvh*hd:], kvDim, 0, s, total)
		for i := 0; i < N; i++ {
			row := s[i*total : (i+1)*total]
			valid := row[:d.n+i+1]
			clear(row[d.n+i+1:])
			m := kernels.Max(valid)
			sum := kernels.ExpSum(valid, valid, 1, -m)
			inv := float32(1 / sum)
			for j := range valid {
				valid[j] *= inv
			}
		}
		kernels.SgemmSerial(false, false, N, hd, total, 1, s, total, vc[kvh*hd:], kvDim, 0, out[h*hd:], qDim)
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
