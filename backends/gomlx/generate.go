package gomlx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX graph code reads best with the dot import.
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/marin-go/marin/backends/model/llama"
)

// Decoding recomputes the whole (padded) sequence for every new token: the
// pure-Go engine has no DynamicUpdateSlice for a KV cache, and a fixed
// padded length keeps one compiled graph per length bucket. Causal masking
// makes the padding invisible to the positions that matter.

const decodeBucket = 64

// NextLogits returns the float32 logits that follow tokens.
func (m *Model) NextLogits(ctx context.Context, tokens []int32) ([]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nextLogits(ctx, tokens)
}

func (m *Model) nextLogits(ctx context.Context, tokens []int32) ([]float32, error) {
	if m.closed {
		return nil, errClosed
	}
	if len(tokens) == 0 {
		return nil, errors.New("gomlx: no tokens to continue")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	L := (len(tokens) + decodeBucket - 1) / decodeBucket * decodeBucket
	// The tokens, then padding (segment −1) up to the bucket.
	b := &llama.Batch{B: 1, T: L, Tokens: make([]int32, L), Segments: make([]int32, L)}
	copy(b.Tokens, tokens)
	for i := len(tokens); i < L; i++ {
		b.Segments[i] = -1
	}
	in, err := m.batchInputs(b)
	if err != nil {
		return nil, err
	}
	P := len(m.specs)
	var out []float32
	err = try(func() error {
		if m.logitsX == nil {
			e, err := m.exec("next_logits", false, func(g *Graph, in []*Node) []*Node {
				mg := m.graphOf(in[:P])
				bn := asBatch(in[P : P+numBatchInputs])
				h := mg.hidden(bn) // [1, L, D]
				dims := h.Shape().Dimensions
				last := Gather(Reshape(h, dims[1], dims[2]), Reshape(in[P+numBatchInputs], 1, 1)) // [1, D]
				return []*Node{Reshape(mg.logits(last), m.cfg.VocabSize)}
			})
			if err != nil {
				return err
			}
			m.logitsX = e
		}
		args := append(append(m.paramArgs(), in...), tensors.FromValue(int32(len(tokens)-1)))
		res, err := m.logitsX.Exec(args...)
		if err != nil {
			return err
		}
		out, err = tensors.CopyFlatData[float32](res[0])
		res[0].FinalizeAll()
		return err
	})
	return out, err
}

// Sampling says how Generate picks tokens.
type Sampling struct {
	MaxNewTokens int
	Temperature  float64 // 0: greedy (argmax, ties to the lowest id)
	Seed         uint64
	Stop         []int32 // tokens that end generation (kept in the output)
}

// Generate continues prompt and returns the new tokens.
func (m *Model) Generate(ctx context.Context, prompt []int32, s Sampling) ([]int32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.MaxNewTokens < 0 || s.Temperature < 0 {
		return nil, fmt.Errorf("gomlx: generate: max_new_tokens and temperature must not be negative")
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x67656e))
	toks := append([]int32(nil), prompt...)
	for range s.MaxNewTokens {
		lg, err := m.nextLogits(ctx, toks)
		if err != nil {
			return nil, err
		}
		next := pick(lg, s.Temperature, rng)
		toks = append(toks, next)
		stop := false
		for _, st := range s.Stop {
			stop = stop || st == next
		}
		if stop {
			break
		}
	}
	return toks[len(prompt):], nil
}

func pick(logits []float32, temperature float64, rng *rand.Rand) int32 {
	best := 0
	for j, v := range logits {
		if v > logits[best] {
			best = j
		}
	}
	if temperature == 0 {
		return int32(best)
	}
	mx := float64(logits[best])
	p := make([]float64, len(logits))
	z := 0.0
	for j, v := range logits {
		p[j] = math.Exp((float64(v) - mx) / temperature)
		z += p[j]
	}
	u := rng.Float64() * z
	for j, pj := range p {
		u -= pj
		if u < 0 {
			return int32(j)
		}
	}
	return int32(best)
}
