package tokenizer

import "unicode/utf8"

// wordPiece is Hugging Face's WordPiece model: greedy longest-match-first
// with a continuing-subword prefix, the whole word becoming [UNK] when any
// part cannot be matched.
type wordPiece struct {
	vocab    map[string]uint32
	vocabR   []string
	unkID    uint32
	hasUnk   bool
	prefix   string
	maxChars int
}

func (m *wordPiece) encodeWord(w string, out []uint32) []uint32 {
	if len(w) == 0 {
		return out
	}
	if utf8.RuneCountInString(w) > m.maxChars {
		if m.hasUnk {
			out = append(out, m.unkID)
		}
		return out
	}
	mark := len(out)
	var buf []byte
	for start := 0; start < len(w); {
		end := len(w)
		found := false
		var id uint32
		for start < end {
			var ok bool
			if start > 0 {
				buf = append(append(buf[:0], m.prefix...), w[start:end]...)
				id, ok = m.vocab[string(buf)]
			} else {
				id, ok = m.vocab[w[start:end]]
			}
			if ok {
				found = true
				break
			}
			_, n := utf8.DecodeLastRuneInString(w[start:end])
			end -= n
		}
		if !found {
			out = out[:mark]
			if m.hasUnk {
				out = append(out, m.unkID)
			}
			return out
		}
		out = append(out, id)
		start = end
	}
	return out
}

// wordLevel maps each word to its id, or to the unknown token.
type wordLevel struct {
	vocab  map[string]uint32
	vocabR []string
	unkID  uint32
	hasUnk bool
}

func (m *wordLevel) encodeWord(w string, out []uint32) []uint32 {
	if len(w) == 0 {
		return out
	}
	if id, ok := m.vocab[w]; ok {
		return append(out, id)
	}
	if m.hasUnk {
		out = append(out, m.unkID)
	}
	return out
}
