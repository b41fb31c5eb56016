// Package evalengine is the CPU engine behind eval/harness: the
// backends/eval Engine (scores of token continuations, greedy generation)
// on the pure-Go decoder.
//
// Scoring runs a request's context once through the key/value-cached
// decoder (backends/cpu/generate) and scores every continuation on top of
// that cache, so the continuations of one context share its forward pass:
// a continuation's first token is scored from the logits after the context
// and each further token costs one cached step. Long continuations
// (loglikelihood_rolling windows) instead go through the batched forward
// pass (backends/cpu/transformer), many rows at once, logits taken only
// where a continuation token is predicted. Generation feeds the prompt
// through the cache, then one token per step.
package evalengine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/marin-go/marin/backends/cpu/generate"
	"github.com/marin-go/marin/backends/cpu/transformer"
	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/backends/model/llama"
)

// DefaultMaxLength caps the positions the cache holds when the model allows
// more (Llama 3.1 declares 131072): Marin evaluates with max_model_len 4096.
const DefaultMaxLength = 4096

// longContinuation is the continuation length from which the batched
// forward pass is used instead of cached single steps.
const longContinuation = 24

var _ eval.EngineFactory = New

// Engine is the CPU eval engine. It is not safe for concurrent use.
type Engine struct {
	params *llama.Params
	dec    *generate.Decoder
	model  *transformer.Model
	maxLen int
	vocab  int
	base   []float32
}

// New returns the engine for params; resources are not used (the CPU
// engine uses every core).
func New(params *llama.Params, _ json.RawMessage) (eval.Engine, error) {
	cfg := params.Config.Normalized()
	maxLen := min(cfg.MaxPositionEmbeddings, DefaultMaxLength)
	dec, err := generate.NewDecoder(params, maxLen)
	if err != nil {
		return nil, err
	}
	return &Engine{params: params, dec: dec, maxLen: dec.MaxLen(), vocab: cfg.VocabSize, base: make([]float32, cfg.VocabSize)}, nil
}

// MaxLength is the positions one sequence may hold.
func (e *Engine) MaxLength() int { return e.maxLen }

// logSoftmaxAt returns log p(tok) under logits and whether tok is the
// argmax (the lowest id among equal maxima, as torch's argmax).
func logSoftmaxAt(logits []float32, tok int32) (float64, bool) {
	best := 0
	mx := logits[0]
	for i, v := range logits {
		if v > mx {
			mx, best = v, i
		}
	}
	var s float64
	m := float64(mx)
	for _, v := range logits {
		s += math.Exp(float64(v) - m)
	}
	return float64(logits[tok]) - m - math.Log(s), best == int(tok)
}

