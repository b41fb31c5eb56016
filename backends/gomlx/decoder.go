package gomlx

import (
	"context"
	"errors"
	"fmt"
	"math/bits"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/sample"
)

// Decoding keeps a key/value cache on device 0: per layer, keys and values
// [rows, capacity, kv_heads, head_dim] in the compute dtype. The pure-Go
// engine has no DynamicUpdateSlice, so a feed writes its new positions
// with a Gather of the new keys and a Where over the cache (exact: every
// element is either kept or copied), and attends over the whole capacity
// with a mask (key j is visible from position p when j ≤ p). Token counts
// per pass are padded to a power of two and the capacity doubles as rows
// grow, so a handful of compiled graphs serve every length.

var _ sample.Decoder = (*Decoder)(nil)

// Decoder is the GoMLX engine's sample.Decoder over a Model's weights (as
// they are at each Feed).
type Decoder struct {
	m      *Model
	own    bool // Close closes m too
	maxLen int
	cap    int               // positions the device caches hold
	k, v   []*tensors.Tensor // per layer [rows, cap, KV, Dh]
	n      []int             // positions each row holds
	execs  [2]*Exec          // by sample.Want
	grow   *Exec
	closed bool
}

// decodeChunk bounds the tokens one pass feeds, over all rows.
const decodeChunk = 256

// minDecodeCap is the smallest cache capacity.
const minDecodeCap = 64

// NewDecoder returns a decoder over the model's weights holding rows
// sequences of up to maxLen positions each (at most
// max_position_embeddings; 0 means that limit). Closing the decoder
// releases its caches, not the model.
func (m *Model) NewDecoder(rows, maxLen int) (*Decoder, error) {
	if rows <= 0 {
		return nil, fmt.Errorf("gomlx: decoder of %d rows", rows)
	}
	if m.adapter != nil {
		return nil, errLoRADecoder
	}
	if maxLen <= 0 || maxLen > m.cfg.MaxPositionEmbeddings {
		maxLen = m.cfg.MaxPositionEmbeddings
	}
	if lim := m.cfg.SlidingWindowLimit(); lim > 0 && maxLen > lim {
		maxLen = lim
	}
	return &Decoder{m: m, maxLen: maxLen, n: make([]int, rows)}, nil
}

// DecoderFactory returns the engine's sample.DecoderFactory: each decoder
// places params on the engine opts chooses and releases it on Close.
func DecoderFactory(opts Options) sample.DecoderFactory {
	return func(params *llama.Params, rows, maxLen int) (sample.Decoder, error) {
		m, err := New(params, opts)
		if err != nil {
			return nil, err
		}
		d, err := m.NewDecoder(rows, maxLen)
		if err != nil {
			m.Close()
			return nil, err
		}
		d.own = true
		return d, nil
	}
}

// Rows is the number of sequences.
func (d *Decoder) Rows() int { return len(d.n) }

// MaxLen is the number of positions each row holds.
func (d *Decoder) MaxLen() int { return d.maxLen }

// Len is the number of positions row r holds.
func (d *Decoder) Len(r int) int { return d.n[r] }

// Truncate forgets the positions of row r from n on (the cache keeps
// their values, masked until overwritten).
func (d *Decoder) Truncate(r, n int) {
	if n < d.n[r] && n >= 0 {
		d.n[r] = n
	}
}

// Reset empties every row.
func (d *Decoder) Reset() { clear(d.n) }

// Close releases the caches (and the model, for DecoderFactory's decoders).
func (d *Decoder) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	d.m.mu.Lock()
	err := try(func() error {
		finalize(append(d.k, d.v...))
		for _, e := range append(d.execs[:], d.grow) {
			if e != nil {
				e.Finalize()
			}
		}
		return nil
	})
	d.m.mu.Unlock()
	d.k, d.v = nil, nil
	if d.own {
		return errors.Join(err, d.m.Close())
	}
	return err
}

// Feed appends tokens[r] to row r and returns next-token logits (see
// sample.Decoder).
func (d *Decoder) Feed(ctx context.Context, tokens [][]int32, want sample.Want) ([][]float32, error) {
	if d.closed {
		return nil, errors.New("gomlx: decoder is closed")
	}
	passes, err := sample.PlanFeed(tokens, d.n, d.maxLen, d.m.cfg.VocabSize, decodeChunk)
	if err != nil {
		return nil, fmt.Errorf("gomlx: %w", err)
	}
	V := d.m.cfg.VocabSize
	res := make([][]float32, len(d.n))
	for r, toks := range tokens {
		switch {
		case len(toks) == 0:
		case want == sample.Every:
			res[r] = make([]float32, len(toks)*V)
		default:
			res[r] = make([]float32, V)
		}
	}
	done := make([]int, len(d.n)) // tokens of each row fed so far
	for _, take := range passes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := d.pass(tokens, done, take, want, res); err != nil {
			return nil, err
		}
		for r, k := range take {
			done[r] += k
		}
	}
	return res, nil
}

