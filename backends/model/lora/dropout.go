package lora

import "math"

// Dropout on the adapters' input (PEFT's lora_dropout: each adapted
// projection computes s·B·A·dropout(x), with its own mask) is drawn from a
// counter-based hash rather than a random stream, so that every engine
// draws the same masks without moving them between host and device, a
// micro-batch's masks do not depend on the others, and a resumed run draws
// what the uninterrupted one would have:
//
//	step key     k  = StepKey(seed, step)                 step: the update being computed, from 1
//	module key   km = Mix32(k ^ ModuleSalt(layer, kind))
//	token key    kt = Mix32(km ^ Mix32(token))            token: row·T + t within the step's whole batch
//	keep x[t, i] when Mix32(kt + i) ≥ Threshold(rate), and scale kept values by 1/(1−rate)
//
// Mix32 needs only wrapping multiplication, xor, addition and division by
// powers of two, which graph engines have.

// Mix32 is a 32-bit integer hash (Chris Wellons' lowbias32).
func Mix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// StepKey is the key of the masks of optimizer update number step (1 for
// the first) of a run with seed.
func StepKey(seed, step int64) uint32 {
	k := Mix32(uint32(seed) ^ 0x9e3779b9)
	k = Mix32(k ^ uint32(uint64(seed)>>32))
	k = Mix32(k ^ uint32(step))
	return Mix32(k ^ uint32(uint64(step)>>32))
}

// ModuleSalt distinguishes the masks of the projections of a step.
func ModuleSalt(layer int, k Kind) uint32 {
	return Mix32(uint32(layer*NumKinds+int(k)) + 0x85ebca6b)
}

// ModuleKey is the key of one projection's mask in a step.
func ModuleKey(step uint32, layer int, k Kind) uint32 { return Mix32(step ^ ModuleSalt(layer, k)) }

// TokenKey is the key of one token's row of a projection's mask.
func TokenKey(module, token uint32) uint32 { return Mix32(module ^ Mix32(token)) }

// Threshold is the hash value below which an element is dropped with
// probability rate.
func Threshold(rate float64) uint32 {
	if rate <= 0 {
		return 0
	}
	return uint32(math.Min(math.Round(rate*(1<<32)), math.MaxUint32))
}

// Keep reports whether feature i of a token with key kt is kept.
func Keep(kt uint32, i int, threshold uint32) bool { return Mix32(kt+uint32(i)) >= threshold }

// KeepScale is what kept values are multiplied by: 1/(1−rate), in float32.
func KeepScale(rate float64) float32 { return float32(1 / (1 - rate)) }

// Dropout says how a training pass drops adapter inputs: nothing when
// Rate is 0 (and in evaluation).
type Dropout struct {
	Rate float64
	// Step is StepKey of the update being computed.
	Step uint32
	// Token0 is the first token's index within the step's whole batch
	// (row offset of a micro-batch · T).
	Token0 uint32
}

// Apply writes dropout(x) into dst for n tokens of width in of the
// projection (layer, k): dst[j·in+i] = x[j·in+i]·KeepScale or 0.
func (d Dropout) Apply(dst, x []float32, n, in, layer int, k Kind) {
	km := ModuleKey(d.Step, layer, k)
	thr := Threshold(d.Rate)
	sc := KeepScale(d.Rate)
	for j := range n {
		kt := TokenKey(km, d.Token0+uint32(j))
		row, out := x[j*in:j*in+in], dst[j*in:j*in+in]
		for i, v := range row {
			if Keep(kt, i, thr) {
				out[i] = v * sc
			} else {
				out[i] = 0
			}
		}
	}
}
