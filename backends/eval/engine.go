package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/sample"
)

// Every engine evaluates through its key/value-cached decoder
// (sample.Decoder, the interface the cpu and gomlx engines implement for
// generation too): DecoderEngine turns one into an Engine.
//
// Scoring feeds up to Rows() contexts at once, one per row, and keeps each
// row's next-token logits; every continuation of that context is then fed
// on top of the row's cache (all rows together, asking for the logits
// after every token) and the row truncated back to its context, so the
// continuations of one context share its forward pass and a
// one-token continuation costs nothing more. Generation is greedy over
// rows in lockstep: the prompts are fed together, then each step feeds
// every unfinished row its newest token.

// EngineOptions are what an engine is made for.
type EngineOptions struct {
	// Resources is the step's ResourceConfig (JSON; may be empty).
	Resources json.RawMessage
	// Rows is how many sequences the engine runs at once (the batch size).
	Rows int
	// MaxLength bounds the positions of one sequence (0: the model's, up
	// to DefaultMaxLength).
	MaxLength int
}

// EngineFactory makes an engine for a model's parameters.
type EngineFactory func(params *llama.Params, o EngineOptions) (Engine, error)

// DefaultMaxLength caps the positions of a sequence when the model allows
// more (Llama 3.1 declares 131072): Marin evaluates with max_model_len 4096.
const DefaultMaxLength = 4096

// everyBudget bounds the logits (floats) one scoring feed returns.
var everyBudget = 32 << 20

// DecoderEngine is the EngineFactory of an engine whose decoders come from
// decoders(resources).
func DecoderEngine(decoders func(resources json.RawMessage) (sample.DecoderFactory, error)) EngineFactory {
	return func(params *llama.Params, o EngineOptions) (Engine, error) {
		f, err := decoders(o.Resources)
		if err != nil {
			return nil, err
		}
		maxLen := min(params.Config.Normalized().MaxPositionEmbeddings, DefaultMaxLength)
		if o.MaxLength > 0 {
			maxLen = min(maxLen, o.MaxLength)
		}
		rows := max(o.Rows, 1)
		d, err := f(params, rows, maxLen)
		if err != nil {
			return nil, err
		}
		return NewDecoderEngine(d, params.Config.Normalized().VocabSize), nil
	}
}

// decoderEngine is an Engine over a sample.Decoder.
type decoderEngine struct {
	d     sample.Decoder
	vocab int
}

// NewDecoderEngine returns the Engine that runs on d (vocab: the logits'
// width).
func NewDecoderEngine(d sample.Decoder, vocab int) Engine {
	return &decoderEngine{d: d, vocab: vocab}
}

func (e *decoderEngine) MaxLength() int { return e.d.MaxLen() }

// Close releases the decoder.
func (e *decoderEngine) Close() error { return e.d.Close() }

// logSoftmaxAt returns log p(tok) under logits (in float64) and whether
// tok is the argmax (the lowest id among equal maxima, as torch's).
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

