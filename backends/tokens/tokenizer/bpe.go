package tokenizer

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// bpe is Hugging Face's BPE model. In byte mode (byte-level vocabularies fed
// by a ByteLevel pre-tokenizer) words arrive as raw bytes and the vocabulary
// is keyed by the bytes each token stands for, which skips the byte-to-char
// transform entirely; otherwise words are strings in the vocabulary's own
// alphabet (SentencePiece-style "▁hello").
type bpe struct {
	vocab        map[string]uint32 // token string as in the file
	vocabR       []string          // id -> token ("" where unused)
	merges       map[uint64]uint64 // left<<32|right -> rank<<32|merged id
	unkID        uint32
	hasUnk       bool
	unkToken     string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	dropout      float64

	byteMode   bool
	byteVocab  map[string]uint32 // raw bytes -> id (byte mode)
	byteIDs    [256]uint32       // single byte -> id (byte mode)
	byteHas    [256]bool
	fallback   [256]uint32 // "<0xXX>" ids for byte_fallback
	fallbackOK bool
	charIDs    map[rune]uint32 // single-character tokens (char mode)
}

func pairKey(a, b uint32) uint64 { return uint64(a)<<32 | uint64(b) }

func (m *bpe) finish() {
	m.fallbackOK = true
	for b := 0; b < 256; b++ {
		id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]
		if !ok {
			m.fallbackOK = false
			break
		}
		m.fallback[b] = id
	}
	m.charIDs = map[rune]uint32{}
	for tok, id := range m.vocab {
		if r, n := utf8.DecodeRuneInString(tok); n == len(tok) && n > 0 && !(r == utf8.RuneError && n == 1) {
			m.charIDs[r] = id
		}
	}
}

// enableByteMode switches to raw-byte words; it reports false (and changes
// nothing) when the vocabulary is not a byte-level one.
func (m *bpe) enableByteMode() bool {
	if m.prefix != "" || m.suffix != "" || m.byteFallback {
		return false
	}
	var ids [256]uint32
	for b := 0; b < 256; b++ {
		id, ok := m.vocab[byteToCharStr[b]]
		if !ok {
			return false
		}
		ids[b] = id
	}
	bv := make(map[string]uint32, len(m.vocab))
	for tok, id := range m.vocab {
		if raw, ok := fromByteLevel(tok); ok {
			bv[raw] = id
		}
	}
	m.byteVocab, m.byteIDs, m.byteMode = bv, ids, true
	for b := range m.byteHas {
		m.byteHas[b] = true
	}
	return true
}

// symbols holds a word being merged; it is reused across words.
type symbols struct {
	ids   []uint32
	prev  []int32
	next  []int32
	alive []bool
	heap  []uint64
}

// encodeWord appends the ids of one pre-tokenized word.
func (m *bpe) encodeWord(word string, sy *symbols, out []uint32) []uint32 {
	if len(word) == 0 {
		return out
	}
	if m.ignoreMerges {
		if m.byteMode {
			if id, ok := m.byteVocab[word]; ok {
				return append(out, id)
			}
		} else if id, ok := m.vocab[word]; ok {
			return append(out, id)
		}
	}
	ids := sy.ids[:0]
	if m.byteMode {
		for i := 0; i < len(word); i++ {
			ids = append(ids, m.byteIDs[word[i]])
		}
	} else {
		ids = m.initialSymbols(word, ids)
	}
	sy.ids = ids
	if len(ids) < 2 || len(m.merges) == 0 {
		return append(out, ids...)
	}
	if len(ids) <= 48 {
		ids = m.mergeSmall(ids)
	} else {
		ids = m.mergeHeap(sy)
	}
	return append(out, ids...)
}

