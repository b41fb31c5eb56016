package tokenizer

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// Extended grapheme cluster boundaries (UAX #29, Unicode 17.0), as the
// oracle's Precompiled normalizer finds them with Rust's
// unicode-segmentation 1.13: its tables are generated into
// grapheme_tables.go by oracle/grapheme_tables.js.

// graphemeCat merges Grapheme_Cluster_Break, Extended_Pictographic and
// Indic_Conjunct_Break=Consonant into one category per code point.
type graphemeCat uint8

const (
	gcOther graphemeCat = iota
	gcCR
	gcLF
	gcControl
	gcExtend
	gcZWJ
	gcRI
	gcPrepend
	gcSpacingMark
	gcL
	gcV
	gcT
	gcLV
	gcLVT
	gcExtPict
	gcInCBConsonant
)

type graphemeRange struct {
	lo, hi rune
	cat    graphemeCat
}

func graphemeCatOf(r rune) graphemeCat {
	if r < 0x7f {
		switch {
		case r == '\r':
			return gcCR
		case r == '\n':
			return gcLF
		case r < 0x20:
			return gcControl
		}
		return gcOther
	}
	i := sort.Search(len(graphemeRanges), func(i int) bool { return graphemeRanges[i].hi >= r })
	if i < len(graphemeRanges) && graphemeRanges[i].lo <= r {
		return graphemeRanges[i].cat
	}
	return gcOther
}

// nextGrapheme returns the end of the extended grapheme cluster that starts
// at s[0] (len(s) when s is one cluster; 0 for an empty s).
func nextGrapheme(s string) int {
	if len(s) == 0 {
		return 0
	}
	r, n := utf8.DecodeRuneInString(s)
	if r < 0x80 && (len(s) == n || s[n] < 0x80) {
		// ASCII followed by ASCII: only CR LF joins.
		if r == '\r' && len(s) > 1 && s[1] == '\n' {
			return 2
		}
		return 1
	}
	prev := graphemeCatOf(r)
	// State for the rules that look further back than one character.
	riCount := 0 // regional indicators in a row ending at prev (GB12, GB13)
	if prev == gcRI {
		riCount = 1
	}
	emoji := prev == gcExtPict // ExtPict Extend* seen, ending at prev (GB11)
	emojiZWJ := false          // ... followed by ZWJ
	// GB9c: Consonant [Extend Linker]* with a Linker, ending at prev.
	incbConsonant := prev == gcInCBConsonant
	incbLinked := false
	i := n
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		cur := graphemeCatOf(r)
		if !graphemeJoins(prev, cur, riCount, emojiZWJ, incbConsonant && incbLinked) {
			return i
		}
		// Update the look-back state with cur.
		if cur == gcRI {
			riCount++
		} else {
			riCount = 0
		}
		switch {
		case cur == gcExtPict:
			emoji, emojiZWJ = true, false
		case cur == gcExtend && emoji && !emojiZWJ:
		case cur == gcZWJ && emoji && !emojiZWJ:
			emojiZWJ = true
		default:
			emoji, emojiZWJ = false, false
		}
		switch {
		case cur == gcInCBConsonant:
			incbConsonant, incbLinked = true, false
		case incbConsonant && unicode.Is(incbLinker, r):
			incbLinked = true
		case incbConsonant && unicode.Is(incbExtend, r):
		default:
			incbConsonant, incbLinked = false, false
		}
		prev = cur
		i += n
	}
	return len(s)
}

// graphemeJoins reports that no boundary falls between a character of
// category prev and one of category cur.
func graphemeJoins(prev, cur graphemeCat, riCount int, emojiZWJ, incbLinked bool) bool {
	switch {
	case prev == gcCR && cur == gcLF: // GB3
		return true
	case prev == gcControl || prev == gcCR || prev == gcLF: // GB4
		return false
	case cur == gcControl || cur == gcCR || cur == gcLF: // GB5
		return false
	case prev == gcL && (cur == gcL || cur == gcV || cur == gcLV || cur == gcLVT): // GB6
		return true
	case (prev == gcLV || prev == gcV) && (cur == gcV || cur == gcT): // GB7
		return true
	case (prev == gcLVT || prev == gcT) && cur == gcT: // GB8
		return true
	case cur == gcExtend || cur == gcZWJ: // GB9
		return true
	case cur == gcSpacingMark: // GB9a
		return true
	case prev == gcPrepend: // GB9b
		return true
	case cur == gcInCBConsonant: // GB9c
		return incbLinked
	case prev == gcZWJ && cur == gcExtPict: // GB11
		return emojiZWJ
	case prev == gcRI && cur == gcRI: // GB12, GB13
		return riCount%2 == 1
	}
	return false // GB999
}
