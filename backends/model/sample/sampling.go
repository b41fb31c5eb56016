package sample

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Sampling says how the next token is picked.
type Sampling struct {
	// Temperature 0 is greedy decoding: the most likely token (the lowest
	// id on ties). Above 0 the logits are divided by it and a token is
	// drawn.
	Temperature float64
	// TopP keeps the smallest set of most likely tokens whose probability
	// adds up to at least TopP (nucleus sampling); 0 or 1 keeps all.
	TopP float64
	// TopK keeps the K most likely tokens; 0 keeps all.
	TopK int
	// Seed makes draws reproducible.
	Seed uint64
}

// Validate checks the ranges.
func (s Sampling) Validate() error {
	switch {
	case s.Temperature < 0 || math.IsNaN(s.Temperature) || math.IsInf(s.Temperature, 0):
		return fmt.Errorf("temperature %v must be a number >= 0", s.Temperature)
	case s.TopP < 0 || s.TopP > 1 || math.IsNaN(s.TopP):
		return fmt.Errorf("top_p %v must be in [0, 1]", s.TopP)
	case s.TopK < 0:
		return fmt.Errorf("top_k %d must be >= 0", s.TopK)
	}
	return nil
}

// Sampler picks tokens from logits.
type Sampler struct {
	s   Sampling
	rng *rand.Rand
	idx []int
	p   []float64
}

// NewSampler returns a sampler; draws depend only on the seed and the
// logits seen.
func NewSampler(s Sampling) *Sampler {
	return &Sampler{s: s, rng: rand.New(rand.NewPCG(s.Seed, 0x6d6172696e))}
}

// Next picks a token from logits.
func (sm *Sampler) Next(logits []float32) int32 {
	best := 0
	for j, v := range logits {
		if v > logits[best] {
			best = j
		}
	}
	if sm.s.Temperature == 0 {
		return int32(best)
	}
	n := len(logits)
	if cap(sm.p) < n {
		sm.p = make([]float64, n)
		sm.idx = make([]int, n)
	}
	p, idx := sm.p[:n], sm.idx[:n]
	mx := float64(logits[best])
	var z float64
	for j, v := range logits {
		p[j] = math.Exp((float64(v) - mx) / sm.s.Temperature)
		z += p[j]
		idx[j] = j
	}
	keep := n
	if sm.s.TopK > 0 || (sm.s.TopP > 0 && sm.s.TopP < 1) {
		sort.Slice(idx, func(a, b int) bool {
			if p[idx[a]] != p[idx[b]] {
				return p[idx[a]] > p[idx[b]]
			}
			return idx[a] < idx[b]
		})
		if sm.s.TopK > 0 && sm.s.TopK < keep {
			keep = sm.s.TopK
		}
		if sm.s.TopP > 0 && sm.s.TopP < 1 {
			var cum float64
			for r := 0; r < keep; r++ {
				cum += p[idx[r]] / z
				if cum >= sm.s.TopP {
					keep = r + 1
					break
				}
			}
		}
		z = 0
		for r := 0; r < keep; r++ {
			z += p[idx[r]]
		}
	}
	u := sm.rng.Float64() * z
	for r := 0; r < keep; r++ {
		u -= p[idx[r]]
		if u < 0 {
			return int32(idx[r])
		}
	}
	return int32(idx[keep-1])
}
