package sample

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// countingDecoder predicts token (last+1) mod vocab for every row, and
// records what it was fed.
type countingDecoder struct {
	vocab, maxLen int
	seqs          [][]int32
	calls         int
}

func (c *countingDecoder) Rows() int     { return len(c.seqs) }
func (c *countingDecoder) MaxLen() int   { return c.maxLen }
func (c *countingDecoder) Len(r int) int { return len(c.seqs[r]) }
func (c *countingDecoder) Truncate(r, n int) {
	if n < len(c.seqs[r]) {
		c.seqs[r] = c.seqs[r][:n]
	}
}
func (c *countingDecoder) Reset()       { clear(c.seqs) }
func (c *countingDecoder) Close() error { return nil }

func (c *countingDecoder) Feed(_ context.Context, tokens [][]int32, want Want) ([][]float32, error) {
	c.calls++
	out := make([][]float32, len(c.seqs))
	for r, toks := range tokens {
		if len(toks) == 0 {
			continue
		}
		if len(c.seqs[r])+len(toks) > c.maxLen {
			return nil, errors.New("full")
		}
		c.seqs[r] = append(c.seqs[r], toks...)
		l := make([]float32, c.vocab)
		l[(int(toks[len(toks)-1])+1)%c.vocab] = 1
		out[r] = l
	}
	return out, nil
}

func TestGenerateStopsEachRowOnItsOwn(t *testing.T) {
	d := &countingDecoder{vocab: 10, maxLen: 8, seqs: make([][]int32, 3)}
	var streamed [3][]uint32
	res, err := Generate(context.Background(), d, [][]uint32{{1}, {5, 6}}, Options{MaxNewTokens: 5, Stop: []uint32{9}},
		func(r int, id uint32) { streamed[r] = append(streamed[r], id) })
	if err != nil {
		t.Fatal(err)
	}
	// Row 0 reaches MaxNewTokens; row 1 draws 7, 8 and stops at 9, which is
	// fed but not returned; row 2 had no prompt and is left alone.
	if !slices.Equal(res[0].Tokens, []uint32{2, 3, 4, 5, 6}) || res[0].Stopped {
		t.Errorf("row 0: %+v", res[0])
	}
	if !slices.Equal(res[1].Tokens, []uint32{7, 8}) || !res[1].Stopped || res[1].StopID != 9 {
		t.Errorf("row 1: %+v", res[1])
	}
	if !slices.Equal(d.seqs[1], []int32{5, 6, 7, 8, 9}) || len(d.seqs[0]) != 5 || d.seqs[2] != nil {
		t.Errorf("fed %v", d.seqs)
	}
	if !slices.Equal(streamed[0], res[0].Tokens) || !slices.Equal(streamed[1], res[1].Tokens) || streamed[2] != nil {
		t.Errorf("streamed %v", streamed)
	}
	// A row stops when the decoder is full.
	d = &countingDecoder{vocab: 10, maxLen: 4, seqs: make([][]int32, 1)}
	res, err = Generate(context.Background(), d, [][]uint32{{0, 0}}, Options{MaxNewTokens: 10}, nil)
	if err != nil || !slices.Equal(res[0].Tokens, []uint32{1, 2, 3}) {
		t.Errorf("full decoder: %+v %v", res, err)
	}
	for _, c := range []struct {
		prompts [][]uint32
		o       Options
		want    string
	}{
		{[][]uint32{{1}, {}}, Options{MaxNewTokens: 1}, "row 1 is empty"},
		{[][]uint32{{1}, {1}}, Options{MaxNewTokens: 1}, "2 prompts for a decoder of 1 rows"},
		{[][]uint32{{1}}, Options{}, "max new tokens"},
		{[][]uint32{{1}}, Options{MaxNewTokens: 1, Sampling: Sampling{TopK: -1}}, "top_k"},
	} {
		d := &countingDecoder{vocab: 10, maxLen: 8, seqs: make([][]int32, len(c.prompts))}
		if c.want == "2 prompts for a decoder of 1 rows" {
			d.seqs = d.seqs[:1]
		}
		if _, err := Generate(context.Background(), d, c.prompts, c.o, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %+v: %v, want %q", c.prompts, c.o, err, c.want)
		}
	}
}
