package lora

import "testing"

// Measure counts what New allocates, and refuses what New refuses.
func TestMeasure(t *testing.T) {
	for _, tc := range []struct {
		model string
		spec  Spec
	}{
		{llamaTied, Spec{R: 2, Alpha: 4}},
		{llamaTied, Spec{R: 4, Alpha: 4, Targets: Targets{Pattern: AllLinear}, ModulesToSave: []string{"embed_tokens"}}},
		{qwenBias, Spec{R: 3, Alpha: 4, Targets: Targets{Names: []string{"down_proj", "k_proj"}}, Bias: BiasAll, ModulesToSave: []string{"lm_head", "norm"}}},
		{qwenBias, Spec{R: 2, Alpha: 4, Layers: []int{0}, Targets: Targets{Pattern: AllLinear}}},
	} {
		c := testConfig(t, tc.model)
		a, err := New(tc.spec, c)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Measure(tc.spec, c)
		if err != nil {
			t.Fatal(err)
		}
		var full, largest, in int64
		perLayer := map[int]int64{}
		for _, m := range a.Modules {
			perLayer[m.Layer] += int64(m.A.Shape[1])
			in += int64(m.A.Shape[1])
		}
		var maxLayer int64
		for _, v := range perLayer {
			maxLayer = max(maxLayer, v)
		}
		for _, f := range a.Full {
			full += int64(f.Size())
		}
		for _, x := range a.Tensors() {
			largest = max(largest, int64(x.Size()))
		}
		if s.Modules != len(a.Modules) || s.Full != len(a.Full) || s.Params() != int64(a.NumParams()) || s.FullParams != full || s.Largest != largest || s.In != in || s.MaxLayerIn != maxLayer {
			t.Errorf("%+v: measured %+v; the adapter has %d modules, %d full tensors (%d values), %d parameters, largest %d",
				tc.spec, s, len(a.Modules), len(a.Full), full, a.NumParams(), largest)
		}
	}
	c := testConfig(t, llamaTied)
	for _, bad := range []Spec{{R: 0, Alpha: 4}, {R: 2, Alpha: 4, Targets: Targets{Names: []string{"qkv"}}}} {
		_, errNew := New(bad, c)
		if _, err := Measure(bad, c); err == nil || errNew == nil || err.Error() != errNew.Error() {
			t.Errorf("%+v: Measure says %v, New %v", bad, err, errNew)
		}
	}
}
