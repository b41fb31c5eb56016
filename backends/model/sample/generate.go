package sample

import (
	"context"
	"fmt"
)

// Options configure a generation.
type Options struct {
	MaxNewTokens int
	// Sampling is how tokens are picked; row r of a batch draws from its
	// own stream, seeded Seed+r.
	Sampling Sampling
	// Stop ends a row's generation when it produces one of these tokens
	// (the stop token is not part of the returned tokens).
	Stop []uint32
}

// Result is one row's generation.
type Result struct {
	Tokens  []uint32 // the new tokens, without the stop token
	Stopped bool     // a stop token ended it (not MaxNewTokens or the decoder's length)
	StopID  uint32   // the stop token, when Stopped
}

// Generate continues rows of d: prompts[r] is fed to row r (after what the
// row already holds, so a chat can keep its cache between turns), then
// tokens are drawn for every row at once until each has MaxNewTokens,
// produced a stop token or filled the decoder. Every prompt must hold at
// least one token (the decoder keeps no logits between calls); rows from
// len(prompts) on are left alone. A stop token is fed to its row when
// there is room, so the cache holds the whole turn. onToken, when not nil,
// sees each new token of each row as it is made (for streaming); stop
// tokens are not passed to it.
func Generate(ctx context.Context, d Decoder, prompts [][]uint32, o Options, onToken func(row int, id uint32)) ([]Result, error) {
	if err := o.Sampling.Validate(); err != nil {
		return nil, err
	}
	if o.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("max new tokens %d must be positive", o.MaxNewTokens)
	}
	if len(prompts) == 0 || len(prompts) > d.Rows() {
		return nil, fmt.Errorf("generate: %d prompts for a decoder of %d rows", len(prompts), d.Rows())
	}
	stop := map[uint32]bool{}
	for _, s := range o.Stop {
		stop[s] = true
	}
	feed := make([][]int32, len(prompts))
	samplers := make([]*Sampler, len(prompts))
	for r, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("generate: the prompt of row %d is empty", r)
		}
		feed[r] = make([]int32, len(p))
		for i, t := range p {
			feed[r][i] = int32(t)
		}
		s := o.Sampling
		s.Seed += uint64(r)
		samplers[r] = NewSampler(s)
	}
	res := make([]Result, len(prompts))
	logits, err := d.Feed(ctx, feed, Last)
	if err != nil {
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		more := false
		for r := range feed {
			if feed[r] == nil || res[r].Stopped {
				feed[r] = nil
				continue
			}
			next := uint32(samplers[r].Next(logits[r]))
			feed[r] = nil
			if stop[next] {
				res[r].Stopped, res[r].StopID = true, next
				if d.Len(r) < d.MaxLen() {
					feed[r] = []int32{int32(next)}
					more = true
				}
				continue
			}
			res[r].Tokens = append(res[r].Tokens, next)
			if onToken != nil {
				onToken(r, next)
			}
			if len(res[r].Tokens) < o.MaxNewTokens && d.Len(r) < d.MaxLen() {
				feed[r] = []int32{int32(next)}
				more = true
			}
		}
		if !more {
			return res, nil
		}
		if logits, err = d.Feed(ctx, feed, Last); err != nil {
			return res, err
		}
	}
}
