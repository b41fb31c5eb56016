package sample

import "testing"

func TestSamplingIsSeededAndRespectsTopKAndTopP(t *testing.T) {
	logits := []float32{2, 1, 0.5, 0, -1, 3}
	draw := func(s Sampling, n int) map[int32]int {
		sm := NewSampler(s)
		c := map[int32]int{}
		for i := 0; i < n; i++ {
			c[sm.Next(logits)]++
		}
		return c
	}
	a := draw(Sampling{Temperature: 1, Seed: 4}, 200)
	b := draw(Sampling{Temperature: 1, Seed: 4}, 200)
	if len(a) < 4 {
		t.Errorf("temperature 1 drew only %v", a)
	}
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("same seed, different draws: %v vs %v", a, b)
		}
	}
	if c := draw(Sampling{Temperature: 1, TopK: 2, Seed: 1}, 300); len(c) != 2 || c[5] == 0 || c[0] == 0 {
		t.Errorf("top_k 2 drew %v", c)
	}
	// p(5) ≈ 0.61, p(0) ≈ 0.22: top_p 0.7 keeps those two.
	if c := draw(Sampling{Temperature: 1, TopP: 0.7, Seed: 1}, 300); len(c) != 2 {
		t.Errorf("top_p 0.7 drew %v", c)
	}
	if c := draw(Sampling{}, 10); len(c) != 1 || c[5] != 10 {
		t.Errorf("greedy drew %v", c)
	}
	if err := (Sampling{TopP: 1.5}).Validate(); err == nil {
		t.Error("top_p 1.5 accepted")
	}
}
