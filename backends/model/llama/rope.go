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

// RopeTable holds cos and sin of position·inv_freq for positions
// [0, len(Cos)/Half): entry p·Half+i is cos/sin of float32(p)·inv_freq[i],
// the product rounded to float32 as transformers computes it and the
// cosine of that rounded angle rounded to float32. Every engine (training
// and decoding) rotates with these tables, so they agree exactly.
type RopeTable struct {
	Half     int
	Inv      []float32
	Limit    int // max_position_embeddings
	Cos, Sin []float32
}

// NewRopeTable makes the tables for positions [0, n); they grow on demand.
func NewRopeTable(cfg Config, n int) *RopeTable {
	inv := RopeInvFreq(cfg)
	t := &RopeTable{Half: len(inv), Inv: inv, Limit: cfg.Normalized().MaxPositionEmbeddings}
	t.Grow(n)
	return t
}

// Grow extends the tables to cover positions [0, n).
func (t *RopeTable) Grow(n int) {
	half := t.Half
	p0 := t.Positions()
	if n <= p0 {
		return
	}
	t.Cos = append(t.Cos, make([]float32, (n-p0)*half)...)
	t.Sin = append(t.Sin, make([]float32, (n-p0)*half)...)
	for p := p0; p < n; p++ {
		for i, f := range t.Inv {
			ang := float32(p) * f
			s, c := math.Sincos(float64(ang))
			t.Cos[p*half+i] = float32(c)
			t.Sin[p*half+i] = float32(s)
		}
	}
}

// Positions reports how many positions the table covers.
func (t *RopeTable) Positions() int { return len(t.Cos) / t.Half }

// Check validates positions against max_position_embeddings and grows the
// tables to cover them.
func (t *RopeTable) Check(pos []int32) error {
	hi := int32(-1)
	for i, p := range pos {
		if p < 0 || int(p) >= t.Limit {
			return fmt.Errorf("position %d at index %d is outside [0, %d) (max_position_embeddings)", p, i, t.Limit)
		}
		hi = max(hi, p)
	}
	t.Grow(int(hi) + 1)
	return nil
}
