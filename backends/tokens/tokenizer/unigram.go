package tokenizer

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// unigram is Hugging Face's Unigram model (SentencePiece's unigram language
// model: T5, mT5, XLM-R, ALBERT files). A word is split by Viterbi over the
// lattice of vocabulary pieces that match at each character, maximising the
// sum of piece scores; a character with no one-character piece gets an
// unknown node scored min(score) - 10. Consecutive unknown pieces are fused
// into one (Hugging Face always fuses them for Unigram); a fused unknown
// piece is looked up as a token, then split into <0xXX> byte pieces when
// byte_fallback is on and all of them exist, else becomes unk_id.
type unigram struct {
	vocab        map[string]uint32 // token -> id (the last id of a repeated token)
	vocabR       []string          // id -> token
	scores       []float64         // id -> score
	unkID        uint32
	hasUnk       bool
	byteFallback bool
	fallback     [256]uint32
	fallbackOK   bool
	minScore     float64
	trie         byteTrie
}

// unkPenalty is Hugging Face's K_UNK_PENALTY.
const unkPenalty = 10.0

func newUnigram(pieces []string, scores []float64, unkID int, hasUnk, byteFallback bool) *unigram {
	m := &unigram{
		vocab:        make(map[string]uint32, len(pieces)),
		vocabR:       pieces,
		scores:       scores,
		unkID:        uint32(unkID),
		hasUnk:       hasUnk,
		byteFallback: byteFallback,
		minScore:     math.Inf(1),
	}
	for id, p := range pieces {
		m.vocab[p] = uint32(id)
		m.minScore = min(m.minScore, scores[id])
	}
	for id, p := range pieces {
		if m.vocab[p] == uint32(id) && p != "" {
			m.trie.insert(p, uint32(id))
		}
	}
	m.trie.finish()
	m.fallbackOK = true
	for b := 0; b < 256; b++ {
		id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]
		if !ok {
			m.fallbackOK = false
			break
		}
		m.fallback[b] = id
	}
	return m
}

// viterbiNode is the best path ending at a byte position.
type viterbiNode struct {
	score float64
	start int32 // -1: not reached
	id    int32 // -1: unknown without unk_id
}

// uniScratch holds a word's lattice; it is reused across words.
type uniScratch struct {
	best []viterbiNode
	segs []int32 // start, end, id triples, in reverse order
}

// encodeWord appends the ids of one pre-tokenized word (Hugging Face's
// Unigram::encode_optimized, then tokenize).
func (m *unigram) encodeWord(w string, sc *uniScratch, out []uint32) []uint32 {
	if len(w) == 0 {
		return out
	}
	n := len(w)
	if cap(sc.best) < n+1 {
		sc.best = make([]viterbiNode, n+1)
	}
	best := sc.best[:n+1]
	for i := range best {
		best[i] = viterbiNode{start: -1}
	}
	best[0].start = 0
	unkScore := m.minScore - unkPenalty
	unkID := int32(-1)
	if m.hasUnk {
		unkID = int32(m.unkID)
	}
	for pos := 0; pos < n; {
		mblen := 1
		if w[pos] >= utf8.RuneSelf {
			_, mblen = utf8.DecodeRuneInString(w[pos:])
		}
		here := best[pos].score
		single := false
		m.trie.prefixes(w[pos:], func(length int, id uint32) {
			t := &best[pos+length]
			cand := m.scores[id] + here
			if t.start < 0 || cand > t.score {
				t.score, t.start, t.id = cand, int32(pos), int32(id)
			}
			if length == mblen {
				single = true
			}
		})
		if !single {
			t := &best[pos+mblen]
			cand := unkScore + here
			if t.start < 0 || cand > t.score {
				t.score, t.start, t.id = cand, int32(pos), unkID
			}
		}
		pos += mblen
	}
	// Backtrack, fusing runs of unknown nodes.
	segs := sc.segs[:0]
	for end := n; end > 0; {
		nd := best[end]
		start := int(nd.start)
		if nd.id == unkID && len(segs) > 0 && segs[len(segs)-1] == unkID && segs[len(segs)-3] == int32(end) {
			segs[len(segs)-3] = int32(start)
		} else {
			segs = append(segs, int32(start), int32(end), nd.id)
		}
		end = start
	}
	sc.segs = segs
	for k := len(segs) - 3; k >= 0; k -= 3 {
		start, end, id := segs[k], segs[k+1], segs[k+2]
		if id != unkID {
			out = append(out, uint32(id))
			continue
		}
		piece := w[start:end]
		if tid, ok := m.vocab[piece]; ok {
			out = append(out, tid)
			continue
		}
		if m.byteFallback && m.fallbackOK {
			for i := 0; i < len(piece); i++ {
				out = append(out, m.fallback[piece[i]])
			}
			continue
		}
		if m.hasUnk {
			out = append(out, m.unkID)
		}
		// Without unk_id Hugging Face fails the whole encode; the piece
		// is dropped here.
	}
	return out
}

