package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a piece of text before pre-tokenization. Hugging Face
// tracks alignments while normalizing; ids do not depend on them, so plain
// string rewriting suffices.
type normalizer interface {
	normalize(s string) string
	describe() string
}

type unicodeNorm struct {
	form norm.Form
	name string
}

func (n unicodeNorm) normalize(s string) string { return n.form.String(s) }
func (n unicodeNorm) describe() string          { return n.name }

type lowercase struct{}

func (lowercase) normalize(s string) string { return lowerString(s) }
func (lowercase) describe() string          { return "Lowercase" }

// lowerString lowercases char by char as Rust's char::to_lowercase (no
// final-sigma context; İ becomes "i̇").
func lowerString(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == 0x130 {
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

type strip struct{ left, right bool }

func (n strip) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}
func (strip) describe() string { return "Strip" }

type stripAccents struct{}

func (stripAccents) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}
func (stripAccents) describe() string { return "StripAccents" }

type prepend struct{ text string }

func (n prepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.text + s
}
func (n prepend) describe() string { return "Prepend(" + quote(n.text) + ")" }

type appendNorm struct{ text string }

func (n appendNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return s + n.text
}
func (n appendNorm) describe() string { return "Append(" + quote(n.text) + ")" }

// replace substitutes every non-overlapping match of a literal or a regex.
type replace struct {
	literal string
	re      *regexp2.Regexp
	content string
}

func (n replace) normalize(s string) string {
	if n.re == nil {
		if n.literal == "" {
			return s
		}
		return strings.ReplaceAll(s, n.literal, n.content)
	}
	out, err := n.re.Replace(s, strings.ReplaceAll(n.content, "$", "$$"), -1, -1)
	if err != nil {
		return s
	}
	return out
}
func (n replace) describe() string {
	if n.re != nil {
		return "Replace(/" + n.re.String() + "/ -> " + quote(n.content) + ")"
	}
	return "Replace(" + quote(n.literal) + " -> " + quote(n.content) + ")"
}

type byteLevelNorm struct{}

func (byteLevelNorm) normalize(s string) string { return toByteLevel(s) }
func (byteLevelNorm) describe() string          { return "ByteLevel" }

// bertNormalizer is BERT's cleanup: drop control characters, map
// whitespace to spaces, space out CJK ideographs, strip accents, lowercase.
type bertNormalizer struct {
	cleanText, chineseChars, stripAccents, lowercase bool
}

func (n bertNormalizer) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		if n.cleanText {
			if r == 0 || r == 0xFFFD || isBertControl(r) {
				continue
			}
			if isBertWhitespace(r) {
				r = ' '
			}
		}
		if n.chineseChars && isChineseChar(r) {
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	out := b.String()
	if n.stripAccents {
		out = stripAccents{}.normalize(norm.NFD.String(out))
	}
	if n.lowercase {
		out = lowerString(out)
	}
	return out
}
func (bertNormalizer) describe() string { return "BertNormalizer" }

func isBertWhitespace(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || unicode.IsSpace(r)
}

// isBertControl is Hugging Face's is_control: categories Cc, Cf, Cs, Co
// except tab, newline and carriage return. (Its comment mentions Cn, but
// unassigned code points are kept — checked against the oracle.)
func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

type normSequence []normalizer

func (n normSequence) normalize(s string) string {
	for _, x := range n {
		s = x.normalize(s)
	}
	return s
}
func (n normSequence) describe() string {
	parts := make([]string, len(n))
	for i, x := range n {
		parts[i] = x.describe()
	}
	return "Sequence[" + strings.Join(parts, ", ") + "]"
}
