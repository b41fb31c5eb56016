package dataloader

import "fmt"

// MaxDocsPerSequence bounds how many documents one packed sequence holds, as
// in Levanter.
const MaxDocsPerSequence = 64

// Docs is what packing needs from a tokenized cache: document lengths and
// each document's ids and trainable-token mask (mask[i] != 0: token i is a
// training target).
type Docs interface {
	NumDocs() int64
	DocLen(i int64) int
	Doc(i int64) (ids []uint32, mask []uint8)
}

// Packing is the assignment of documents to fixed-length sequences: greedy
// and contiguous in document order, at most MaxDocsPerSequence documents a
// sequence, an overlong document truncated keeping its start. With pack
// false every document gets its own (padded) sequence.
type Packing struct {
	SeqLen int
	// seqStart[s] .. seqStart[s+1] index docs/lens for sequence s.
	seqStart []int64
	docs     []int64
	lens     []int32
}

// Pack plans sequences of seqLen tokens over src's documents. Documents
// shorter than two tokens are kept (they still occupy space) but train
// nothing, since there is no next token to predict inside them.
func Pack(src Docs, seqLen int, pack bool) (*Packing, error) {
	if seqLen < 2 {
		return nil, fmt.Errorf("sequence length must be at least 2, got %d", seqLen)
	}
	p := &Packing{SeqLen: seqLen, seqStart: []int64{0}}
	fill, count := 0, 0
	closeSeq := func() {
		if count > 0 {
			p.seqStart = append(p.seqStart, int64(len(p.docs)))
			fill, count = 0, 0
		}
	}
	n := src.NumDocs()
	for i := int64(0); i < n; i++ {
		l := src.DocLen(i)
		if l == 0 {
			continue
		}
		if l > seqLen {
			l = seqLen
		}
		if !pack || fill+l > seqLen || count == MaxDocsPerSequence {
			closeSeq()
		}
		p.docs = append(p.docs, i)
		p.lens = append(p.lens, int32(l))
		fill += l
		count++
	}
	closeSeq()
	return p, nil
}

// Len is the number of sequences.
func (p *Packing) Len() int64 { return int64(len(p.seqStart) - 1) }

// Sequence is one row of a batch.
type Sequence struct {
	Tokens    []int32 // padding id 0
	Segments  []int32 // document number within the sequence, -1 for padding
	Positions []int32 // position within the document (RoPE restarts per document)
	// LossMask[t] is 1 when predicting Tokens[t+1] from position t is trained:
	// the next token is in the same document and is a training target. The
	// last position of every document, and padding, are 0.
	LossMask []float32
}

// NewSequence allocates a sequence of length n.
func NewSequence(n int) *Sequence {
	return &Sequence{Tokens: make([]int32, n), Segments: make([]int32, n), Positions: make([]int32, n), LossMask: make([]float32, n)}
}

// Fill writes sequence s into dst (length SeqLen).
func (p *Packing) Fill(src Docs, s int64, dst *Sequence) error {
	if s < 0 || s >= p.Len() {
		return fmt.Errorf("sequence %d out of range [0, %d)", s, p.Len())
	}
	if len(dst.Tokens) != p.SeqLen {
		return fmt.Errorf("destination has length %d, want %d", len(dst.Tokens), p.SeqLen)
	}
	t := 0
	for k := p.seqStart[s]; k < p.seqStart[s+1]; k++ {
		ids, mask := src.Doc(p.docs[k])
		l := int(p.lens[k])
		if len(ids) < l || len(mask) < l {
			return fmt.Errorf("document %d has %d tokens, packing planned %d: cache changed under the loader", p.docs[k], len(ids), l)
		}
		seg := int32(k - p.seqStart[s])
		for j := 0; j < l; j++ {
			dst.Tokens[t+j] = int32(ids[j])
			dst.Segments[t+j] = seg
			dst.Positions[t+j] = int32(j)
			dst.LossMask[t+j] = 0
			if j+1 < l && mask[j+1] != 0 {
				dst.LossMask[t+j] = 1
			}
		}
		t += l
	}
	for ; t < p.SeqLen; t++ {
		dst.Tokens[t], dst.Segments[t], dst.Positions[t], dst.LossMask[t] = 0, -1, 0, 0
	}
	return nil
}