// pass feeds take[r] tokens of each row from done[r] on in one execution.
func (d *Decoder) pass(tokens [][]int32, done, take []int, want sample.Want, res [][]float32) error {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	R, Dh, V := len(d.n), m.cfg.HeadDim, m.cfg.VocabSize
	nb, need := 1, 0
	for r, k := range take {
		nb = max(nb, k)
		need = max(need, d.n[r]+k)
	}
	nb = 1 << bits.Len(uint(nb-1)) // a power of two
	if err := d.reserve(need); err != nil {
		return err
	}
	toks := make([]int32, R*nb)
	pos := make([]int32, R*nb)
	pos0 := make([]int32, R)
	count := make([]int32, R)
	last := make([]int32, R)
	for r, k := range take {
		pos0[r], count[r], last[r] = int32(d.n[r]), int32(k), int32(max(k-1, 0))
		for i := range k {
			toks[r*nb+i] = tokens[r][done[r]+i]
			pos[r*nb+i] = int32(d.n[r] + i)
		}
	}
	cos, sin, err := m.ropeInputs(pos)
	if err != nil {
		return fmt.Errorf("gomlx: decoder: %w", err)
	}
	e, err := d.exec(want)
	if err != nil {
		return err
	}
	L := m.cfg.NumHiddenLayers
	return try(func() error {
		args, err := m.paramArgs()
		if err != nil {
			return err
		}
		for _, t := range append(append([]*tensors.Tensor(nil), d.k...), d.v...) {
			dt, err := DonateTensorBuffer(t, m.backend, 0)
			if err != nil {
				return err
			}
			args = append(args, dt)
		}
		args = append(args,
			tensors.FromFlatDataAndDimensions(toks, R, nb),
			tensors.FromFlatDataAndDimensions(pos0, R),
			tensors.FromFlatDataAndDimensions(count, R),
			tensors.FromFlatDataAndDimensions(last, R),
			tensors.FromFlatDataAndDimensions(cos, R, nb, Dh),
			tensors.FromFlatDataAndDimensions(sin, R, nb, Dh))
		out, err := e.Exec(args...)
		if err != nil {
			return err
		}
		d.k, d.v = out[:L], out[L:2*L]
		logits := out[2*L]
		defer logits.FinalizeAll()
		flat, err := tensors.CopyFlatData[float32](logits)
		if err != nil {
			return err
		}
		for r, k := range take {
			if k == 0 {
				continue
			}
			if want == sample.Every { // logits [R, nb, V]
				copy(res[r][done[r]*V:(done[r]+k)*V], flat[r*nb*V:(r*nb+k)*V])
			} else if done[r]+k == len(tokens[r]) { // logits [R, V]
				copy(res[r], flat[r*V:(r+1)*V])
			}
			d.n[r] += k
		}
		return nil
	})
}

// reserve grows the caches to hold need positions (doubling, at most
// maxLen). Called with m.mu held.
func (d *Decoder) reserve(need int) error {
	if need <= d.cap && d.k != nil {
		return nil
	}
	c := max(d.cap, minDecodeCap)
	for c < need {
		c *= 2
	}
	c = min(c, d.maxLen)
	m := d.m
	R, KV, Dh := len(d.n), m.cfg.NumKeyValueHeads, m.cfg.HeadDim
	if d.k == nil {
		for range m.cfg.NumHiddenLayers {
			d.k = append(d.k, tensors.FromShape(shapes.Make(m.cd, R, c, KV, Dh)))
			d.v = append(d.v, tensors.FromShape(shapes.Make(m.cd, R, c, KV, Dh)))
		}
		d.cap = c
		return nil
	}
	return try(func() error {
		if d.grow == nil {
			e, err := m.exec("decoder_grow", false, func(g *Graph, in []*Node) []*Node {
				extra := in[len(in)-1].Shape().Dimensions[0]
				out := make([]*Node, len(in)-1)
				for i, x := range in[:len(in)-1] {
					dims := x.Shape().Dimensions
					out[i] = Concatenate([]*Node{x, Zeros(g, shapes.Make(x.DType(), dims[0], extra, dims[2], dims[3]))}, 1)
				}
				return out
			})
			if err != nil {
				return err
			}
			d.grow = e.SetMaxCache(-1)
		}
		var args []any
		for _, t := range append(append([]*tensors.Tensor(nil), d.k...), d.v...) {
			args = append(args, t)
		}
		args = append(args, tensors.FromShape(shapes.Make(dtypes.Int32, c-d.cap)))
		out, err := d.grow.Exec(args...)
		if err != nil {
			return err
		}
		finalize(append(d.k, d.v...))
		L := m.cfg.NumHiddenLayers
		d.k, d.v, d.cap = out[:L], out[L:], c
		return nil
	})
}

