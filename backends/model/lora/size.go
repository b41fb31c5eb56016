package lora

import (
	"fmt"

	"github.com/marin-go/marin/backends/model/llama"
)

// Size is what an adapter laid out over a model holds, counted without
// allocating it (New allocates every value: gigabytes for an 8B model's
// modules_to_save).
type Size struct {
	Modules int // adapted projections
	Full    int // base tensors trained in full
	// Factors is the low-rank factors' parameter count, FullParams that of
	// the tensors trained in full, Largest the largest trained tensor's.
	Factors, FullParams, Largest int64
	// In is the adapted projections' input values per token (Σ in over the
	// modules), MaxLayerIn the most of it in one decoder layer: what the
	// adapter's kept intermediates (its inputs in float32) scale with.
	In, MaxLayerIn int64
}

// Params is the adapter's parameter count (Adapter.NumParams).
func (s Size) Params() int64 { return s.Factors + s.FullParams }

// Measure returns the size of the adapter New(spec, c) would return, or
// New's error.
func Measure(spec Spec, c llama.Config) (Size, error) {
	lay, err := spec.resolve(c)
	if err != nil {
		return Size{}, err
	}
	c = c.Normalized()
	var s Size
	perLayer := make([]int64, c.NumHiddenLayers)
	for _, ref := range lay.modules {
		in, out := ref.kind.Dims(c)
		s.In += int64(in)
		if ref.layer >= 0 && ref.layer < len(perLayer) {
			perLayer[ref.layer] += int64(in)
			s.MaxLayerIn = max(s.MaxLayerIn, perLayer[ref.layer])
		}
		s.Modules++
		s.Factors += int64(ref.r) * int64(in+out)
		s.Largest = max(s.Largest, int64(ref.r)*int64(max(in, out)))
	}
	shapes, err := llama.Shapes(c)
	if err != nil {
		return Size{}, err
	}
	sizes := make(map[string]int64, len(shapes))
	for _, t := range shapes {
		sizes[t.Name] = int64(t.Size())
	}
	for _, n := range lay.full {
		sz, ok := sizes[n]
		if !ok {
			return Size{}, fmt.Errorf("lora: the model has no tensor %s", n)
		}
		s.Full++
		s.FullParams += sz
		s.Largest = max(s.Largest, sz)
	}
	return s, nil
}
