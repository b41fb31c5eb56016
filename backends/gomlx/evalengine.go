package gomlx

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/backends/model/llama"
)

// The eval/harness engine on GoMLX (backends/eval.Engine).
//
// Scoring packs each request into one row: the context, then every
// continuation but its last token, each continuation a segment that sees
// the context (segment 0) and itself, with RoPE positions restarting after
// the context, so a request's continuations share the context's forward
// pass as they do in the cpu engine's KV cache. The graph returns, for the
// positions where continuation tokens are predicted, log p(token) and
// whether it is the argmax. Rows are padded to length and count buckets so
// few graphs are compiled.
//
// Generation recomputes the padded sequence for every new token, as
// Model.Generate does: the pure-Go engine has no DynamicUpdateSlice for a
// key/value cache.

// EvalMaxLength caps the positions a sequence may hold, as the cpu engine
// does (Marin evaluates with max_model_len 4096).
const EvalMaxLength = 4096

type evalEngine struct {
	m      *Model
	maxLen int
	scoreX *Exec // compiled once, run for every shape bucket
}

var _ eval.EngineFactory = NewEvalEngine

// NewEvalEngine places params on the engine the resources name (the
// pure-Go engine on cpu, XLA on accelerators).
func NewEvalEngine(params *llama.Params, resources json.RawMessage) (eval.Engine, error) {
	var r Resources
	if len(resources) > 0 && string(resources) != "null" {
		if err := json.Unmarshal(resources, &r); err != nil {
			return nil, fmt.Errorf("gomlx: resources: %w", err)
		}
	}
	opts, err := r.Options()
	if err != nil {
		return nil, err
	}
	m, err := New(params, opts)
	if err != nil {
		return nil, err
	}
	return &evalEngine{m: m, maxLen: min(m.cfg.MaxPositionEmbeddings, EvalMaxLength)}, nil
}

func (e *evalEngine) MaxLength() int { return e.maxLen }

// Close releases the model's device memory.
func (e *evalEngine) Close() error { return e.m.Close() }

// bucket rounds n up to a multiple of step, and above 4·step to a power
// of two, so shapes (and compiled graphs) stay few.
func bucket(n, step int) int {
	if n <= 4*step {
		return (n + step - 1) / step * step
	}
	b := 4 * step
	for b < n {
		b *= 2
	}
	return b
}

type scoreRow struct {
	req    int
	tokens []int32
	segs   []int32
	pos    []int32
	qpos   []int32
	qtgt   []int32
	qref   [][2]int // (continuation, token) of each query
}

func (e *evalEngine) layout(i int, r eval.ScoreRequest) (scoreRow, error) {
	row := scoreRow{req: i}
	C := len(r.Context)
	if C == 0 {
		return row, fmt.Errorf("score: request %d has an empty context", i)
	}
	for k, t := range r.Context {
		row.tokens = append(row.tokens, t)
		row.segs = append(row.segs, 0)
		row.pos = append(row.pos, int32(k))
	}
	for j, c := range r.Continuations {
		if len(c) == 0 {
			return row, fmt.Errorf("score: request %d continuation %d is empty", i, j)
		}
		if C+len(c)-1 > e.maxLen {
			return row, fmt.Errorf("score: request %d: %d context and %d continuation tokens exceed %d positions", i, C, len(c), e.maxLen)
		}
		start := len(row.tokens)
		for k := 0; k < len(c)-1; k++ {
			row.tokens = append(row.tokens, c[k])
			row.segs = append(row.segs, int32(j+1))
			row.pos = append(row.pos, int32(C+k))
		}
		for k, t := range c {
			at := C - 1
			if k > 0 {
				at = start + k - 1
			}
			row.qpos = append(row.qpos, int32(at))
			row.qtgt = append(row.qtgt, t)
			row.qref = append(row.qref, [2]int{j, k})
		}
	}
	for _, t := range row.tokens {
		if t < 0 || int(t) >= e.m.cfg.VocabSize {
			return row, fmt.Errorf("score: request %d: token %d is outside the vocabulary", i, t)
		}
	}
	return row, nil
}