// exec returns the decoding graph for want. Its inputs: the weights, the
// caches (keys of every layer, then values), tokens [R, nb], each row's
// first position and token count [R], the index of each row's last token
// [R], and RoPE cos/sin [R, nb, head_dim]. Its outputs: the new caches and
// the logits ([R, V] after each row's last token, or [R, nb, V]).
func (d *Decoder) exec(want sample.Want) (*Exec, error) {
	if e := d.execs[want]; e != nil {
		return e, nil
	}
	m := d.m
	P, L := len(m.specs), m.cfg.NumHiddenLayers
	var e *Exec
	err := try(func() error {
		var err error
		e, err = m.exec("decode", false, func(g *Graph, in []*Node) []*Node {
			mg := m.graphOf(in[:P], nil, nil)
			kc, vc := in[P:P+L], in[P+L:P+2*L]
			x := in[P+2*L:]
			toks, pos0, count, last, cos, sin := x[0], x[1], x[2], x[3], x[4], x[5]
			R, nb := toks.Shape().Dimensions[0], toks.Shape().Dimensions[1]
			C := kc[0].Shape().Dimensions[1]
			write, src := cacheWrite(pos0, count, nb, C)
			// Position pos0+i sees keys j ≤ pos0+i.
			qpos := Add(BroadcastToDims(Reshape(pos0, R, 1), R, nb), Iota(g, shapes.Make(dtypes.Int32, R, nb), 1))
			kpos := Iota(g, shapes.Make(dtypes.Int32, R, nb, C), 2)
			allowed := LessOrEqual(kpos, BroadcastToDims(Reshape(qpos, R, nb, 1), R, nb, C))
			newK, newV := make([]*Node, L), make([]*Node, L)
			h := mg.layers(toks, func(l int, x *Node, p string) *Node {
				q, k, v := mg.qkv(x, p, cos, sin)
				newK[l] = writeCache(kc[l], k, write, src)
				newV[l] = writeCache(vc[l], v, write, src)
				return mg.linear(mg.attend(q, newK[l], newV[l], allowed), p+"o_proj")
			})
			if want == sample.Last {
				rows := Iota(g, shapes.Make(dtypes.Int32, R, 1), 0)
				h = Gather(h, Concatenate([]*Node{rows, Reshape(last, R, 1)}, 1)) // [R, D]
			}
			logits := mg.logits(mg.rmsNorm(h, "model.norm.weight"))
			return append(append(newK, newV...), logits)
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	d.execs[want] = e.SetMaxCache(-1)
	return e, nil
}

// cacheWrite says, for each row r and cache position j of a capacity-C
// cache, whether j receives a fed token (pos0[r] ≤ j < pos0[r]+count[r]):
// write [R, C] bool, and from which of the nb fed positions: src [R, C, 2]
// gather indices (r, j−pos0[r] clamped into range).
func cacheWrite(pos0, count *Node, nb, C int) (write, src *Node) {
	g := pos0.Graph()
	R := pos0.Shape().Dimensions[0]
	j := Iota(g, shapes.Make(dtypes.Int32, R, C), 1)
	off := Sub(j, BroadcastToDims(Reshape(pos0, R, 1), R, C))
	write = LogicalAnd(GreaterOrEqual(off, ZerosLike(off)), LessThan(off, BroadcastToDims(Reshape(count, R, 1), R, C)))
	idx := MinScalar(MaxScalar(off, 0), nb-1)
	rows := Iota(g, shapes.Make(dtypes.Int32, R, C, 1), 0)
	return write, Concatenate([]*Node{rows, Reshape(idx, R, C, 1)}, 2)
}

// writeCache returns cache [R, C, KV, Dh] with the new entries [R, nb, KV,
// Dh] written where write says.
func writeCache(cache, fresh, write, src *Node) *Node {
	moved := Gather(ConvertDType(fresh, cache.DType()), src) // [R, C, KV, Dh]
	dims := cache.Shape().Dimensions
	mask := BroadcastToDims(Reshape(write, dims[0], dims[1], 1, 1), dims...)
	return Where(mask, moved, cache)
}
