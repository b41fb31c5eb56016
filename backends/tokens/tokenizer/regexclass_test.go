package tokenizer

import (
	"testing"

	"github.com/dlclark/regexp2"
)

// TestHFRegex: category classes gain the code points the oracle's regex
// engine has and Go's tables lack (U+13DDD, an Egyptian hieroglyph of
// Unicode 16, is \p{Lo} and \p{L} there), inside and outside classes.
func TestHFRegex(t *testing.T) {
	const glyph = "\U00013ddd"
	for _, c := range []struct {
		pat, s string
		want   bool
	}{
		{`^\p{L}$`, glyph, true},
		{`^\p{Lo}$`, glyph, true},
		{`^[\p{Lu}\p{Lo}]$`, glyph, true},
		{`^[^\r\n\p{L}\p{N}]$`, glyph, false},
		{`^\P{L}$`, glyph, false},
		{`^\P{L}$`, "1", true},
		{`^[\]\p{L}]+$`, "]a" + glyph, true},
		{`^\\p{L}$`, `\p{L}`, true}, // an escaped backslash, not a class
		{`^\p{L}$`, "a", true},
		{`^\p{N}$`, "a", false},
	} {
		re := regexp2.MustCompile(hfRegex(c.pat), regexp2.None)
		if got, _ := re.MatchString(c.s); got != c.want {
			t.Errorf("%s (as %q) on %q: %v, want %v", c.pat, hfRegex(c.pat), c.s, got, c.want)
		}
	}
}
