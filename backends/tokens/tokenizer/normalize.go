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

// normalize applies the form as the oracle's tables do: code points whose
// decomposition or combining class is newer than those tables (hfNormStale)
// are inert starters there, so the text is normalized piecewise around them.
func (n unicodeNorm) normalize(s string) string {
	if n.form.IsNormalString(s) {
		return s
	}
	stale := -1
	for i, r := range s {
		if r >= 0x7fd && unicode.Is(hfNormStale, r) {
			stale = i
			break
		}
	}
	if stale < 0 {
		return n.form.String(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	from := 0
	for i, r := range s[stale:] {
		i += stale
		if r >= 0x7fd && unicode.Is(hfNormStale, r) {
			b.WriteString(n.form.String(s[from:i]))
			b.WriteRune(r)
			from = i + utf8.RuneLen(r)
		}
	}
	b.WriteString(n.form.String(s[from:]))
	return b.String()
}
func (n unicodeNorm) describe() string { return n.name }

type lowercase struct{}

func (lowercase) normalize(s string) string { return lowerString(s) }
func (lowercase) describe() string          { return "Lowercase" }

// lowerString lowercases char by char as the oracle's char::to_lowercase
// (no final-sigma context; İ becomes "i̇"; hfLowerExceptions where its
// Unicode tables differ from Go's).
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
		if r >= 0x80 {
			if lc, ok := hfLowerExceptions[r]; ok {
				b.WriteString(lc)
				continue
			}
			if r == 0x130 {
				b.WriteString("i\u0307")
				continue
			}
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

// stripAccents removes combining marks (hfMark: the oracle's
// is_combining_mark).
type stripAccents struct{}

func (stripAccents) normalize(s string) string { return removeRunes(s, hfMark) }

func removeRunes(s string, t *unicode.RangeTable) string {
	return strings.Map(func(r rune) rune {
		if r >= 0x300 && unicode.Is(t, r) {
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
			if isBertControl(r) {
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
		// NFD, then drop non-spacing marks (hfMn), as the oracle's tables have them.
		out = removeRunes(unicodeNorm{form: norm.NFD}.normalize(out), hfMn)
	}
	if n.lowercase {
		out = lowerString(out)
	}
	return out
}
func (bertNormalizer) describe() string { return "BertNormalizer" }

// isBertWhitespace: the characters clean_text turns into a space (hfBertSpace,
// from the oracle).
func isBertWhitespace(r rune) bool {
	return r == ' ' || unicode.Is(hfBertSpace, r)
}

// isBertControl: the characters clean_text drops (hfControl, from the
// oracle: NUL, U+FFFD and Hugging Face's is_control, its Cc/Cf/Co tables
// being older than Go's).
func isBertControl(r rune) bool {
	return unicode.Is(hfControl, r)
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
