package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Hand-written scanners for the split patterns of the common files. Each
// returns, for a position, the end of the match the regex would find there;
// these patterns match every character, so matches tile the input.
//
//	gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//	llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//	qwen:   the llama3 pattern with \p{N} instead of \p{N}{1,3}
//
// \s, \p{L} and \p{N} are the classes as the oracle's regex engine
// (Oniguruma, with its own Unicode version) matches them: hfSpace, hfLetter
// and hfNumber (unicode_hf.go, generated from the oracle).

const (
	patGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patQwen   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

const (
	clsOther uint8 = iota
	clsL
	clsN
	clsSpace
)

var asciiCls [utf8.RuneSelf]uint8

func init() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		asciiCls[r] = classify(r)
	}
}

func classify(r rune) uint8 {
	switch {
	case unicode.Is(hfLetter, r):
		return clsL
	case unicode.Is(hfNumber, r):
		return clsN
	case unicode.Is(hfSpace, r):
		return clsSpace
	}
	return clsOther
}

// at decodes the rune at i and its class.
func at(s string, i int) (rune, int, uint8) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1, asciiCls[c]
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return r, n, classify(r)
}

// runOf advances over characters of class c.
func runOf(s string, i int, c uint8) int {
	for i < len(s) {
		_, n, k := at(s, i)
		if k != c {
			break
		}
		i += n
	}
	return i
}

func runCRLF(s string, i int) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

type scanKind uint8

const (
	scanGPT2 scanKind = iota + 1
	scanLlama3
	scanQwen
)

func scanKindOf(pattern string) scanKind {
	switch pattern {
	case patGPT2:
		return scanGPT2
	case patLlama3:
		return scanLlama3
	case patQwen:
		return scanQwen
	}
	return 0
}

func (k scanKind) String() string {
	switch k {
	case scanGPT2:
		return "gpt2"
	case scanLlama3:
		return "llama3"
	case scanQwen:
		return "qwen"
	}
	return "?"
}

// next returns the end of the match starting at i (i < len(s)).
func (k scanKind) next(s string, i int) int {
	if k == scanGPT2 {
		return nextGPT2(s, i)
	}
	return nextLlama3(s, i, k == scanLlama3)
}

// whitespaceEnd implements \s+(?!\S)|\s+ for a whitespace run starting at i.
func whitespaceEnd(s string, i int) int {
	j, last := i, i
	for j < len(s) {
		_, n, k := at(s, j)
		if k != clsSpace {
			break
		}
		last = j
		j += n
	}
	if j == len(s) || last == i {
		return j
	}
	return last
}

func nextGPT2(s string, i int) int {
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	r, n, c := at(s, i)
	if r == ' ' && i+1 < len(s) {
		_, n2, c2 := at(s, i+1)
		if c2 != clsSpace {
			return runOf(s, i+1+n2, c2)
		}
	}
	if c != clsSpace {
		return runOf(s, i+n, c)
	}
	return whitespaceEnd(s, i)
}

// foldContraction case-folds the letters of the contractions as (?i) does:
// ASCII letters and ſ (which folds to s).
func foldContraction(s string, i int) (rune, int) {
	if i >= len(s) {
		return 0, 0
	}
	c := s[i]
	if c < utf8.RuneSelf {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return rune(c), 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == 'ſ' {
		return 's', n
	}
	return r, n
}

func nextLlama3(s string, i int, threeDigits bool) int {
	if s[i] == '\'' {
		r1, n1 := foldContraction(s, i+1)
		switch r1 {
		case 's', 't', 'm', 'd':
			return i + 1 + n1
		case 'r', 'v', 'l':
			r2, n2 := foldContraction(s, i+1+n1)
			if (r1 != 'l' && r2 == 'e') || (r1 == 'l' && r2 == 'l') {
				return i + 1 + n1 + n2
			}
		}
	}
	r, n, c := at(s, i)
	if c == clsL {
		return runOf(s, i+n, clsL)
	}
	if c != clsN && r != '\r' && r != '\n' && i+n < len(s) {
		if _, n2, c2 := at(s, i+n); c2 == clsL {
			return runOf(s, i+n+n2, clsL)
		}
	}
	if c == clsN {
		if !threeDigits {
			return i + n
		}
		j := i + n
		for k := 1; k < 3 && j < len(s); k++ {
			_, n2, c2 := at(s, j)
			if c2 != clsN {
				break
			}
			j += n2
		}
		return j
	}
	if r == ' ' && i+1 < len(s) {
		if _, n2, c2 := at(s, i+1); c2 == clsOther {
			return runCRLF(s, runOf(s, i+1+n2, clsOther))
		}
	}
	if c == clsOther {
		return runCRLF(s, runOf(s, i+n, clsOther))
	}
	// Whitespace: \s*[\r\n]+ ends after the run's last CR/LF, if any.
	j, lastNL := i, -1
	for j < len(s) {
		_, n2, k := at(s, j)
		if k != clsSpace {
			break
		}
		if s[j] == '\r' || s[j] == '\n' {
			lastNL = j
		}
		j += n2
	}
	if lastNL >= 0 {
		return lastNL + 1
	}
	return whitespaceEnd(s, i)
}
