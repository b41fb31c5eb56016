package eval

import (
	"context"
	"math"
	"testing"

	"github.com/marin-go/marin/backends/model/sample"
)

// fakeDecoder's next-token logits depend on the row's position and last
// token only, so any feeding order gives the same numbers: row state is
// (positions, last token).
type fakeDecoder struct {
	rows  int
	vocab int
	n     []int
	last  []int32
	feeds int
}

func newFakeDecoder(rows, vocab int) *fakeDecoder {
	return &fakeDecoder{rows: rows, vocab: vocab, n: make([]int, rows), last: make([]int32, rows)}
}

func (f *fakeDecoder) logits(pos int, last int32) []float32 {
	out := make([]float32, f.vocab)
	for v := range out {
		out[v] = float32(((pos*7 + int(last)*3 + v*5) % 11)) / 3
	}
	return out
}

func (f *fakeDecoder) Rows() int     { return f.rows }
func (f *fakeDecoder) MaxLen() int   { return 1000 }
func (f *fakeDecoder) Len(r int) int { return f.n[r] }
func (f *fakeDecoder) Reset()        { clear(f.n) }
func (f *fakeDecoder) Close() error  { return nil }
func (f *fakeDecoder) Truncate(r, n int) {
	if n < f.n[r] {
		f.n[r] = n
	}
}

func (f *fakeDecoder) Feed(_ context.Context, tokens [][]int32, want sample.Want) ([][]float32, error) {
	f.feeds++
	out := make([][]float32, f.rows)
	for r, toks := range tokens {
		for _, t := range toks {
			f.n[r]++
			f.last[r] = t
			if want == sample.Every {
				out[r] = append(out[r], f.logits(f.n[r], t)...)
			}
		}
		if want == sample.Last && len(toks) > 0 {
			out[r] = f.logits(f.n[r], f.last[r])
		}
	}
	return out, nil
}

// TestDecoderEngineScoresInPieces: continuations fed in pieces (a small
// logits budget) score as the direct computation does.
func TestDecoderEngineScoresInPieces(t *testing.T) {
	defer func(b int) { everyBudget = b }(everyBudget)
	everyBudget = 2 * 13 * 3 // three tokens per row per feed with two rows
	f := newFakeDecoder(2, 13)
	e := NewDecoderEngine(f, 13)
	reqs := []ScoreRequest{
		{Context: []int32{1, 2, 3}, Continuations: [][]int32{{4, 5, 6, 7, 8, 9, 10, 11}, {3}, {12, 0}}},
		{Context: []int32{5}, Continuations: [][]int32{{1, 1, 1, 1, 1}}},
		{Context: []int32{9, 9}, Continuations: [][]int32{{2, 3}}},
	}
	got, err := e.Score(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		for j, c := range r.Continuations {
			seq := append(append([]int32(nil), r.Context...), c...)
			for k := range c {
				p := len(r.Context) + k // tokens before c[k]
				want, wantG := logSoftmaxAt(f.logits(p, seq[p-1]), c[k])
				if math.Abs(got[i].LogProbs[j][k]-want) > 1e-12 || got[i].Greedy[j][k] != wantG {
					t.Errorf("request %d cont %d token %d: %v %v, want %v %v", i, j, k, got[i].LogProbs[j][k], got[i].Greedy[j][k], want, wantG)
				}
			}
		}
	}
	if f.feeds < 4 {
		t.Errorf("%d feeds; the 8-token continuation should take several", f.feeds)
	}
}
