package llama

import (
	"fmt"
	"math"
)

// RopeInvFreq returns RoPE's head_dim/2 inverse frequencies for the config,
// computed in float32 the way transformers does (inv_freq = 1 /
// theta^(2i/head_dim), then the rope_scaling rule: "linear" divides by the
// factor; "llama3" divides low frequencies by the factor, keeps high ones and
// interpolates between).
func RopeInvFreq(cfg Config) []float32 {
	cfg = cfg.Normalized()
	dim := cfg.HeadDim
	half := dim / 2
	inv := make([]float32, half)
	base := cfg.RopeTheta
	for i := 0; i < half; i++ {
		e := float32(2*i) / float32(dim)
		inv[i] = 1 / float32(math.Pow(base, float64(e)))
	}
	rs := cfg.RopeScaling
	if rs == nil {
		return inv
	}
	switch rs.RopeType {
	case "linear":
		f := float32(rs.Factor)
		for i := range inv {
			inv[i] /= f
		}
	case "llama3":
		factor := float32(rs.Factor)
		low, high := float32(rs.LowFreqFactor), float32(rs.HighFreqFactor)
		old := float32(rs.OriginalMaxPositionEmbeddings)
		lowWavelen := old / low
		highWavelen := old / high
		for i, f := range inv {
			wavelen := float32(2*math.Pi) / f
			scaled := f
			if wavelen > lowWavelen {
				scaled = f / factor
			}
			if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
				smooth := (old/wavelen - low) / (high - low)
				scaled = (1-smooth)*scaled/factor + smooth*scaled
			}
			inv[i] = scaled
		}
	}
	return inv
}

// ropeTable holds cos and sin of position·inv_freq for positions
// [0, len/half): entry p·half+i.
type ropeTable struct {
	half     int
	inv      []float32
	limit    int // max_position_embeddings
	cos, sin []float32
}

// RopeCosSin returns the cos and sin tables for positions [0, n): entry
// p·(head_dim/2)+i is cos/sin of float32(p)·inv_freq[i], the product rounded
// to float32 as transformers computes it and the cosine of that rounded
// angle rounded to float32. Another backend using these tables gets the
// CPU backend's rotary embeddings exactly.
func RopeCosSin(cfg Config, n int) (cos, sin []float32) {
	t := newRopeTable(cfg, n)
	return t.cos, t.sin
}

func newRopeTable(cfg Config, n int) *ropeTable {
	inv := RopeInvFreq(cfg)
	t := &ropeTable{half: len(inv), inv: inv, limit: cfg.Normalized().MaxPositionEmbeddings}
	t.grow(n)
	return t
}

// grow extends the tables to cover positions [0, n).
func (t *ropeTable) grow(n int) {
	half := t.half
	p0 := t.positions()
	if n <= p0 {
		return
	}
	t.cos = append(t.cos, make([]float32, (n-p0)*half)...)
	t.sin = append(t.sin, make([]float32, (n-p0)*half)...)
	for p := p0; p < n; p++ {
		for i, f := range t.inv {
			ang := float32(p) * f
			s, c := math.Sincos(float64(ang))
			t.cos[p*half+i] = float32(c)
			t.sin[p*half+i] = float32(s)
		}
	}
}

// positions reports how many positions the table covers.
func (t *ropeTable) positions() int { return len(t.cos) / t.half }

// applyRope rotates, in place, the heads of rows [r0, r1) of x (row stride
// ld, nHeads heads of 2·half values each) by their positions, in HF's
// rotate_half layout: pairs (i, i+half).
func (t *ropeTable) apply(x []float32, ld, nHeads int, pos []int32, r0, r1 int) {
	half := t.half
	for r := r0; r < r1; r++ {
		p := int(pos[r])
		c := t.cos[p*half : p*half+half]
		s := t.sin[p*half : p*half+half]
		row := x[r*ld : r*ld+nHeads*2*half]
		for h := 0; h < nHeads; h++ {
			lo := row[h*2*half : h*2*half+half]
			hi := row[h*2*half+half : h*2*half+2*half]
			for i := range lo {
				a, b := lo[i], hi[i]
				lo[i] = a*c[i] + (-b)*s[i]
				hi[i] = b*c[i] + a*s[i]
			}
		}
	}
}

// applyInverse is the transpose of apply (rotation by −angle): the backward
// pass of apply for gradients.
func (t *ropeTable) applyInverse(x []float32, ld, nHeads int, pos []int32, r0, r1 int) {
	half := t.half
	for r := r0; r < r1; r++ {
		p := int(pos[r])
		c := t.cos[p*half : p*half+half]
		s := t.sin[p*half : p*half+half]
		row := x[r*ld : r*ld+nHeads*2*half]
		for h := 0; h < nHeads; h++ {
			lo := row[h*2*half : h*2*half+half]
			hi := row[h*2*half+half : h*2*half+2*half]
			for i := range lo {
				a, b := lo[i], hi[i]
				lo[i] = a*c[i] + b*s[i]
				hi[i] = b*c[i] - a*s[i]
			}
		}
	}
}

// check validates positions against max_position_embeddings and grows the
// tables to cover them.
func (t *ropeTable) check(pos []int32) error {
	hi := int32(-1)
	for i, p := range pos {
		if p < 0 || int(p) >= t.limit {
			return fmt.Errorf("position %d at index %d is outside [0, %d) (max_position_embeddings)", p, i, t.limit)
		}
		hi = max(hi, p)
	}
	t.grow(int(hi) + 1)
	return nil
}