func argmaxToken(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// Score implements Engine.
func (e *decoderEngine) Score(ctx context.Context, reqs []ScoreRequest) ([]ScoreResult, error) {
	out := make([]ScoreResult, len(reqs))
	for i, r := range reqs {
		if len(r.Context) == 0 {
			return nil, fmt.Errorf("score: request %d has an empty context", i)
		}
		out[i].LogProbs = make([][]float64, len(r.Continuations))
		out[i].Greedy = make([][]bool, len(r.Continuations))
		for j, c := range r.Continuations {
			if len(c) == 0 {
				return nil, fmt.Errorf("score: request %d continuation %d is empty", i, j)
			}
			if len(r.Context)+len(c)-1 > e.d.MaxLen() {
				return nil, fmt.Errorf("score: request %d: %d context and %d continuation tokens exceed %d positions", i, len(r.Context), len(c), e.d.MaxLen())
			}
			out[i].LogProbs[j] = make([]float64, len(c))
			out[i].Greedy[j] = make([]bool, len(c))
		}
	}
	R := e.d.Rows()
	for start := 0; start < len(reqs); start += R {
		if err := e.scoreRows(ctx, reqs[start:min(start+R, len(reqs))], out[start:]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (e *decoderEngine) scoreRows(ctx context.Context, reqs []ScoreRequest, out []ScoreResult) error {
	e.d.Reset()
	feed := make([][]int32, len(reqs))
	for r, q := range reqs {
		feed[r] = q.Context
	}
	logits, err := e.d.Feed(ctx, feed, sample.Last)
	if err != nil {
		return err
	}
	base := make([][]float32, len(reqs))
	n0 := make([]int, len(reqs))
	most := 0
	for r, q := range reqs {
		base[r] = append([]float32(nil), logits[r]...)
		n0[r] = e.d.Len(r)
		most = max(most, len(q.Continuations))
	}
	V := e.vocab
	// Logits after every fed token take V floats each: continuations are
	// fed in pieces of at most chunk tokens per row, so a long one (a
	// rolling window) never holds more than about 128 MiB of logits.
	chunk := max(1, everyBudget/(V*len(reqs)))
	for j := 0; j < most; j++ {
		fedTo := make([]int, len(reqs)) // tokens of c[:-1] fed so far
		for r, q := range reqs {
			if j < len(q.Continuations) {
				c := q.Continuations[j]
				out[r].LogProbs[j][0], out[r].Greedy[j][0] = logSoftmaxAt(base[r], c[0])
			}
		}
		for {
			feed := make([][]int32, len(reqs))
			fed := false
			for r, q := range reqs {
				if j >= len(q.Continuations) {
					continue
				}
				c := q.Continuations[j]
				if k := fedTo[r]; k < len(c)-1 {
					feed[r] = c[k:min(k+chunk, len(c)-1)]
					fed = true
				}
			}
			if !fed {
				break
			}
			every, err := e.d.Feed(ctx, feed, sample.Every)
			if err != nil {
				return err
			}
			for r, q := range reqs {
				if feed[r] == nil {
					continue
				}
				c := q.Continuations[j]
				for m := range feed[r] {
					k := fedTo[r] + m + 1 // the token these logits predict
					out[r].LogProbs[j][k], out[r].Greedy[j][k] = logSoftmaxAt(every[r][m*V:(m+1)*V], c[k])
				}
				fedTo[r] += len(feed[r])
			}
		}
		for r := range reqs {
			if fedTo[r] > 0 {
				e.d.Truncate(r, n0[r])
			}
		}
	}
	return nil
}

// Generate implements Engine.
func (e *decoderEngine) Generate(ctx context.Context, reqs []GenerateRequest) ([][]int32, error) {
	out := make([][]int32, len(reqs))
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("generate: request %d has an empty prompt", i)
		}
		if len(r.Prompt)+r.MaxNew > e.d.MaxLen() {
			return nil, fmt.Errorf("generate: request %d: %d prompt tokens + %d new exceed %d positions", i, len(r.Prompt), r.MaxNew, e.d.MaxLen())
		}
	}
	R := e.d.Rows()
	for start := 0; start < len(reqs); start += R {
		end := min(start+R, len(reqs))
		if err := e.generateRows(ctx, reqs[start:end], out[start:end]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (e *decoderEngine) generateRows(ctx context.Context, reqs []GenerateRequest, out [][]int32) error {
	e.d.Reset()
	feed := make([][]int32, len(reqs))
	for r, q := range reqs {
		feed[r] = q.Prompt
	}
	logits, err := e.d.Feed(ctx, feed, sample.Last)
	if err != nil {
		return err
	}
	done := make([]bool, len(reqs))
	for {
		next := make([][]int32, len(reqs))
		active := false
		for r, q := range reqs {
			if done[r] {
				continue
			}
			tok := argmaxToken(logits[r])
			out[r] = append(out[r], tok)
			if (q.Stop != nil && q.Stop(out[r])) || len(out[r]) >= q.MaxNew {
				done[r] = true
				continue
			}
			next[r] = []int32{tok}
			active = true
		}
		if !active {
			return nil
		}
		if logits, err = e.d.Feed(ctx, next, sample.Last); err != nil {
			return err
		}
	}
}
