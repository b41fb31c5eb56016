package tokenizer

import (
	"fmt"
	"strings"
)

// postProcessor adds special tokens around a single sequence's ids.
type postProcessor interface {
	single() (prefix, suffix []uint32)
	describe() string
}

type templatePP struct {
	prefix, suffix []uint32
	src            string
}

func (p templatePP) single() ([]uint32, []uint32) { return p.prefix, p.suffix }
func (p templatePP) describe() string             { return "TemplateProcessing(" + p.src + ")" }

type byteLevelPP struct{}

func (byteLevelPP) single() ([]uint32, []uint32) { return nil, nil }
func (byteLevelPP) describe() string             { return "ByteLevel" }

type seqPP []postProcessor

func (s seqPP) single() ([]uint32, []uint32) {
	var pre, suf []uint32
	for _, p := range s {
		a, b := p.single()
		pre = append(append([]uint32{}, a...), pre...)
		suf = append(suf, b...)
	}
	return pre, suf
}

func (s seqPP) describe() string {
	parts := make([]string, len(s))
	for i, p := range s {
		parts[i] = p.describe()
	}
	return "Sequence[" + strings.Join(parts, ", ") + "]"
}

// truncation mirrors tokenizer.json's "truncation" for single sequences.
type truncation struct {
	maxLength int
	left      bool
}

// padding mirrors tokenizer.json's "padding".
type padding struct {
	fixed      int // 0: BatchLongest
	multipleOf int
	left       bool
	padID      uint32
}

func (p *padding) target(longest int) int {
	n := longest
	if p.fixed > 0 {
		n = p.fixed
	}
	if p.multipleOf > 0 && n%p.multipleOf != 0 {
		n += p.multipleOf - n%p.multipleOf
	}
	return n
}

func (p *padding) pad(ids []uint32, n int) []uint32 {
	if len(ids) >= n {
		return ids
	}
	fill := make([]uint32, n-len(ids))
	for i := range fill {
		fill[i] = p.padID
	}
	if p.left {
		return append(fill, ids...)
	}
	return append(ids, fill...)
}

func (p *padding) describe() string {
	how := "BatchLongest"
	if p.fixed > 0 {
		how = fmt.Sprintf("Fixed(%d)", p.fixed)
	}
	return fmt.Sprintf("%s, multiple_of=%d, pad_id=%d", how, p.multipleOf, p.padID)
}
