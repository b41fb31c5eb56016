package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// precompiled is SentencePiece's compiled normalization map (the
// precompiled_charsmap of a .model file, base64 in tokenizer.json): a
// Darts-clone double-array trie over UTF-8 bytes whose values index a blob of
// NUL-terminated replacements. It rewrites text as Hugging Face's Precompiled
// normalizer (the spm_precompiled crate) does, which is not quite what
// SentencePiece does: the text is walked by extended grapheme cluster; a
// cluster shorter than 6 bytes whose leading bytes are a key is replaced
// whole by that key's replacement, taking the first (shortest) key found,
// not the longest; any other cluster is looked up character by character.
type precompiled struct {
	array      []uint32
	normalized string
	// ascii caches the replacement of each ASCII character (asciiOK: has one).
	ascii   [128]string
	asciiOK [128]bool
}

func parsePrecompiled(b64 string) (*precompiled, error) {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("precompiled_charsmap is not base64: %w", err)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("precompiled_charsmap has %d bytes, too short for its trie size", len(data))
	}
	trieSize := int(binary.LittleEndian.Uint32(data))
	if trieSize > len(data)-4 {
		return nil, fmt.Errorf("precompiled_charsmap: trie of %d bytes in %d bytes", trieSize, len(data)-4)
	}
	p := &precompiled{array: make([]uint32, trieSize/4)}
	for i := range p.array {
		p.array[i] = binary.LittleEndian.Uint32(data[4+4*i:])
	}
	rest := data[4+trieSize/4*4:]
	if !utf8.Valid(rest) {
		return nil, fmt.Errorf("precompiled_charsmap: replacement strings are not UTF-8")
	}
	if len(p.array) == 0 {
		return nil, fmt.Errorf("precompiled_charsmap: empty trie")
	}
	p.normalized = string(rest)
	for c := 0; c < 128; c++ {
		p.ascii[c], p.asciiOK[c] = p.transform(string(rune(c)))
	}
	return p, nil
}

// Double-array unit fields (Darts-clone).
func daHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func daValue(u uint32) uint32  { return u & (1<<31 - 1) }
func daLabel(u uint32) uint32  { return u & (1<<31 | 0xFF) }
func daOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// firstMatch returns the value of the shortest key that is a prefix of key
// (the search stops at a NUL byte).
func (p *precompiled) firstMatch(key string) (uint32, bool) {
	a := p.array
	pos := daOffset(a[0])
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == 0 {
			break
		}
		pos ^= uint32(c)
		if int(pos) >= len(a) {
			return 0, false
		}
		u := a[pos]
		if daLabel(u) != uint32(c) {
			return 0, false
		}
		pos ^= daOffset(u)
		if daHasLeaf(u) {
			if int(pos) >= len(a) {
				return 0, false
			}
			return daValue(a[pos]), true
		}
	}
	return 0, false
}

// transform returns the replacement of chunk, if its leading bytes are a key.
func (p *precompiled) transform(chunk string) (string, bool) {
	v, ok := p.firstMatch(chunk)
	if !ok {
		return "", false
	}
	start := int(v)
	if start > len(p.normalized) {
		return "", false
	}
	end := strings.IndexByte(p.normalized[start:], 0)
	if end < 0 {
		end = len(p.normalized)
	} else {
		end += start
	}
	return p.normalized[start:end], true
}

func (p *precompiled) normalize(s string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); {
		n := nextGrapheme(s[i:])
		g := s[i : i+n]
		if n == 1 && g[0] < 0x80 {
			if p.asciiOK[g[0]] {
				if !changed {
					b.Grow(len(s) + 8)
					b.WriteString(s[:i])
					changed = true
				}
				b.WriteString(p.ascii[g[0]])
			} else if changed {
				b.WriteByte(g[0])
			}
			i++
			continue
		}
		if n < 6 {
			if rep, ok := p.transform(g); ok {
				if !changed {
					b.Grow(len(s) + 8)
					b.WriteString(s[:i])
					changed = true
				}
				b.WriteString(rep)
				i += n
				continue
			}
		}
		for k := 0; k < len(g); {
			_, m := utf8.DecodeRuneInString(g[k:])
			ch := g[k : k+m]
			if rep, ok := p.transform(ch); ok {
				if !changed {
					b.Grow(len(s) + 8)
					b.WriteString(s[:i+k])
					changed = true
				}
				b.WriteString(rep)
			} else if changed {
				b.WriteString(ch)
			}
			k += m
		}
		i += n
	}
	if !changed {
		return s
	}
	return b.String()
}

func (p *precompiled) describe() string {
	return fmt.Sprintf("Precompiled(%d-unit trie)", len(p.array))
}
