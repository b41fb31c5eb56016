package llama

import "testing"

func TestRowsIsAViewOfTheBatch(t *testing.T) {
	b := NewBatch(3, 4)
	for i := range b.Tokens {
		b.Tokens[i], b.Positions[i], b.Segments[i] = int32(i), int32(i%4), int32(i/4)
		b.LossMask[i] = i%4 < 3
	}
	r := b.Rows(1, 2)
	if r.B != 2 || r.T != 4 || len(r.Tokens) != 8 || r.Tokens[0] != 4 || r.Segments[7] != 2 || r.Positions[5] != 1 || !r.LossMask[0] || r.LossMask[3] {
		t.Fatalf("rows 1..2: %+v", r)
	}
	r.Tokens[0] = 99
	if b.Tokens[4] != 99 {
		t.Error("Rows copied the tokens instead of sharing them")
	}
	// Appending to a view must not overwrite the next row.
	_ = append(b.Rows(0, 1).Tokens, -1)
	if b.Tokens[4] != 99 {
		t.Error("appending to a row view overwrote the next row")
	}
	n := &Batch{B: 2, T: 2, Tokens: []int32{1, 2, 3, 4}}
	if v := n.Rows(1, 1); v.Segments != nil || v.Positions != nil || v.LossMask != nil || v.Tokens[0] != 3 {
		t.Errorf("nil slices must stay nil: %+v", v)
	}
}
