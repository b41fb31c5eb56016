package eval

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parsePyLiteral parses a Python literal the way ast.literal_eval does for
// the values task templates produce: strings (single, double or triple
// quoted, with escapes and r/b/u prefixes), integers, floats, True, False,
// None, lists, tuples (as lists) and dicts. lm-eval renders doc_to_choice
// (and list-looking doc_to_target) templates to text and literal_evals them.
func parsePyLiteral(s string) (any, error) {
	p := &pyParser{s: s}
	p.space()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("python literal: unexpected %q at offset %d", p.rest(), p.i)
	}
	return v, nil
}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "…"
	}
	return r
}

func (p *pyParser) space() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\n\r", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *pyParser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("python literal: unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '[':
		return p.seq('[', ']')
	case c == '(':
		return p.seq('(', ')')
	case c == '{':
		return p.dict()
	case c == '\'' || c == '"':
		return p.str(false)
	case (c == 'r' || c == 'R' || c == 'u' || c == 'U' || c == 'b' || c == 'B') && p.i+1 < len(p.s) && (p.s[p.i+1] == '\'' || p.s[p.i+1] == '"'):
		raw := c == 'r' || c == 'R'
		p.i++
		return p.str(raw)
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	}
	for _, kw := range []struct {
		word string
		v    any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], kw.word) {
			p.i += len(kw.word)
			return kw.v, nil
		}
	}
	return nil, fmt.Errorf("python literal: unexpected %q at offset %d", p.rest(), p.i)
}

func (p *pyParser) seq(open, close byte) (any, error) {
	p.i++ // open
	out := []any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == close {
			p.i++
			return out, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("python literal: missing %q", close)
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case close:
			p.i++
			return out, nil
		default:
			return nil, fmt.Errorf("python literal: want ',' or %q at offset %d, got %q", close, p.i, p.rest())
		}
	}
}

func (p *pyParser) dict() (any, error) {
	p.i++
	out := map[string]any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return out, nil
		}
		k, err := p.value()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, fmt.Errorf("python literal: want ':' at offset %d", p.i)
		}
		p.i++
		p.space()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out[fmt.Sprint(k)] = v
		p.space()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("python literal: missing '}'")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return out, nil
		default:
			return nil, fmt.Errorf("python literal: want ',' or '}' at offset %d", p.i)
		}
	}
}

func (p *pyParser) str(raw bool) (any, error) {
	q := p.s[p.i]
	delim := string(q)
	if strings.HasPrefix(p.s[p.i:], strings.Repeat(delim, 3)) {
		delim = strings.Repeat(delim, 3)
	}
	p.i += len(delim)
	var b strings.Builder
	for {
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("python literal: unterminated string")
		}
		if strings.HasPrefix(p.s[p.i:], delim) {
			p.i += len(delim)
			return b.String(), nil
		}
		c := p.s[p.i]
		if c == '\n' && len(delim) == 1 {
			return nil, fmt.Errorf("python literal: newline in a single-quoted string")
		}
		if c != '\\' {
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			b.WriteRune(r)
			p.i += size
			continue
		}
		if p.i+1 >= len(p.s) {
			return nil, fmt.Errorf("python literal: trailing backslash")
		}
		e := p.s[p.i+1]
		if raw {
			b.WriteByte('\\')
			b.WriteByte(e)
			p.i += 2
			continue
		}
		p.i += 2
		switch e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := p.i - 1
			end := j
			for end < len(p.s) && end < j+3 && p.s[end] >= '0' && p.s[end] <= '7' {
				end++
			}
			n, _ := strconv.ParseUint(p.s[j:end], 8, 32)
			b.WriteRune(rune(n))
			p.i = end
		case 'x', 'u', 'U':
			width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if p.i+width > len(p.s) {
				return nil, fmt.Errorf("python literal: truncated \\%c escape", e)
			}
			n, err := strconv.ParseUint(p.s[p.i:p.i+width], 16, 32)
			if err != nil {
				return nil, fmt.Errorf("python literal: bad \\%c escape", e)
			}
			b.WriteRune(rune(n))
			p.i += width
		default:
			// Python keeps unknown escapes as written.
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
}

func (p *pyParser) number() (any, error) {
	j := p.i
	if p.s[j] == '-' || p.s[j] == '+' {
		j++
	}
	isFloat := false
	for j < len(p.s) {
		c := p.s[j]
		switch {
		case c >= '0' && c <= '9', c == '_':
		case c == '.' || c == 'e' || c == 'E':
			isFloat = true
		case (c == '-' || c == '+') && (p.s[j-1] == 'e' || p.s[j-1] == 'E'):
		default:
			goto done
		}
		j++
	}
done:
	lit := strings.ReplaceAll(p.s[p.i:j], "_", "")
	p.i = j
	if isFloat {
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return nil, fmt.Errorf("python literal: bad number %q", lit)
		}
		return f, nil
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("python literal: bad integer %q", lit)
	}
	return n, nil
}
