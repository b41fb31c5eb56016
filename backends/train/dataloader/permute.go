// Package dataloader turns token caches into training batches: documents are
// packed greedily into fixed-length sequences with segment ids (or padded one
// per sequence), components are mixed by relative weight in blocks of fixed
// proportions, and every choice is a pure function of the seed and the global
// sequence index. The loader's whole state is therefore one integer, which a
// checkpoint saves, and a resumed run sees exactly the data order of an
// uninterrupted one.
package dataloader

import (
	"crypto/sha256"
	"encoding/binary"
)

// Permutation is a seeded bijection on [0, n): a Feistel network over the
// smallest power-of-two domain covering n, with cycle walking to stay inside
// [0, n). It needs O(1) memory, so huge datasets shuffle without an index
// array, as Levanter's "feistel" permutation does.
type Permutation struct {
	n      uint64
	half   uint   // bits per half of the Feistel domain
	mask   uint64 // (1<<half)-1
	rounds [4]uint64
}

// NewPermutation returns the permutation of [0, n) for key.
func NewPermutation(n uint64, key []byte) *Permutation {
	p := &Permutation{n: n}
	bits := uint(1)
	for (uint64(1) << bits) < n {
		bits++
	}
	if bits%2 == 1 {
		bits++
	}
	p.half = bits / 2
	p.mask = (uint64(1) << p.half) - 1
	sum := sha256.Sum256(key)
	for i := range p.rounds {
		p.rounds[i] = binary.LittleEndian.Uint64(sum[8*i:])
	}
	return p
}

// Len is n.
func (p *Permutation) Len() uint64 { return p.n }

// At maps i in [0, n) to its permuted position.
func (p *Permutation) At(i uint64) uint64 {
	if p.n <= 1 {
		return i
	}
	x := i
	for {
		x = p.encrypt(x)
		if x < p.n {
			return x
		}
	}
}

func (p *Permutation) encrypt(x uint64) uint64 {
	l, r := x>>p.half, x&p.mask
	for _, k := range p.rounds {
		l, r = r, l^(mix(r^k)&p.mask)
	}
	return l<<p.half | r
}

// mix is splitmix64's finaliser: a cheap, well-distributed round function.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// key builds a permutation key from the seed and labels.
func key(seed int64, parts ...any) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(seed))
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		case int64:
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		case int:
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	}
	return b
}
