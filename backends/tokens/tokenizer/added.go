package tokenizer

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's added_tokens.
type addedToken struct {
	content     string
	id          uint32
	special     bool
	singleWord  bool
	lstrip      bool
	rstrip      bool
	normalized  bool
	matchString string // content, normalized when normalized is set
}

// trie finds added tokens leftmost-longest, like the Aho-Corasick automaton
// (MatchKind::LeftmostLongest) Hugging Face uses.
type trie struct {
	nodes []trieNode
	first [256]bool // bytes that start some token
	empty bool
}

type trieNode struct {
	next  map[byte]int32
	token int32 // index into tokens, -1 if none
}

func newTrie(tokens []*addedToken) *trie {
	t := &trie{nodes: []trieNode{{token: -1}}, empty: true}
	for i, tok := range tokens {
		s := tok.matchString
		if s == "" {
			continue
		}
		t.empty = false
		t.first[s[0]] = true
		n := int32(0)
		for k := 0; k < len(s); k++ {
			nx, ok := t.nodes[n].next[s[k]]
			if !ok {
				if t.nodes[n].next == nil {
					t.nodes[n].next = map[byte]int32{}
				}
				nx = int32(len(t.nodes))
				t.nodes[n].next[s[k]] = nx
				t.nodes = append(t.nodes, trieNode{token: -1})
			}
			n = nx
		}
		if t.nodes[n].token < 0 {
			t.nodes[n].token = int32(i)
		}
	}
	return t
}

// longestAt returns the longest token matching at s[i:], or -1.
func (t *trie) longestAt(s string, i int) (tok int32, end int) {
	tok, end = -1, -1
	n := int32(0)
	for k := i; k < len(s); k++ {
		nx, ok := t.nodes[n].next[s[k]]
		if !ok {
			break
		}
		n = nx
		if t.nodes[n].token >= 0 {
			tok, end = t.nodes[n].token, k+1
		}
	}
	return tok, end
}

// addedVocab holds the added tokens and their two matchers: tokens matched
// on the raw text (normalized: false) and on normalized text.
type addedVocab struct {
	tokens  []*addedToken
	byID    map[uint32]*addedToken
	byText  map[string]*addedToken
	raw     *trie
	rawToks []*addedToken
	norm    *trie
	normTok []*addedToken
}

func newAddedVocab(tokens []*addedToken, n normalizer) *addedVocab {
	v := &addedVocab{tokens: tokens, byID: map[uint32]*addedToken{}, byText: map[string]*addedToken{}}
	for _, t := range tokens {
		v.byID[t.id] = t
		v.byText[t.content] = t
		if t.normalized {
			t.matchString = t.content
			if n != nil {
				t.matchString = n.normalize(t.content)
			}
			v.normTok = append(v.normTok, t)
		} else {
			t.matchString = t.content
			v.rawToks = append(v.rawToks, t)
		}
	}
	v.raw = newTrie(v.rawToks)
	v.norm = newTrie(v.normTok)
	return v
}

// segment is a piece of input: either an added token (tok != nil) or text.
type segment struct {
	start, end int
	tok        *addedToken
}

// findMatches is Hugging Face's AddedVocabulary::find_matches: it walks the
// leftmost-longest matches; a match that fails single_word, or a special
// token when special tokens are not split, is dropped without rescanning
// the text it covered; lstrip/rstrip widen a match over adjacent
// whitespace. Segments cover s.
func findMatches(s string, t *trie, toks []*addedToken, splitSpecial bool, out []segment) []segment {
	if t.empty {
		return append(out, segment{0, len(s), nil})
	}
	startOffset := 0
	for i := 0; i < len(s); {
		if !t.first[s[i]] {
			i++
			continue
		}
		ti, end := t.longestAt(s, i)
		if ti < 0 {
			i++
			continue
		}
		tok := toks[ti]
		start, stop := i, end
		i = end
		if tok.special && !splitSpecial {
			continue
		}
		if tok.singleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.lstrip {
			ns := leftmostSpaceAtEnd(s[:start])
			start = max(ns, startOffset)
		}
		if tok.rstrip {
			stop += rightmostSpaceAtStart(s[stop:])
			i = stop
		}
		if start > startOffset {
			out = append(out, segment{startOffset, start, nil})
		}
		out = append(out, segment{start, stop, tok})
		startOffset = stop
	}
	if startOffset != len(s) {
		out = append(out, segment{startOffset, len(s), nil})
	}
	return out
}

// isWordRune is the regex crate's Unicode \w.
func isWordRune(r rune) bool { return isWordChar(r) }

func endsWithWord(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordRune(r)
}

func leftmostSpaceAtEnd(s string) int {
	i := len(s)
	for i > 0 {
		r, n := utf8.DecodeLastRuneInString(s[:i])
		if !unicode.IsSpace(r) {
			break
		}
		i -= n
	}
	return i
}

func rightmostSpaceAtStart(s string) int {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += n
	}
	return i
}

func (v *addedVocab) sortedIDs() []uint32 {
	ids := make([]uint32, 0, len(v.byID))
	for id := range v.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
