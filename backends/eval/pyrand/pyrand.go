// Package pyrand reproduces CPython's random.Random (the Mersenne Twister
// MT19937 with Python's integer seeding, random(), getrandbits, randbelow,
// shuffle, sample and choices) draw for draw, so marin picks the same
// few-shot examples and bootstrap resamples as lm-evaluation-harness, whose
// samplers are random.Random(seed). Checked against CPython 3.11 output
// (testdata/python.json, made by testdata/python.py).
package pyrand

import (
	"math"
	"math/bits"
)

const (
	n         = 624
	m         = 397
	matrixA   = 0x9908b0df
	upperMask = 0x80000000
	lowerMask = 0x7fffffff
)

// Rand is a random.Random.
type Rand struct {
	mt  [n]uint32
	mti int
}

// New returns random.Random(seed) for a non-negative integer seed.
func New(seed uint64) *Rand {
	r := &Rand{}
	r.Seed(seed)
	return r
}

func (r *Rand) initGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < n; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	r.mti = n
}

// Seed seeds as random.seed(int) does: init_by_array with the absolute
// value's 32-bit words, least significant first (one word for 0).
func (r *Rand) Seed(seed uint64) {
	key := []uint32{uint32(seed)}
	if hi := uint32(seed >> 32); hi != 0 {
		key = append(key, hi)
	}
	r.initGenrand(19650218)
	i, j := 1, 0
	k := n
	if len(key) > k {
		k = len(key)
	}
	for ; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= n {
			r.mt[0] = r.mt[n-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k = n - 1; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= n {
			r.mt[0] = r.mt[n-1]
			i = 1
		}
	}
	r.mt[0] = 0x80000000
}

// Uint32 is genrand_uint32.
func (r *Rand) Uint32() uint32 {
	if r.mti >= n {
		var k int
		for k = 0; k < n-m; k++ {
			y := (r.mt[k] & upperMask) | (r.mt[k+1] & lowerMask)
			r.mt[k] = r.mt[k+m] ^ (y >> 1) ^ (-(y & 1) & matrixA)
		}
		for ; k < n-1; k++ {
			y := (r.mt[k] & upperMask) | (r.mt[k+1] & lowerMask)
			r.mt[k] = r.mt[k+(m-n)] ^ (y >> 1) ^ (-(y & 1) & matrixA)
		}
		y := (r.mt[n-1] & upperMask) | (r.mt[0] & lowerMask)
		r.mt[n-1] = r.mt[m-1] ^ (y >> 1) ^ (-(y & 1) & matrixA)
		r.mti = 0
	}
	y := r.mt[r.mti]
	r.mti++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// Random is random.random(): 53 random bits in [0, 1).
func (r *Rand) Random() float64 {
	a := r.Uint32() >> 5
	b := r.Uint32() >> 6
	return (float64(a)*67108864.0 + float64(b)) * (1.0 / 9007199254740992.0)
}

// GetRandBits is random.getrandbits(k) for 0 < k <= 64.
func (r *Rand) GetRandBits(k int) uint64 {
	if k <= 32 {
		return uint64(r.Uint32() >> (32 - k))
	}
	// Words are filled least significant first; the last word keeps its
	// top bits.
	lo := uint64(r.Uint32())
	hi := uint64(r.Uint32() >> (64 - k))
	return hi<<32 | lo
}

// RandBelow is random._randbelow(n) for n > 0: rejection sampling on
// getrandbits(n.bit_length()).
func (r *Rand) RandBelow(nn int) int {
	if nn <= 0 {
		return 0
	}
	k := bits.Len64(uint64(nn))
	v := r.GetRandBits(k)
	for v >= uint64(nn) {
		v = r.GetRandBits(k)
	}
	return int(v)
}

// Shuffle is random.shuffle on n items, through swap.
func (r *Rand) Shuffle(nn int, swap func(i, j int)) {
	for i := nn - 1; i > 0; i-- {
		j := r.RandBelow(i + 1)
		swap(i, j)
	}
}

// Sample is random.sample(range(n), k): the indices of k distinct items of
// a population of n, in selection order. It follows CPython's two
// strategies (a pool for small populations, a set of selected indices for
// large ones), which draw differently.
func (r *Rand) Sample(nn, k int) []int {
	if k < 0 || k > nn {
		panic("pyrand: sample larger than population or negative")
	}
	result := make([]int, k)
	setsize := 21
	if k > 5 {
		setsize += int(math.Pow(4, math.Ceil(math.Log(float64(k*3))/math.Log(4))))
	}
	if nn <= setsize {
		pool := make([]int, nn)
		for i := range pool {
			pool[i] = i
		}
		for i := 0; i < k; i++ {
			j := r.RandBelow(nn - i)
			result[i] = pool[j]
			pool[j] = pool[nn-i-1]
		}
		return result
	}
	selected := map[int]bool{}
	for i := 0; i < k; i++ {
		j := r.RandBelow(nn)
		for selected[j] {
			j = r.RandBelow(nn)
		}
		selected[j] = true
		result[i] = j
	}
	return result
}

// Choices is random.choices(range(n), k=k) without weights: floor(random()
// * n) for each draw.
func (r *Rand) Choices(nn, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = int(math.Floor(r.Random() * float64(nn)))
	}
	return out
}
