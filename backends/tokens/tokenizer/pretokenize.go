package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// emitFunc receives one piece; first reports that the piece starts at offset
// 0 of the original input (Metaspace's prepend_scheme "first" needs it).
type emitFunc func(piece string, first bool)

// preTokenizer splits a normalized piece into words for the model.
type preTokenizer interface {
	split(s string, first bool, emit emitFunc)
	describe() string
}

// behavior is Hugging Face's SplitDelimiterBehavior.
type behavior uint8

const (
	behRemoved behavior = iota
	behIsolated
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

var behaviorNames = map[string]behavior{
	"Removed": behRemoved, "Isolated": behIsolated, "MergedWithPrevious": behMergedWithPrevious,
	"MergedWithNext": behMergedWithNext, "Contiguous": behContiguous,
}

func (b behavior) String() string {
	for k, v := range behaviorNames {
		if v == b {
			return k
		}
	}
	return "?"
}

type span struct {
	s, e  int
	match bool
}

// splitSpans turns the (offsets, is_match) list into pieces as Hugging
// Face's NormalizedString::split does, then emits the non-empty ones.
func splitSpans(s string, first bool, spans []span, beh behavior, invert bool, emit emitFunc) {
	if invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	type piece struct {
		s, e   int
		remove bool
	}
	var pieces []piece
	switch beh {
	case behIsolated:
		for _, sp := range spans {
			pieces = append(pieces, piece{sp.s, sp.e, false})
		}
	case behRemoved:
		for _, sp := range spans {
			pieces = append(pieces, piece{sp.s, sp.e, sp.match})
		}
	case behMergedWithPrevious:
		prev := false
		for _, sp := range spans {
			if sp.match && !prev && len(pieces) > 0 {
				pieces[len(pieces)-1].e = sp.e
			} else {
				pieces = append(pieces, piece{sp.s, sp.e, false})
			}
			prev = sp.match
		}
	case behMergedWithNext:
		prev := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prev && len(pieces) > 0 {
				pieces[len(pieces)-1].s = sp.s
			} else {
				pieces = append(pieces, piece{sp.s, sp.e, false})
			}
			prev = sp.match
		}
		for i, j := 0, len(pieces)-1; i < j; i, j = i+1, j-1 {
			pieces[i], pieces[j] = pieces[j], pieces[i]
		}
	case behContiguous:
		prev := false
		for i, sp := range spans {
			if i > 0 && sp.match == prev {
				pieces[len(pieces)-1].e = sp.e
			} else {
				pieces = append(pieces, piece{sp.s, sp.e, false})
			}
			prev = sp.match
		}
	}
	for _, p := range pieces {
		if !p.remove && p.e > p.s {
			emit(s[p.s:p.e], first && p.s == 0)
		}
	}
}

// matchSpans covers s with alternating gaps and matches.
func matchSpans(s string, find func(s string, yield func(a, b int))) []span {
	var spans []span
	prev := 0
	find(s, func(a, b int) {
		if a > prev {
			spans = append(spans, span{prev, a, false})
		}
		spans = append(spans, span{a, b, true})
		prev = b
	})
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	return spans
}

// charSpans makes every character satisfying pred its own match.
func charSpans(s string, pred func(rune) bool) []span {
	return matchSpans(s, func(s string, yield func(a, b int)) {
		for i, r := range s {
			if pred(r) {
				yield(i, i+utf8.RuneLen(r))
			}
		}
	})
}

// splitPT is the Split pre-tokenizer: a literal or regex pattern with a
// delimiter behavior. Known regexes use a hand-written scanner.
type splitPT struct {
	literal string
	re      *regexp2.Regexp
	fast    scanKind
	beh     behavior
	invert  bool
	src     string
}

func (p *splitPT) find(s string, yield func(a, b int)) {
	switch {
	case p.fast != 0:
		for i := 0; i < len(s); {
			e := p.fast.next(s, i)
			yield(i, e)
			i = e
		}
	case p.re != nil:
		regexFind(p.re, s, yield)
	default:
		if p.literal == "" {
			return
		}
		for i := 0; i <= len(s); {
			j := strings.Index(s[i:], p.literal)
			if j < 0 {
				return
			}
			yield(i+j, i+j+len(p.literal))
			i += j + len(p.literal)
		}
	}
}

func (p *splitPT) split(s string, first bool, emit emitFunc) {
	if p.fast != 0 && p.beh == behIsolated && !p.invert {
		// The scanner's matches tile the input: each match is a piece.
		for i := 0; i < len(s); {
			e := p.fast.next(s, i)
			emit(s[i:e], first && i == 0)
			i = e
		}
		return
	}
	splitSpans(s, first, matchSpans(s, p.find), p.beh, p.invert, emit)
}

func (p *splitPT) describe() string {
	how := "regexp2"
	if p.fast != 0 {
		how = "fast " + p.fast.String() + " scanner"
	} else if p.re == nil {
		how = "literal"
	}
	return fmt.Sprintf("Split(%s, %s, invert=%v, %s)", quote(p.src), p.beh, p.invert, how)
}