// Score implements eval.Engine.
func (e *Engine) Score(ctx context.Context, reqs []eval.ScoreRequest) ([]eval.ScoreResult, error) {
	out := make([]eval.ScoreResult, len(reqs))
	var long []longItem
	for i, r := range reqs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(r.Context) == 0 {
			return nil, fmt.Errorf("score: request %d has an empty context", i)
		}
		out[i].LogProbs = make([][]float64, len(r.Continuations))
		out[i].Greedy = make([][]bool, len(r.Continuations))
		var short []int
		for j, c := range r.Continuations {
			if len(c) == 0 {
				return nil, fmt.Errorf("score: request %d continuation %d is empty", i, j)
			}
			if len(r.Context)+len(c)-1 > e.maxLen {
				return nil, fmt.Errorf("score: request %d: %d context and %d continuation tokens exceed %d positions", i, len(r.Context), len(c), e.maxLen)
			}
			if len(c) >= longContinuation && len(r.Continuations) == 1 {
				long = append(long, longItem{req: i, cont: j})
			} else {
				short = append(short, j)
			}
		}
		if len(short) > 0 {
			if err := e.scoreCached(ctx, r, short, &out[i]); err != nil {
				return nil, fmt.Errorf("score: request %d: %w", i, err)
			}
		}
	}
	if len(long) > 0 {
		if err := e.scoreBatched(ctx, reqs, long, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scoreCached feeds the context once and each continuation on top of it.
func (e *Engine) scoreCached(ctx context.Context, r eval.ScoreRequest, which []int, res *eval.ScoreResult) error {
	e.dec.Reset()
	logits, err := e.dec.Feed(r.Context)
	if err != nil {
		return err
	}
	copy(e.base, logits)
	n0 := e.dec.Len()
	for _, j := range which {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := r.Continuations[j]
		lp := make([]float64, len(c))
		gr := make([]bool, len(c))
		if err := e.checkToken(c[0]); err != nil {
			return err
		}
		lp[0], gr[0] = logSoftmaxAt(e.base, c[0])
		for k := 1; k < len(c); k++ {
			if err := e.checkToken(c[k]); err != nil {
				return err
			}
			lg, err := e.dec.Feed(c[k-1 : k])
			if err != nil {
				return err
			}
			lp[k], gr[k] = logSoftmaxAt(lg, c[k])
		}
		e.dec.Truncate(n0)
		res.LogProbs[j], res.Greedy[j] = lp, gr
	}
	return nil
}

func (e *Engine) checkToken(t int32) error {
	if t < 0 || int(t) >= e.vocab {
		return fmt.Errorf("token %d is outside the vocabulary [0, %d)", t, e.vocab)
	}
	return nil
}

type longItem struct{ req, cont int }

// scoreBatched scores long continuations with the full forward pass, rows
// of context + continuation[:-1], batched by total length.
func (e *Engine) scoreBatched(ctx context.Context, reqs []eval.ScoreRequest, items []longItem, out []eval.ScoreResult) error {
	if e.model == nil {
		m, err := transformer.New(e.params.Config, e.params)
		if err != nil {
			return err
		}
		e.model = m
	}
	// Rows per forward pass: enough tokens to keep the kernels busy,
	// bounded so activations stay small.
	const tokensPerPass = 4096
	for start := 0; start < len(items); {
		if err := ctx.Err(); err != nil {
			return err
		}
		T := 0
		end := start
		for end < len(items) {
			it := items[end]
			r := reqs[it.req]
			L := len(r.Context) + len(r.Continuations[it.cont]) - 1
			nt := max(T, L)
			if end > start && nt*(end-start+1) > tokensPerPass {
				break
			}
			T = nt
			end++
		}
		B := end - start
		b := llama.NewBatch(B, T)
		var positions []int
		type target struct {
			item int
			k    int
			tok  int32
		}
		var targets []target
		for row, it := range items[start:end] {
			r := reqs[it.req]
			c := r.Continuations[it.cont]
			seq := append(append([]int32(nil), r.Context...), c[:len(c)-1]...)
			for t := 0; t < T; t++ {
				i := row*T + t
				if t < len(seq) {
					if err := e.checkToken(seq[t]); err != nil {
						return err
					}
					b.Tokens[i] = seq[t]
					b.Positions[i] = int32(t)
				} else {
					b.Segments[i] = -1
				}
			}
			for k, tok := range c {
				if err := e.checkToken(tok); err != nil {
					return err
				}
				positions = append(positions, row*T+len(r.Context)-1+k)
				targets = append(targets, target{item: start + row, k: k, tok: tok})
			}
		}
		logits, err := e.model.Logits(b, positions)
		if err != nil {
			return err
		}
		for p, tg := range targets {
			it := items[tg.item]
			res := &out[it.req]
			if res.LogProbs[it.cont] == nil {
				n := len(reqs[it.req].Continuations[it.cont])
				res.LogProbs[it.cont] = make([]float64, n)
				res.Greedy[it.cont] = make([]bool, n)
			}
			lp, gr := logSoftmaxAt(logits[p*e.vocab:(p+1)*e.vocab], tg.tok)
			res.LogProbs[it.cont][tg.k], res.Greedy[it.cont][tg.k] = lp, gr
		}
		start = end
	}
	e.model.ReleaseBuffers()
	return nil
}

// Generate implements eval.Engine: greedy decoding with the key/value
// cache, one request at a time.
func (e *Engine) Generate(ctx context.Context, reqs []eval.GenerateRequest) ([][]int32, error) {
	out := make([][]int32, len(reqs))
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("generate: request %d has an empty prompt", i)
		}
		if len(r.Prompt)+r.MaxNew > e.maxLen {
			return nil, fmt.Errorf("generate: request %d: %d prompt tokens + %d new exceed %d positions", i, len(r.Prompt), r.MaxNew, e.maxLen)
		}
		e.dec.Reset()
		logits, err := e.dec.Feed(r.Prompt)
		if err != nil {
			return nil, fmt.Errorf("generate: request %d: %w", i, err)
		}
		var gen []int32
		for len(gen) < r.MaxNew {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			next := argmax(logits)
			gen = append(gen, next)
			if r.Stop != nil && r.Stop(gen) {
				break
			}
			if len(gen) == r.MaxNew {
				break
			}
			if logits, err = e.dec.Feed([]int32{next}); err != nil {
				return nil, fmt.Errorf("generate: request %d: %w", i, err)
			}
		}
		out[i] = gen
	}
	return out, nil
}

func argmax(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return int32(best)
}
