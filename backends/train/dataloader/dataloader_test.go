package dataloader

import (
	"math"
	"testing"
)

func TestPermutationIsABijection(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 7, 64, 1000, 4097} {
		p := NewPermutation(n, key(1, "x"))
		seen := make([]bool, n)
		identity := true
		for i := uint64(0); i < n; i++ {
			j := p.At(i)
			if j >= n || seen[j] {
				t.Fatalf("n=%d: At(%d)=%d repeats or escapes", n, i, j)
			}
			seen[j] = true
			identity = identity && j == i
		}
		if n >= 64 && identity {
			t.Errorf("n=%d: permutation is the identity", n)
		}
	}
	a, b := NewPermutation(1000, key(1, "x")), NewPermutation(1000, key(2, "x"))
	same := 0
	for i := uint64(0); i < 1000; i++ {
		if a.At(i) == b.At(i) {
			same++
		}
	}
	if same > 20 {
		t.Errorf("seeds 1 and 2 agree on %d of 1000 positions", same)
	}
}

func TestMixtureProportionsWithinTwoPercent(t *testing.T) {
	comps := []Component{{"tulu", 939343, 939343}, {"orca", 5000, 50000}, {"tiny", 37, 16710}, {"val", 100, 0}}
	m, err := NewMixture(comps, 2048, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	got := make([]int, len(comps))
	for g := int64(0); g < n; g++ {
		c, idx := m.At(g)
		if idx < 0 || idx >= comps[c].Len {
			t.Fatalf("index %d out of component %s", idx, comps[c].Name)
		}
		got[c]++
	}
	var total float64
	for _, c := range comps {
		total += c.Weight
	}
	for i, c := range comps {
		want := c.Weight / total
		if frac := float64(got[i]) / n; math.Abs(frac-want) > 0.02 {
			t.Errorf("%s: %.4f of sequences, want %.4f", c.Name, frac, want)
		}
	}
	if got[3] != 0 {
		t.Error("a validation-only component was drawn for training")
	}
}

func TestMixtureRestartsAndIsDeterministic(t *testing.T) {
	comps := []Component{{"a", 3, 1}, {"b", 5, 1}}
	m1, _ := NewMixture(comps, 4, 7, true)
	m2, _ := NewMixture(comps, 4, 7, true)
	seenA := map[int64]int{}
	for g := int64(0); g < 60; g++ {
		c1, i1 := m1.At(g)
		c2, i2 := m2.At(g)
		if c1 != c2 || i1 != i2 {
			t.Fatalf("g=%d: %d/%d vs %d/%d", g, c1, i1, c2, i2)
		}
		if c1 == 0 {
			seenA[i1]++
		}
	}
	// 30 draws from a 3-sequence component: each sequence exactly 10 times (restart, full epochs).
	for i := int64(0); i < 3; i++ {
		if seenA[i] != 10 {
			t.Errorf("sequence %d of a drawn %d times, want 10", i, seenA[i])
		}
	}
	// Random access equals sequential access (resume from any position).
	m3, _ := NewMixture(comps, 4, 7, true)
	c, i := m3.At(37)
	c1, i1 := m1.At(37)
	if c != c1 || i != i1 {
		t.Error("random access differs from sequential")
	}
}

type fakeDocs [][]uint32

func (f fakeDocs) NumDocs() int64     { return int64(len(f)) }
func (f fakeDocs) DocLen(i int64) int { return len(f[i]) }
func (f fakeDocs) Doc(i int64) ([]uint32, []uint8) {
	m := make([]uint8, len(f[i]))
	for j := range m {
		m[j] = uint8(f[i][j] % 2) // odd ids are trainable
	}
	return f[i], m
}

func TestPackGreedyWithSegmentsAndShiftedMask(t *testing.T) {
	docs := fakeDocs{{10, 11, 13}, {20, 21}, {30, 31, 33, 35, 37, 39, 41}, {}, {50}}
	p, err := Pack(docs, 6, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 3 {
		t.Fatalf("%d sequences, want 3 ([d0 d1] [d2 truncated] [d4])", p.Len())
	}
	s := NewSequence(6)
	if err := p.Fill(docs, 0, s); err != nil {
		t.Fatal(err)
	}
	wantTok := []int32{10, 11, 13, 20, 21, 0}
	wantSeg := []int32{0, 0, 0, 1, 1, -1}
	wantPos := []int32{0, 1, 2, 0, 1, 0}
	// Targets: 11 (odd, trained), 13 (trained); 21 trained; never across documents.
	wantMask := []float32{1, 1, 0, 1, 0, 0}
	for i := range wantTok {
		if s.Tokens[i] != wantTok[i] || s.Segments[i] != wantSeg[i] || s.Positions[i] != wantPos[i] || s.LossMask[i] != wantMask[i] {
			t.Fatalf("pos %d: tok %d seg %d pos %d mask %v; want %d %d %d %v", i, s.Tokens[i], s.Segments[i], s.Positions[i], s.LossMask[i], wantTok[i], wantSeg[i], wantPos[i], wantMask[i])
		}
	}
	p.Fill(docs, 1, s)
	if s.Tokens[5] != 39 || s.Segments[5] != 0 {
		t.Errorf("overlong document not truncated keeping its start: %v", s.Tokens)
	}
	pad, _ := Pack(docs, 6, false)
	if pad.Len() != 4 {
		t.Errorf("pack=false: %d sequences, want one per non-empty document (4)", pad.Len())
	}
	many := make(fakeDocs, 200)
	for i := range many {
		many[i] = []uint32{1}
	}
	mp, _ := Pack(many, 1000, true)
	if mp.Len() != 4 {
		t.Errorf("%d sequences for 200 one-token documents, want 4 (64 documents at most)", mp.Len())
	}
}
