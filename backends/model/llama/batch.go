package llama

import "fmt"

// Batch is B sequences of T tokens, flattened row-major: element (b, t) is
// at index b·T+t of every slice.
//
// Segments gives each position's document id within its row (any
// non-negative int32; documents of a packed row must differ). Attention runs
// only between positions of the same segment, causally. Segment −1 marks
// padding: a padding position attends nowhere, is attended by nothing, and
// contributes nothing to the loss or gradients. A nil Segments means one
// document per row (all 0).
//
// Positions are the RoPE positions. A nil Positions derives them: each
// position's index within its run of equal segment ids (0 at a document's
// first token, counting up; 0 for padding). Packed rows therefore restart
// positions at every document.
//
// LossMask is already shifted for next-token prediction: LossMask[b·T+t]
// true means the loss includes −log p(Tokens[b·T+t+1] | Tokens[b·T+0..t]),
// the prediction made at position t of the token at t+1. It must therefore
// be false at t = T−1, and may be true only where positions t and t+1 are in
// the same (non-padding) segment; Validate refuses anything else so that no
// target ever crosses a document boundary. For an SFT example whose
// assistant tokens are at positions a..b, the mask is true at a−1..b−1.
type Batch struct {
	B, T      int
	Tokens    []int32
	Segments  []int32
	Positions []int32
	LossMask  []bool
}

// NewBatch allocates a batch with every slice present: segments 0,
// positions 0 and an all-false mask, ready to fill.
func NewBatch(b, t int) *Batch {
	return &Batch{
		B: b, T: t,
		Tokens:    make([]int32, b*t),
		Segments:  make([]int32, b*t),
		Positions: make([]int32, b*t),
		LossMask:  make([]bool, b*t),
	}
}

// TrainedCount is the number of true entries in LossMask: the Count a loss
// over this batch reports.
func (b *Batch) TrainedCount() int {
	n := 0
	for _, m := range b.LossMask {
		if m {
			n++
		}
	}
	return n
}

// Validate checks shapes, token ids against cfg's vocabulary, positions
// against max_position_embeddings and the loss-mask rules.
func (b *Batch) Validate(cfg Config) error {
	cfg = cfg.Normalized()
	if b.B <= 0 || b.T <= 0 {
		return fmt.Errorf("batch: shape %d×%d must be positive", b.B, b.T)
	}
	n := b.B * b.T
	if len(b.Tokens) != n {
		return fmt.Errorf("batch: %d tokens for shape %d×%d", len(b.Tokens), b.B, b.T)
	}
	if b.Segments != nil && len(b.Segments) != n {
		return fmt.Errorf("batch: %d segment ids for shape %d×%d", len(b.Segments), b.B, b.T)
	}
	if b.Positions != nil && len(b.Positions) != n {
		return fmt.Errorf("batch: %d positions for shape %d×%d", len(b.Positions), b.B, b.T)
	}
	if b.LossMask != nil && len(b.LossMask) != n {
		return fmt.Errorf("batch: loss mask of %d for shape %d×%d", len(b.LossMask), b.B, b.T)
	}
	if lim := cfg.SlidingWindowLimit(); lim > 0 && b.T > lim {
		return fmt.Errorf("batch: sequence length %d exceeds the sliding window %d (sliding-window attention is not implemented)", b.T, lim)
	}
	for i, tok := range b.Tokens {
		if tok < 0 || int(tok) >= cfg.VocabSize {
			return fmt.Errorf("batch: token %d at row %d position %d is outside the vocabulary [0, %d)", tok, i/b.T, i%b.T, cfg.VocabSize)
		}
	}
	for i, p := range b.Positions {
		if p < 0 || int(p) >= cfg.MaxPositionEmbeddings {
			return fmt.Errorf("batch: position %d at row %d index %d is outside [0, %d) (max_position_embeddings)", p, i/b.T, i%b.T, cfg.MaxPositionEmbeddings)
		}
	}
	for i, s := range b.Segments {
		if s < -1 {
			return fmt.Errorf("batch: segment id %d at row %d position %d (ids are ≥ 0, or −1 for padding)", s, i/b.T, i%b.T)
		}
	}
	for i, m := range b.LossMask {
		if !m {
			continue
		}
		r, t := i/b.T, i%b.T
		if t == b.T-1 {
			return fmt.Errorf("batch: loss mask set at the last position of row %d, which has no next token (the mask is shifted: mask[t] trains the prediction of token t+1)", r)
		}
		if b.Segments != nil {
			s0, s1 := b.Segments[i], b.Segments[i+1]
			if s0 < 0 || s0 != s1 {
				return fmt.Errorf("batch: loss mask set at row %d position %d whose next token is in another segment (%d → %d); targets must not cross documents", r, t, s0, s1)
			}
		}
	}
	return nil
}

// Segment returns the segment id at flat index i.
func (b *Batch) Segment(i int) int32 {
	if b.Segments == nil {
		return 0
	}
	return b.Segments[i]
}

// DerivedPositions returns b.Positions, or positions restarting at 0 at
// every segment start when b.Positions is nil.
func (b *Batch) DerivedPositions() []int32 {
	if b.Positions != nil {
		return b.Positions
	}
	pos := make([]int32, b.B*b.T)
	for r := 0; r < b.B; r++ {
		var p int32
		for t := 0; t < b.T; t++ {
			i := r*b.T + t
			s := b.Segment(i)
			if t > 0 && s != b.Segment(i-1) {
				p = 0
			}
			if s < 0 {
				pos[i] = 0
				p = 0
				continue
			}
			pos[i] = p
			p++
		}
	}
	return pos
}

// Rows returns rows [r0, r0+n) of b as a batch sharing b's storage (a
// micro-batch, or one device's share). Slices that are nil in b stay nil.
func (b *Batch) Rows(r0, n int) *Batch {
	lo, hi := r0*b.T, (r0+n)*b.T
	part := func(x []int32) []int32 {
		if x == nil {
			return nil
		}
		return x[lo:hi:hi]
	}
	out := &Batch{B: n, T: b.T, Tokens: part(b.Tokens), Segments: part(b.Segments), Positions: part(b.Positions)}
	if b.LossMask != nil {
		out.LossMask = b.LossMask[lo:hi:hi]
	}
	return out
}
