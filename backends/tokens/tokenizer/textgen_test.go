package tokenizer

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// textGen makes adversarial text for the differential fuzzer: runs of code
// points from every Unicode general category and every script, combining
// marks on letters, variation selectors, unassigned and private-use code
// points, emoji sequences, special-token look-alikes, mixed with digits,
// spaces and punctuation. The same random source gives the same text.
type textGen struct {
	cats    []runeClass // one per general category (Cs excluded: not valid UTF-8)
	scripts []runeClass
	marks   []rune // Mn and Me
	// compat: code points of at most 3 bytes that NFKC rewrites (keys of
	// SentencePiece's nmt_nfkc map, whose short grapheme clusters the
	// Precompiled normalizer replaces whole); prepend: Grapheme_Cluster_Break
	// Prepend characters.
	compat, prepend []rune
}

type runeClass struct {
	name  string
	runes []rune
}

var textGenerator = sync.OnceValue(func() *textGen {
	g := &textGen{}
	names := make([]string, 0, len(unicode.Categories))
	for n := range unicode.Categories {
		if len(n) == 2 && n != "Cs" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		g.cats = append(g.cats, runeClass{n, tableRunes(unicode.Categories[n])})
	}
	names = names[:0]
	for n := range unicode.Scripts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g.scripts = append(g.scripts, runeClass{n, tableRunes(unicode.Scripts[n])})
	}
	g.marks = append(tableRunes(unicode.Mn), tableRunes(unicode.Me)...)
	for c := rune(0xa0); c < 0x10000; c++ {
		if (c < 0xd800 || c > 0xdfff) && norm.NFKC.String(string(c)) != string(c) {
			g.compat = append(g.compat, c)
		}
	}
	for _, gr := range graphemeRanges {
		if gr.cat == gcPrepend {
			for c := gr.lo; c <= gr.hi; c++ {
				g.prepend = append(g.prepend, c)
			}
		}
	}
	return g
})

func tableRunes(t *unicode.RangeTable) []rune {
	var out []rune
	for _, r := range t.R16 {
		for c := rune(r.Lo); c <= rune(r.Hi); c += rune(r.Stride) {
			out = append(out, c)
		}
	}
	for _, r := range t.R32 {
		for c := rune(r.Lo); c <= rune(r.Hi); c += rune(r.Stride) {
			out = append(out, c)
		}
	}
	return out
}

var (
	genSpaces = []string{" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\v", "\f", "\u00a0", "\u3000", "\u2028",
		"\u2029", "\u1680", "\u2000", "\u2009", "\u202f", "\u205f", "\u0085", "\u200b", "\u200c", "\u200d", "\ufeff", "\u180e"}
	genPunct = []string{".", ",", "!", "?", "...", "'", "\"", "-", "--", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\",
		"@", "#", "$", "%", "^", "&", "*", "_", "=", "+", "|", "~", "`", ";", ":", "’", "“", "”", "«", "»", "—", "…",
		"。", "、", "！", "？", "¿", "¡", "·", "•", "§", "¶", "†", "‰"}
	genWords = []string{"the", "The", "THE", "a", "I", "hello", "world", "don't", "it's", "I'LL", "'s", "'t", "'re", "'ve",
		"'m", "'ll", "'d", "'S", "'D", "x", "ab", "naïve", "Straße", "İ", "ǅ", "ﬁ", "ß", "ΣΑΣ", "ς", "\u0130i\u0307"}
	genSpecial = []string{"<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>",
		"<unk>", "<pad>", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "[INST]", "<|", "|>", "<s", "▁", "▁▁", "##", "<0x41>",
		"<think>", "<BOS_TOKEN>", "<mask>", "<extra_id_0>"}
	genEmoji = []string{"😀", "👍🏽", "👨\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "🇫🇷", "❤\ufe0f", "☺\ufe0e", "#\ufe0f\u20e3",
		"🧑🏿\u200d💻", "🫠", "\U000e0067\U000e0062", "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"}
)

// text returns one string of 1–24 pieces.
func (g *textGen) text(r *rand.Rand) string {
	var b strings.Builder
	n := 1 + r.IntN(24)
	for i := 0; i < n; i++ {
		g.piece(r, &b)
	}
	return b.String()
}

func pickRune(r *rand.Rand, rs []rune) rune { return rs[r.IntN(len(rs))] }

