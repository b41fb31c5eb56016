package sample

import (
	"context"
	"errors"
	"fmt"

	"github.com/marin-go/marin/backends/model/llama"
)

// Decoder runs a model over a fixed number of rows (independent
// sequences) with a key/value cache, so each new token costs one position
// of work. Every engine provides one (backends/cpu, backends/gomlx); the
// generation loop here, marin generate and chat, and evaluations drive it
// through this interface. A Decoder is not safe for concurrent use.
type Decoder interface {
	// Rows is the number of sequences the decoder holds.
	Rows() int
	// MaxLen is the number of positions each row holds (at most
	// max_position_embeddings).
	MaxLen() int
	// Len is the number of positions row r holds.
	Len(r int) int
	// Feed appends tokens[r] to row r (len(tokens) ≤ Rows(); a row given
	// no tokens, or past len(tokens), is left as it is) and returns each
	// fed row's next-token logits — with Last, vocab_size values after its
	// last fed token; with Every, vocab_size values after each fed token,
	// one after the other (the log-likelihood of a continuation) — and nil
	// for the other rows. The logits are valid until the next call. Rows
	// are computed together; a row's numbers do not depend on the others.
	Feed(ctx context.Context, tokens [][]int32, want Want) ([][]float32, error)
	// Truncate keeps the first n positions of row r, forgetting the rest
	// (to continue a conversation whose rendering shares a prefix with
	// what was fed); n ≥ Len(r) changes nothing.
	Truncate(r, n int)
	// Reset empties every row.
	Reset()
	// Close releases what the decoder holds (device memory).
	Close() error
}

// Want says which next-token logits Feed returns.
type Want int

const (
	// Last: after each row's last fed token (generation).
	Last Want = iota
	// Every: after every fed token (scoring a continuation).
	Every
)

// DecoderFactory makes an engine's decoder over params: rows sequences of
// up to maxLen positions each (0: max_position_embeddings).
type DecoderFactory func(params *llama.Params, rows, maxLen int) (Decoder, error)

// PlanFeed is for Decoder implementations: it checks a Feed of tokens to
// rows that hold lens[r] positions (of at most maxLen; ids below vocab) and
// splits it into passes of about chunk tokens over all rows, each active
// row getting an equal share: passes[p][r] is how many of row r's tokens
// pass p feeds, in order. Every engine thus refuses the same feeds and
// batches alike.
func PlanFeed(tokens [][]int32, lens []int, maxLen, vocab, chunk int) (passes [][]int, err error) {
	if len(tokens) > len(lens) {
		return nil, fmt.Errorf("decoder: tokens for %d rows, the decoder has %d", len(tokens), len(lens))
	}
	total := 0
	for r, toks := range tokens {
		if lens[r]+len(toks) > maxLen {
			return nil, fmt.Errorf("decoder: row %d: %d positions would exceed the cache's %d (max_position_embeddings)", r, lens[r]+len(toks), maxLen)
		}
		for i, t := range toks {
			if t < 0 || int(t) >= vocab {
				return nil, fmt.Errorf("decoder: row %d: token %d at %d is outside the vocabulary [0, %d)", r, t, i, vocab)
			}
		}
		total += len(toks)
	}
	if total == 0 {
		return nil, errors.New("decoder: no tokens to feed")
	}
	done := make([]int, len(tokens))
	for {
		active := 0
		for r, toks := range tokens {
			if done[r] < len(toks) {
				active++
			}
		}
		if active == 0 {
			return passes, nil
		}
		quota := max(1, chunk/active)
		take := make([]int, len(tokens))
		for r, toks := range tokens {
			take[r] = min(len(toks)-done[r], quota)
			done[r] += take[r]
		}
		passes = append(passes, take)
	}
}