// initialSymbols splits a char-mode word into per-character ids, applying
// continuing_subword_prefix, end_of_word_suffix, byte_fallback and unk
// fusing exactly as Hugging Face's BPE::merge_word.
func (m *bpe) initialSymbols(w string, ids []uint32) []uint32 {
	unkPending := false
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		end := i + n
		s := w[i:end]
		plain := true
		if i != 0 && m.prefix != "" {
			s = m.prefix + s
			plain = false
		}
		if end == len(w) && m.suffix != "" {
			s += m.suffix
			plain = false
		}
		var id uint32
		var ok bool
		if plain {
			r, _ := utf8.DecodeRuneInString(s)
			id, ok = m.charIDs[r]
		} else {
			id, ok = m.vocab[s]
		}
		i = end
		if ok {
			if unkPending {
				ids = append(ids, m.unkID)
				unkPending = false
			}
			ids = append(ids, id)
			continue
		}
		if m.byteFallback && m.fallbackOK {
			for k := 0; k < len(s); k++ {
				ids = append(ids, m.fallback[s[k]])
			}
			continue
		}
		if m.hasUnk {
			if unkPending && !m.fuseUnk {
				ids = append(ids, m.unkID)
			}
			unkPending = true
		}
	}
	if unkPending {
		ids = append(ids, m.unkID)
	}
	return ids
}

// mergeSmall applies merges by repeatedly merging the lowest-ranked,
// leftmost pair; for short words this beats a heap.
func (m *bpe) mergeSmall(ids []uint32) []uint32 {
	for len(ids) > 1 {
		best := uint64(math.MaxUint64)
		bi := -1
		for i := 0; i+1 < len(ids); i++ {
			if v, ok := m.merges[pairKey(ids[i], ids[i+1])]; ok && v < best {
				best, bi = v, i
			}
		}
		if bi < 0 {
			break
		}
		ids[bi] = uint32(best)
		copy(ids[bi+1:], ids[bi+2:])
		ids = ids[:len(ids)-1]
	}
	return ids
}

// mergeHeap is Hugging Face's Word::merge_all: a priority queue of
// (rank, position) over a doubly linked list of symbols.
func (m *bpe) mergeHeap(sy *symbols) []uint32 {
	n := len(sy.ids)
	sy.prev = grow32(sy.prev, n)
	sy.next = grow32(sy.next, n)
	if cap(sy.alive) < n {
		sy.alive = make([]bool, n)
	}
	sy.alive = sy.alive[:n]
	for i := 0; i < n; i++ {
		sy.prev[i] = int32(i - 1)
		sy.next[i] = int32(i + 1)
		sy.alive[i] = true
	}
	sy.next[n-1] = -1
	h := sy.heap[:0]
	push := func(rank uint32, pos int) {
		h = append(h, uint64(rank)<<32|uint64(pos))
		for j := len(h) - 1; j > 0; {
			p := (j - 1) / 2
			if h[p] <= h[j] {
				break
			}
			h[p], h[j] = h[j], h[p]
			j = p
		}
	}
	pop := func() uint64 {
		top := h[0]
		last := len(h) - 1
		h[0] = h[last]
		h = h[:last]
		for j := 0; ; {
			l := 2*j + 1
			if l >= len(h) {
				break
			}
			c := l
			if r := l + 1; r < len(h) && h[r] < h[l] {
				c = r
			}
			if h[j] <= h[c] {
				break
			}
			h[j], h[c] = h[c], h[j]
			j = c
		}
		return top
	}
	ids := sy.ids
	for i := 0; i+1 < n; i++ {
		if v, ok := m.merges[pairKey(ids[i], ids[i+1])]; ok {
			push(uint32(v>>32), i)
		}
	}
	for len(h) > 0 {
		top := pop()
		pos := int(uint32(top))
		rank := uint32(top >> 32)
		if !sy.alive[pos] || sy.next[pos] < 0 {
			continue
		}
		nx := int(sy.next[pos])
		v, ok := m.merges[pairKey(ids[pos], ids[nx])]
		if !ok || uint32(v>>32) != rank {
			continue
		}
		ids[pos] = uint32(v)
		sy.alive[nx] = false
		sy.next[pos] = sy.next[nx]
		if nn := sy.next[nx]; nn >= 0 {
			sy.prev[nn] = int32(pos)
		}
		if p := sy.prev[pos]; p >= 0 {
			if v, ok := m.merges[pairKey(ids[p], ids[pos])]; ok {
				push(uint32(v>>32), int(p))
			}
		}
		if nn := sy.next[pos]; nn >= 0 {
			if v, ok := m.merges[pairKey(ids[pos], ids[nn])]; ok {
				push(uint32(v>>32), pos)
			}
		}
	}
	sy.heap = h
	out := ids[:0]
	for i := 0; i < n; i++ {
		if sy.alive[i] {
			out = append(out, ids[i])
		}
	}
	return out
}

func grow32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}