func (g *textGen) piece(r *rand.Rand, b *strings.Builder) {
	run := func(rs []rune) {
		for k := 1 + r.IntN(5); k > 0; k-- {
			b.WriteRune(pickRune(r, rs))
		}
	}
	switch r.IntN(17) {
	case 0, 1: // a general category
		run(g.cats[r.IntN(len(g.cats))].runes)
	case 2, 3: // a script
		run(g.scripts[r.IntN(len(g.scripts))].runes)
	case 4: // combining marks on a letter of some script
		b.WriteRune(pickRune(r, g.scripts[r.IntN(len(g.scripts))].runes))
		for k := 1 + r.IntN(3); k > 0; k-- {
			b.WriteRune(pickRune(r, g.marks))
		}
	case 5: // variation selectors, after anything
		if r.IntN(2) == 0 {
			b.WriteRune(pickRune(r, g.cats[r.IntN(len(g.cats))].runes))
		}
		if r.IntN(3) == 0 {
			b.WriteRune(0xe0100 + rune(r.IntN(240)))
		} else {
			b.WriteRune(0xfe00 + rune(r.IntN(16)))
		}
	case 6: // unassigned or private use
		if r.IntN(2) == 0 {
			b.WriteRune(unassigned(r))
		} else {
			b.WriteRune([]rune{0xe000 + rune(r.IntN(0x1900)), 0xf0000 + rune(r.IntN(0xfffe)), 0x100000 + rune(r.IntN(0xfffe))}[r.IntN(3)])
		}
	case 7: // digits
		if r.IntN(3) == 0 {
			run(g.cats[slices.IndexFunc(g.cats, func(c runeClass) bool { return c.name == "Nd" })].runes)
		} else {
			for k := 1 + r.IntN(7); k > 0; k-- {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
	case 8, 9:
		b.WriteString(genSpaces[r.IntN(len(genSpaces))])
	case 10, 11:
		b.WriteString(genPunct[r.IntN(len(genPunct))])
	case 12, 13:
		b.WriteString(genWords[r.IntN(len(genWords))])
	case 14:
		b.WriteString(genEmoji[r.IntN(len(genEmoji))])
	case 15:
		b.WriteString(genSpecial[r.IntN(len(genSpecial))])
	case 16: // a short grapheme cluster led by a compatibility character
		switch r.IntN(4) {
		case 0: // then a mark, ZWJ, variation selector or spacing mark
			b.WriteRune(pickRune(r, g.compat))
			b.WriteRune([]rune{pickRune(r, g.marks), 0x200d, 0xfe0f, 0x0903, 0x0e33}[r.IntN(5)])
		case 1: // after a Prepend character
			b.WriteRune(pickRune(r, g.prepend))
			b.WriteRune([]rune{pickRune(r, g.compat), 'a', pickRune(r, g.marks), '\n'}[r.IntN(4)])
		case 2: // ASCII or a control, then a mark
			b.WriteRune([]rune{'a', ' ', '\t', '\r', '`', '\''}[r.IntN(6)])
			b.WriteRune(pickRune(r, g.marks))
		default:
			b.WriteString([]string{"\r\n", "``", "''", "\u00a0\u0301", "\uff21\u0308", "\u3131\u314f", "\u1100\u1161\u11a8"}[r.IntN(7)])
		}
	}
}

// unassigned returns a code point that Go's tables (Unicode 15) do not
// assign, mostly in the planes where scripts live.
func unassigned(r *rand.Rand) rune {
	for try := 0; try < 64; try++ {
		var c rune
		switch r.IntN(3) {
		case 0:
			c = rune(r.IntN(0x10000))
		case 1:
			c = 0x10000 + rune(r.IntN(0x20000))
		default:
			c = rune(r.IntN(utf8.MaxRune + 1))
		}
		if (c >= 0xd800 && c <= 0xdfff) || isAssigned(c) {
			continue
		}
		return c
	}
	return 0x0378 // unassigned in every Unicode version so far
}

func isAssigned(c rune) bool {
	for n, t := range unicode.Categories {
		if len(n) == 2 && unicode.Is(t, c) {
			return true
		}
	}
	return false
}

// bytesSource is a rand.Source reading a fuzzer's bytes, then a
// splitmix64 sequence seeded by them (never a constant stream, on which
// rand's rejection sampling would loop), so that a Go fuzz input maps to
// one generated text and mutations of the input mutate the text's
// structure.
type bytesSource struct {
	data []byte
	pos  int
	mix  uint64
}

func (s *bytesSource) Uint64() uint64 {
	if s.pos+8 <= len(s.data) {
		var v uint64
		for i := 0; i < 8; i++ {
			v = v<<8 | uint64(s.data[s.pos+i])
		}
		s.pos += 8
		s.mix ^= v
		return v
	}
	for ; s.pos < len(s.data); s.pos++ {
		s.mix = s.mix<<8 ^ s.mix>>56 ^ uint64(s.data[s.pos])
	}
	s.mix += 0x9e3779b97f4a7c15
	z := s.mix
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
