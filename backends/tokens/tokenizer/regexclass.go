package tokenizer

import "strings"

// hfRegex rewrites a tokenizer.json regex for regexp2 so that its Unicode
// category classes match what they match in the oracle, whose regex engine
// (Oniguruma) has a newer Unicode than Go's tables: each \p{X} gains the
// code points hfCatExtra lists for X (inside a class, appended to it;
// outside, as a class of its own). \P{X} outside a class becomes the
// complement of that class; inside a class it is left alone.
func hfRegex(pat string) string {
	if !strings.Contains(pat, `\p{`) && !strings.Contains(pat, `\P{`) {
		return pat
	}
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case c == '\\' && i+1 < len(pat):
			if (pat[i+1] == 'p' || pat[i+1] == 'P') && i+2 < len(pat) && pat[i+2] == '{' {
				end := strings.IndexByte(pat[i+3:], '}')
				if end >= 0 {
					name := pat[i+3 : i+3+end]
					esc := pat[i : i+3+end+1]
					extra, ok := hfCatExtra[name]
					switch {
					case !ok:
						b.WriteString(esc)
					case inClass && pat[i+1] == 'p':
						b.WriteString(esc)
						b.WriteString(extra)
					case inClass:
						b.WriteString(esc)
					case pat[i+1] == 'p':
						b.WriteString("[" + esc + extra + "]")
					default:
						b.WriteString(`[^\p{` + name + "}" + extra + "]")
					}
					i += 3 + end
					continue
				}
			}
			b.WriteByte(c)
			b.WriteByte(pat[i+1])
			i++
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' right after '[' or '[^' is a literal.
			if i+1 < len(pat) && pat[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(pat) && pat[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
