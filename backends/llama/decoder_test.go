package llama

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDecoderMatchesLogits: prefill plus token-by-token decoding gives the
// logits of a full forward pass over the same sequence.
func TestDecoderMatchesLogits(t *testing.T) {
	for name, cfg := range testConfigs() {
		t.Run(name, func(t *testing.T) {
			p := randomParams(t, cfg, 9)
			m, err := New(cfg, p)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 1))
			const T = 12
			seqs := [][]int32{make([]int32, T), make([]int32, T-4)}
			for _, s := range seqs {
				for i := range s {
					s[i] = int32(r.IntN(cfg.VocabSize))
				}
			}
			dec, err := m.NewDecoder(2, T)
			if err != nil {
				t.Fatal(err)
			}
			// Prompts of 5 and 3 tokens, then one token at a time; row 1
			// skips a turn.
			got := map[[2]int][]float32{}
			fed := []int{5, 3}
			out, err := dec.Append([][]int32{seqs[0][:5], seqs[1][:3]})
			if err != nil {
				t.Fatal(err)
			}
			got[[2]int{0, 4}], got[[2]int{1, 2}] = out[0], out[1]
			for step := 0; fed[0] < len(seqs[0]) || fed[1] < len(seqs[1]); step++ {
				in := make([][]int32, 2)
				for row := range in {
					if fed[row] < len(seqs[row]) && !(row == 1 && step == 2) {
						in[row] = seqs[row][fed[row] : fed[row]+1]
					}
				}
				out, err := dec.Append(in)
				if err != nil {
					t.Fatal(err)
				}
				for row := range in {
					if in[row] != nil {
						got[[2]int{row, fed[row]}] = out[row]
						fed[row]++
					} else if out[row] != nil {
						t.Fatal("logits for a row fed nothing")
					}
				}
			}
			for row, s := range seqs {
				b := NewBatch(1, len(s))
				copy(b.Tokens, s)
				b.Positions = nil
				all := make([]int, len(s))
				for i := range all {
					all[i] = i
				}
				want, err := m.Logits(b, all)
				if err != nil {
					t.Fatal(err)
				}
				V := cfg.VocabSize
				for pos := 2; pos < len(s); pos++ {
					g, ok := got[[2]int{row, pos}]
					if !ok {
						continue
					}
					for j := 0; j < V; j++ {
						w := want[pos*V+j]
						if math.Abs(float64(g[j]-w)) > 1e-4*(1+math.Abs(float64(w))) {
							t.Fatalf("row %d pos %d logit %d: decoder %g, forward %g", row, pos, j, g[j], w)
						}
					}
				}
			}
			if _, err := dec.Append([][]int32{make([]int32, 1), nil}); err == nil {
				t.Fatal("append past maxLen accepted")
			}
		})
	}
}
