package chat

import (
	"fmt"

	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// textOpts encodes text between control tokens: never control tokens, no
// post-processor (the format places BOS/EOS itself, as Hugging Face's
// apply_chat_template(tokenize=True) does).
var textOpts = tokenizer.EncodeOptions{AddSpecialTokens: false, SplitSpecial: false}

// Encoder tokenizes rendered segments. It is safe for concurrent use.
type Encoder struct {
	v *Vocab
}

// NewEncoder returns an Encoder for the tokenizer of v.
func NewEncoder(v *Vocab) *Encoder { return &Encoder{v: v} }

// run is a stretch of a piece with one trainable flag; end is its end offset
// in the piece.
type run struct {
	end   int
	train bool
}

// encodeState accumulates one conversation.
type encodeState struct {
	e     *Encoder
	ids   []uint32
	mask  []uint8
	piece []byte
	runs  []run
}

// Encode returns the ids and loss mask (1 = trained) of segs. An error means
// the format named a control token the tokenizer does not have.
func (e *Encoder) Encode(segs []Segment) (ids []uint32, mask []uint8, err error) {
	st := &encodeState{e: e}
	for i, s := range segs {
		switch {
		case s.Special != "":
			if s.Text != "" {
				return nil, nil, fmt.Errorf("segment %d has both text and special token %q", i, s.Special)
			}
			id, ok := e.v.Tok.TokenToID(s.Special)
			if !ok {
				return nil, nil, fmt.Errorf("segment %d: the tokenizer has no token %q", i, s.Special)
			}
			st.special(id, s.Trainable)
		case s.Literal:
			e.v.splitLiteral(s.Text,
				func(t string) { st.text(t, s.Trainable) },
				func(t AddedToken) { st.special(t.ID, s.Trainable) })
		default:
			st.text(s.Text, s.Trainable)
		}
	}
	st.flush()
	return st.ids, st.mask, nil
}

func (st *encodeState) special(id uint32, train bool) {
	st.flush()
	st.ids = append(st.ids, id)
	st.mask = append(st.mask, b2u(train))
}

func (st *encodeState) text(s string, train bool) {
	if s == "" {
		return
	}
	st.piece = append(st.piece, s...)
	if n := len(st.runs); n > 0 && st.runs[n-1].train == train {
		st.runs[n-1].end = len(st.piece)
		return
	}
	st.runs = append(st.runs, run{end: len(st.piece), train: train})
}

// flush encodes the pending text piece in one call and cuts its mask.
func (st *encodeState) flush() {
	if len(st.piece) == 0 {
		return
	}
	piece := string(st.piece)
	full := st.e.v.Tok.Encode(piece, textOpts)
	st.ids = append(st.ids, full...)
	if len(st.runs) == 1 {
		for range full {
			st.mask = append(st.mask, b2u(st.runs[0].train))
		}
	} else {
		st.mask = append(st.mask, cutMask(st.e.v.Tok, piece, full, st.runs)...)
	}
	st.piece = st.piece[:0]
	st.runs = st.runs[:0]
}

// cutMask assigns each token of full (the encoding of piece) to the run it
// starts in. Where run k begins, the encoding of piece[:start] is compared
// with full: their common prefix is the tokens before the boundary. When the
// prefix's encoding differs from full after that point, a token straddles
// the boundary; it is trainable if either side is.
func cutMask(tok Tokenizer, piece string, full []uint32, runs []run) []uint8 {
	starts := make([]int, len(runs)) // token index where run k starts
	straddle := make(map[int]bool)
	for k := 1; k < len(runs); k++ {
		pre := tok.Encode(piece[:runs[k-1].end], textOpts)
		l := 0
		for l < len(pre) && l < len(full) && pre[l] == full[l] {
			l++
		}
		if l < starts[k-1] {
			l = starts[k-1]
		}
		starts[k] = l
		if l != len(pre) && l < len(full) && (runs[k-1].train || runs[k].train) {
			straddle[l] = true
		}
	}
	mask := make([]uint8, len(full))
	r := 0
	for j := range full {
		for r+1 < len(runs) && starts[r+1] <= j {
			r++
		}
		mask[j] = b2u(runs[r].train || straddle[j])
	}
	return mask
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