// byteTrie is a trie over UTF-8 bytes for common-prefix search: nodes keep
// their children as a sorted run of edges.
type byteTrie struct {
	root  [256]int32    // first-level child (0: none)
	nodes []uniTrieNode // nodes[0] unused
	edges []uniTrieEdge
	// built holds children while inserting; finish() packs them into edges.
	build [][]uniTrieEdge
}

type uniTrieNode struct {
	id           int32 // token id ending here, -1 if none
	edgeLo, edge int32 // children are edges[edgeLo:edge]
}

type uniTrieEdge struct {
	label byte
	child int32
}

func (t *byteTrie) newNode() int32 {
	if len(t.nodes) == 0 {
		t.nodes = append(t.nodes, uniTrieNode{id: -1})
		t.build = append(t.build, nil)
	}
	t.nodes = append(t.nodes, uniTrieNode{id: -1})
	t.build = append(t.build, nil)
	return int32(len(t.nodes) - 1)
}

func (t *byteTrie) insert(key string, id uint32) {
	cur := t.root[key[0]]
	if cur == 0 {
		cur = t.newNode()
		t.root[key[0]] = cur
	}
	for i := 1; i < len(key); i++ {
		c := key[i]
		next := int32(0)
		for _, e := range t.build[cur] {
			if e.label == c {
				next = e.child
				break
			}
		}
		if next == 0 {
			next = t.newNode()
			t.build[cur] = append(t.build[cur], uniTrieEdge{c, next})
		}
		cur = next
	}
	t.nodes[cur].id = int32(id)
}

// finish packs the children of every node into one sorted edge array.
func (t *byteTrie) finish() {
	total := 0
	for _, b := range t.build {
		total += len(b)
	}
	t.edges = make([]uniTrieEdge, 0, total)
	for i, b := range t.build {
		for j := 1; j < len(b); j++ {
			for k := j; k > 0 && b[k].label < b[k-1].label; k-- {
				b[k], b[k-1] = b[k-1], b[k]
			}
		}
		t.nodes[i].edgeLo = int32(len(t.edges))
		t.edges = append(t.edges, b...)
		t.nodes[i].edge = int32(len(t.edges))
	}
	t.build = nil
}

// prefixes calls fn(length, id) for every vocabulary token that is a prefix
// of s, shortest first.
func (t *byteTrie) prefixes(s string, fn func(length int, id uint32)) {
	cur := t.root[s[0]]
	if cur == 0 {
		return
	}
	for i := 1; ; i++ {
		nd := &t.nodes[cur]
		if nd.id >= 0 {
			fn(i, uint32(nd.id))
		}
		if i == len(s) {
			return
		}
		c := s[i]
		lo, hi := int(nd.edgeLo), int(nd.edge)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if t.edges[mid].label < c {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo == int(nd.edge) || t.edges[lo].label != c {
			return
		}
		cur = t.edges[lo].child
	}
}