// Score implements eval.Engine.
func (e *evalEngine) Score(ctx context.Context, reqs []eval.ScoreRequest) ([]eval.ScoreResult, error) {
	out := make([]eval.ScoreResult, len(reqs))
	var rows []scoreRow
	for i, r := range reqs {
		row, err := e.layout(i, r)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
		out[i].LogProbs = make([][]float64, len(r.Continuations))
		out[i].Greedy = make([][]bool, len(r.Continuations))
		for j, c := range r.Continuations {
			out[i].LogProbs[j] = make([]float64, len(c))
			out[i].Greedy[j] = make([]bool, len(c))
		}
	}
	// Similar lengths together; bounded tokens per call.
	sort.SliceStable(rows, func(a, b int) bool { return len(rows[a].tokens) > len(rows[b].tokens) })
	const tokensPerCall = 8192
	for start := 0; start < len(rows); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		S := bucket(len(rows[start].tokens), 64)
		end := start + 1
		for end < len(rows) && (end-start+1)*S <= tokensPerCall {
			end++
		}
		if err := e.scoreRows(ctx, rows[start:end], out); err != nil {
			return nil, err
		}
		start = end
	}
	return out, nil
}

func (e *evalEngine) scoreRows(ctx context.Context, rows []scoreRow, out []eval.ScoreResult) error {
	m := e.m
	S, Q := 0, 0
	for _, r := range rows {
		S = max(S, len(r.tokens))
		Q = max(Q, len(r.qpos))
	}
	S, Q = bucket(S, 64), bucket(Q, 8)
	B := 1
	for B < len(rows) {
		B *= 2
	}
	tokens := make([]int32, B*S)
	segs := make([]int32, B*S)
	pos := make([]int32, B*S)
	qpos := make([]int32, B*Q)
	qtgt := make([]int32, B*Q)
	for i := range segs {
		segs[i] = -1
	}
	for b, r := range rows {
		copy(tokens[b*S:], r.tokens)
		copy(segs[b*S:], r.segs)
		copy(pos[b*S:], r.pos)
		copy(qpos[b*Q:], r.qpos)
		copy(qtgt[b*Q:], r.qtgt)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	cos, sin, err := m.ropeInputs(pos)
	if err != nil {
		return err
	}
	Dh := m.cfg.HeadDim
	P := len(m.specs)
	return try(func() error {
		if e.scoreX == nil {
			x, err := m.exec("eval_score", false, func(g *Graph, in []*Node) []*Node {
				mg := m.graphOf(in[:P])
				tok, seg, cs, sn, qp, qt := in[P], in[P+1], in[P+2], in[P+3], in[P+4], in[P+5]
				b := batchNodes{tokens: tok, segs: seg, cos: cs, sin: sn}
				h := mg.hiddenMasked(b, prefixMask(seg)) // [B, S, D]
				dims := qp.Shape().Dimensions
				bb, qq := dims[0], dims[1]
				rowsIdx := Iota(g, shapes.Make(dtypes.Int32, bb, qq, 1), 0)
				hq := Gather(h, Concatenate([]*Node{rowsIdx, Reshape(qp, bb, qq, 1)}, 2)) // [B, Q, D]
				logits := mg.logits(hq)                                                   // [B, Q, V] float32
				V := m.cfg.VocabSize
				mx := ReduceAndKeep(logits, ReduceMax, -1)
				lse := Add(Log(ReduceSum(Exp(Sub(logits, BroadcastToDims(mx, bb, qq, V))), -1)), Reshape(mx, bb, qq))
				qIdx := Iota(g, shapes.Make(dtypes.Int32, bb, qq, 1), 1)
				picked := Gather(logits, Concatenate([]*Node{rowsIdx, qIdx, Reshape(qt, bb, qq, 1)}, 2)) // [B, Q]
				arg := ArgMax(logits, -1, dtypes.Int32)
				return []*Node{Sub(picked, lse), ConvertDType(Equal(arg, qt), dtypes.Float32)}
			})
			if err != nil {
				return err
			}
			e.scoreX = x
		}
		args := append(m.paramArgs(),
			tensors.FromFlatDataAndDimensions(tokens, B, S),
			tensors.FromFlatDataAndDimensions(segs, B, S),
			tensors.FromFlatDataAndDimensions(cos, B, S, Dh),
			tensors.FromFlatDataAndDimensions(sin, B, S, Dh),
			tensors.FromFlatDataAndDimensions(qpos, B, Q),
			tensors.FromFlatDataAndDimensions(qtgt, B, Q))
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := e.scoreX.Exec(args...)
		if err != nil {
			return err
		}
		defer finalize(res)
		lp, err := tensors.CopyFlatData[float32](res[0])
		if err != nil {
			return err
		}
		gr, err := tensors.CopyFlatData[float32](res[1])
		if err != nil {
			return err
		}
		for b, r := range rows {
			for q, ref := range r.qref {
				out[r.req].LogProbs[ref[0]][ref[1]] = float64(lp[b*Q+q])
				out[r.req].Greedy[ref[0]][ref[1]] = gr[b*Q+q] == 1
			}
		}
		return nil
	})
}

// prefixMask is [B, Sq, Sk]: key k is visible from query q when k ≤ q and
// either both are in the same segment or k is in the shared context
// (segment 0) and q in a continuation. Padding (−1) attends to padding, so
// no row is empty.
func prefixMask(segs *Node) *Node {
	dims := segs.Shape().Dimensions
	B, S := dims[0], dims[1]
	g := segs.Graph()
	qi := Iota(g, shapes.Make(dtypes.Int32, S, S), 0)
	ki := Iota(g, shapes.Make(dtypes.Int32, S, S), 1)
	causal := BroadcastToDims(Reshape(GreaterOrEqual(qi, ki), 1, S, S), B, S, S)
	sq := BroadcastToDims(Reshape(segs, B, S, 1), B, S, S)
	sk := BroadcastToDims(Reshape(segs, B, 1, S), B, S, S)
	zero := ZerosLike(sk)
	shared := LogicalAnd(Equal(sk, zero), GreaterThan(sq, zero))
	return LogicalAnd(causal, LogicalOr(Equal(sq, sk), shared))
}

// hiddenMasked is hidden with an explicit attention mask.
func (m *modelGraph) hiddenMasked(b batchNodes, allowed *Node) *Node {
	c := m.cfg
	dims := b.tokens.Shape().Dimensions
	B, S := dims[0], dims[1]
	h := ConvertDType(Gather(m.params["model.embed_tokens.weight"], Reshape(b.tokens, B, S, 1)), m.cd)
	for l := range c.NumHiddenLayers {
		p := "model.layers." + itoa(l) + "."
		h = Add(h, m.attention(m.rmsNorm(h, p+"input_layernorm.weight"), p+"self_attn.", b, allowed))
		h = Add(h, m.mlp(m.rmsNorm(h, p+"post_attention_layernorm.weight"), p+"mlp."))
	}
	return m.rmsNorm(h, "model.norm.weight")
}

// Generate implements eval.Engine: greedy decoding, the whole (padded)
// sequence recomputed per token.
func (e *evalEngine) Generate(ctx context.Context, reqs []eval.GenerateRequest) ([][]int32, error) {
	out := make([][]int32, len(reqs))
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("generate: request %d has an empty prompt", i)
		}
		if len(r.Prompt)+r.MaxNew > e.maxLen {
			return nil, fmt.Errorf("generate: request %d: %d prompt tokens + %d new exceed %d positions", i, len(r.Prompt), r.MaxNew, e.maxLen)
		}
		seq := append([]int32(nil), r.Prompt...)
		var gen []int32
		for len(gen) < r.MaxNew {
			lg, err := e.m.NextLogits(ctx, seq)
			if err != nil {
				return nil, fmt.Errorf("generate: request %d: %w", i, err)
			}
			best := 0
			for j, v := range lg {
				if v > lg[best] || (math.IsNaN(float64(lg[best])) && !math.IsNaN(float64(v))) {
					best = j
				}
			}
			gen = append(gen, int32(best))
			seq = append(seq, int32(best))
			if r.Stop != nil && r.Stop(gen) {
				break
			}
		}
		out[i] = gen
	}
	return out, nil
}