// regexFind yields byte offsets of successive regexp2 matches (regexp2
// reports rune indices).
func regexFind(re *regexp2.Regexp, s string, yield func(a, b int)) {
	m, err := re.FindStringMatch(s)
	if err != nil || m == nil {
		return
	}
	// Rune index -> byte offset, built lazily for non-ASCII input.
	var offs []int
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		offs = make([]int, 0, len(s)+1)
		for i := range s {
			offs = append(offs, i)
		}
		offs = append(offs, len(s))
	}
	conv := func(r int) int {
		if ascii {
			return r
		}
		return offs[r]
	}
	for m != nil {
		a := conv(m.Index)
		b := conv(m.Index + m.Length)
		yield(a, b)
		m, err = re.FindNextMatch(m)
		if err != nil {
			return
		}
	}
}

// byteLevelPT is the ByteLevel pre-tokenizer. transform is false in byte
// mode, where the BPE model consumes raw bytes directly.
type byteLevelPT struct {
	addPrefixSpace bool
	useRegex       bool
	transform      bool
}

func (p *byteLevelPT) split(s string, first bool, emit emitFunc) {
	if p.addPrefixSpace && s != "" && s[0] != ' ' {
		s = " " + s
	}
	out := func(w string, f bool) {
		if p.transform {
			w = toByteLevel(w)
		}
		emit(w, f)
	}
	if !p.useRegex {
		if s != "" {
			out(s, first)
		}
		return
	}
	for i := 0; i < len(s); {
		e := nextGPT2(s, i)
		out(s[i:e], first && i == 0)
		i = e
	}
}

func (p *byteLevelPT) describe() string {
	return fmt.Sprintf("ByteLevel(add_prefix_space=%v, use_regex=%v)", p.addPrefixSpace, p.useRegex)
}

// metaspacePT replaces spaces with the replacement character (▁), may
// prepend one, and may split before each one.
type metaspacePT struct {
	repl    rune
	replStr string
	scheme  string // always, first, never
	split_  bool
}

func (p *metaspacePT) split(s string, first bool, emit emitFunc) {
	if s == "" {
		return
	}
	s = strings.ReplaceAll(s, " ", p.replStr)
	if (p.scheme == "always" || (p.scheme == "first" && first)) && !strings.HasPrefix(s, p.replStr) {
		s = p.replStr + s
	}
	if !p.split_ {
		emit(s, first)
		return
	}
	splitSpans(s, first, charSpans(s, func(r rune) bool { return r == p.repl }), behMergedWithNext, false, emit)
}

func (p *metaspacePT) describe() string {
	return fmt.Sprintf("Metaspace(%q, prepend_scheme=%s, split=%v)", p.replStr, p.scheme, p.split_)
}

// bertPT splits on whitespace and isolates punctuation.
type bertPT struct{}

// isBertPunct is ASCII punctuation or, above ASCII, punctuation in the
// oracle's (older) Unicode tables: hfPunct.
func isBertPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return unicode.Is(hfPunct, r)
}

func (bertPT) split(s string, first bool, emit emitFunc) {
	splitSpans(s, first, charSpans(s, unicode.IsSpace), behRemoved, false, func(w string, f bool) {
		splitSpans(w, f, charSpans(w, isBertPunct), behIsolated, false, emit)
	})
}
func (bertPT) describe() string { return "BertPreTokenizer" }

// whitespacePT is \w+|[^\w\s]+.
type whitespacePT struct{}

func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Nl, r) ||
		unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

func (whitespacePT) split(s string, first bool, emit emitFunc) {
	spans := matchSpans(s, func(s string, yield func(a, b int)) {
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			switch {
			case isWordChar(r):
				j := i + n
				for j < len(s) {
					r2, n2 := utf8.DecodeRuneInString(s[j:])
					if !isWordChar(r2) {
						break
					}
					j += n2
				}
				yield(i, j)
				i = j
			case !unicode.IsSpace(r):
				j := i + n
				for j < len(s) {
					r2, n2 := utf8.DecodeRuneInString(s[j:])
					if isWordChar(r2) || unicode.IsSpace(r2) {
						break
					}
					j += n2
				}
				yield(i, j)
				i = j
			default:
				i += n
			}
		}
	})
	splitSpans(s, first, spans, behRemoved, true, emit)
}
func (whitespacePT) describe() string { return "Whitespace" }

type whitespaceSplitPT struct{}

func (whitespaceSplitPT) split(s string, first bool, emit emitFunc) {
	splitSpans(s, first, charSpans(s, unicode.IsSpace), behRemoved, false, emit)
}
func (whitespaceSplitPT) describe() string { return "WhitespaceSplit" }

type punctuationPT struct{ beh behavior }

func (p punctuationPT) split(s string, first bool, emit emitFunc) {
	splitSpans(s, first, charSpans(s, isBertPunct), p.beh, false, emit)
}
func (p punctuationPT) describe() string { return "Punctuation(" + p.beh.String() + ")" }

type digitsPT struct{ individual bool }

func (p digitsPT) split(s string, first bool, emit emitFunc) {
	beh := behContiguous
	if p.individual {
		beh = behIsolated
	}
	splitSpans(s, first, charSpans(s, unicode.IsNumber), beh, false, emit)
}
func (p digitsPT) describe() string { return fmt.Sprintf("Digits(individual=%v)", p.individual) }

// runPre feeds s through a chain of pre-tokenizers.
func runPre(chain []preTokenizer, s string, first bool, emit emitFunc) {
	switch len(chain) {
	case 0:
		if s != "" {
			emit(s, first)
		}
	case 1:
		chain[0].split(s, first, emit)
	default:
		rest := chain[1:]
		chain[0].split(s, first, func(w string, f bool) { runPre(rest, w, f, emit) })
	}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
