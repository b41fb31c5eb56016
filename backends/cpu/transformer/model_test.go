package transformer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/model/llama"
)

func tinyConfig() llama.Config {
	return llama.Config{
		HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 4,
		VocabSize: 11, MaxPositionEmbeddings: 64, RMSNormEps: 1e-5, RopeTheta: 100,
	}
}

// testConfigs cover the model's options: GQA with head_dim ≠ d/heads, an
// untied and a tied head, Qwen2 q/k/v biases, Llama attention and MLP
// biases, Llama 3 and linear RoPE scaling.
func testConfigs() map[string]llama.Config {
	base := tinyConfig()
	tied := base
	tied.TieWordEmbeddings = true
	tied.ModelType = "qwen2"
	tied.RopeScaling = &llama.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
	biased := base
	biased.AttentionBias, biased.MLPBias = true, true
	biased.NumKeyValueHeads = 1
	biased.RopeScaling = &llama.RopeScaling{RopeType: "linear", Factor: 2}
	return map[string]llama.Config{"gqa_untied": base, "qwen2_tied_llama3rope": tied, "mqa_biases_linearrope": biased}
}

// randomParams fills every tensor with values large enough that every
// path of the model matters (the default init's 0.02 makes most of them
// vanish).
func randomParams(t testing.TB, cfg llama.Config, seed uint64) *llama.Params {
	p, err := llama.NewParams(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 99))
	for _, tn := range p.Tensors() {
		for i := range tn.Data {
			v := r.NormFloat64() * 0.5
			if strings.HasSuffix(tn.Name, "norm.weight") {
				v = 1 + 0.2*r.NormFloat64()
			}
			tn.Data[i] = float32(v)
		}
	}
	return p
}

// testBatch has two packed documents and padding in row 0, one document in
// row 1 and, in row 2, a segment id that reappears after another document
// (attention must still follow ids, not runs).
func testBatch(cfg llama.Config, seed uint64) *llama.Batch {
	const T = 9
	segs := [][]int32{
		{0, 0, 0, 0, 1, 1, 1, -1, -1},
		{5, 5, 5, 5, 5, 5, 5, 5, 5},
		{2, 2, 3, 3, 3, 2, 2, 2, 4},
	}
	b := llama.NewBatch(len(segs), T)
	r := rand.New(rand.NewPCG(seed, 7))
	for row, s := range segs {
		copy(b.Segments[row*T:], s)
	}
	for i := range b.Tokens {
		b.Tokens[i] = int32(r.IntN(cfg.VocabSize))
	}
	b.Positions = nil
	for i := range b.LossMask {
		t := i % T
		if t < T-1 && b.Segments[i] >= 0 && b.Segments[i] == b.Segments[i+1] {
			b.LossMask[i] = r.Float64() < 0.8
		}
	}
	return b
}

func TestForwardMatchesReference(t *testing.T) {
	for name, cfg := range testConfigs() {
		t.Run(name, func(t *testing.T) {
			p := randomParams(t, cfg, 1)
			m, err := New(cfg, p)
			if err != nil {
				t.Fatal(err)
			}
			b := testBatch(cfg, 2)
			all := make([]int, b.B*b.T)
			for i := range all {
				all[i] = i
			}
			got, err := m.Logits(b, all)
			if err != nil {
				t.Fatal(err)
			}
			want := refLogits(cfg, toRef(p), b)
			V := cfg.VocabSize
			for i := range all {
				if b.Segments[i] < 0 {
					continue
				}
				for j := 0; j < V; j++ {
					w := want[i][j]
					if d := math.Abs(float64(got[i*V+j]) - w); d > 1e-4*(1+math.Abs(w)) {
						t.Fatalf("logit[%d][%d] = %g, want %g", i, j, got[i*V+j], w)
					}
				}
			}
			for _, zw := range []float64{0, 1e-2} {
				res, err := m.Loss(b, llama.LossOptions{ZLossWeight: zw})
				if err != nil {
					t.Fatal(err)
				}
				ce, z := refLoss(cfg, toRef(p), b, zw)
				if res.Count != b.TrainedCount() {
					t.Fatalf("count %d, want %d", res.Count, b.TrainedCount())
				}
				if math.Abs(res.Loss-ce) > 1e-5*math.Abs(ce) || math.Abs(res.ZLoss-z) > 1e-5*math.Abs(z)+1e-12 {
					t.Fatalf("zw=%g: loss %g z %g, want %g %g", zw, res.Loss, res.ZLoss, ce, z)
				}
			}
		})
	}
}

// TestModelGradients checks every parameter's gradient against central
// finite differences of the float64 reference loss (cross-entropy plus
// z-loss, summed over a masked, packed, padded batch).
func TestModelGradients(t *testing.T) {
	const zw = 0.05
	for name, cfg := range testConfigs() {
		t.Run(name, func(t *testing.T) {
			p := randomParams(t, cfg, 3)
			m, err := New(cfg, p)
			if err != nil {
				t.Fatal(err)
			}
			b := testBatch(cfg, 4)
			g, _ := llama.NewParams(cfg)
			const scale = 0.5
			res, err := m.LossAndGrad(b, llama.LossOptions{ZLossWeight: zw}, g, scale)
			if err != nil {
				t.Fatal(err)
			}
			ref := toRef(p)
			ce, z := refLoss(cfg, ref, b, zw)
			if math.Abs(res.Loss-ce) > 1e-5*ce || math.Abs(res.ZLoss-z) > 1e-5*z {
				t.Fatalf("loss %g+%g, want %g+%g", res.Loss, res.ZLoss, ce, z)
			}
			const h = 1e-5
			for _, tn := range g.Tensors() {
				base := ref[tn.Name]
				idx := sampleIndices(len(base), 24)
				fd := make([]float64, len(idx))
				maxAbs := 0.0
				for n, i := range idx {
					orig := base[i]
					base[i] = orig + h
					c1, z1 := refLoss(cfg, ref, b, zw)
					base[i] = orig - h
					c2, z2 := refLoss(cfg, ref, b, zw)
					base[i] = orig
					fd[n] = scale * ((c1 + z1) - (c2 + z2)) / (2 * h)
					maxAbs = math.Max(maxAbs, math.Abs(fd[n]))
				}
				for n, want := range fd {
					got := float64(tn.Data[idx[n]])
					if d := math.Abs(got - want); d > 2e-4*maxAbs+2e-3*math.Abs(want)+1e-6 {
						t.Errorf("%s[%d]: grad %g, finite difference %g", tn.Name, idx[n], got, want)
						break
					}
				}
			}
		})
	}
}

// sampleIndices returns every index below n when n ≤ k, else k indices
// spread over [0, n) including both ends.
func sampleIndices(n, k int) []int {
	if n <= k {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i * (n - 1) / (k - 1)
	}
	return idx
}

// TestAttentionStaysInDocument: changing a token of one packed document
// changes no logit of another document in the same row, bit for bit.
func TestAttentionStaysInDocument(t *testing.T) {
	cfg := tinyConfig()
	cfg.MaxPositionEmbeddings = 256
	p := randomParams(t, cfg, 5)
	m, err := New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	const T = 150 // several query blocks, documents straddling them
	b := llama.NewBatch(1, T)
	for i := range b.Tokens {
		b.Tokens[i] = int32(i % cfg.VocabSize)
		switch {
		case i < 70:
			b.Segments[i] = 0
		case i < 140:
			b.Segments[i] = 1
		default:
			b.Segments[i] = -1
		}
	}
	b.Positions = nil
	all := make([]int, T)
	for i := range all {
		all[i] = i
	}
	before, err := m.Logits(b, all)
	if err != nil {
		t.Fatal(err)
	}
	for _, pos := range []int{3, 69} {
		bb := *b
		bb.Tokens = append([]int32(nil), b.Tokens...)
		bb.Tokens[pos] = (bb.Tokens[pos] + 5) % int32(cfg.VocabSize)
		after, err := m.Logits(&bb, all)
		if err != nil {
			t.Fatal(err)
		}
		V := cfg.VocabSize
		changed := false
		for i := 0; i < 70; i++ {
			for j := 0; j < V; j++ {
				changed = changed || after[i*V+j] != before[i*V+j]
			}
		}
		if !changed {
			t.Fatalf("perturbing position %d changed nothing in its own document", pos)
		}
		for i := 70; i < 140; i++ {
			for j := 0; j < V; j++ {
				if math.Float32bits(after[i*V+j]) != math.Float32bits(before[i*V+j]) {
					t.Fatalf("perturbing position %d (document 0) changed logit %d of position %d (document 1): %g → %g", pos, j, i, before[i*V+j], after[i*V+j])
				}
			}
		}
	}
}

// TestDeterministicAcrossThreads: loss and every gradient are bit-identical
// for 1, 2 and 3 threads.
func TestDeterministicAcrossThreads(t *testing.T) {
	// Large enough that every matrix product, the LM head's included, takes
	// the parallel path.
	cfg := tinyConfig()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim, cfg.VocabSize = 64, 96, 16, 300
	cfg.MaxPositionEmbeddings = 128
	p := randomParams(t, cfg, 6)
	for i, v := range p.Flat() {
		p.Flat()[i] = v * 0.3
	}
	b := llama.NewBatch(3, 80)
	r := rand.New(rand.NewPCG(8, 8))
	for i := range b.Tokens {
		b.Tokens[i] = int32(r.IntN(cfg.VocabSize))
		b.Segments[i] = int32((i % 80) / 30)
	}
	b.Positions = nil
	for i := range b.LossMask {
		b.LossMask[i] = i%80 < 79 && b.Segments[i] == b.Segments[i+1]
	}
	prev := kernels.Threads()
	defer kernels.SetThreads(prev)
	var first *llama.Params
	var firstLoss llama.LossResult
	for _, th := range []int{1, 2, 3} {
		kernels.SetThreads(th)
		m, err := New(cfg, p)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := llama.NewParams(cfg)
		res, err := m.LossAndGrad(b, llama.LossOptions{ZLossWeight: 1e-3}, g, 1/float32(b.TrainedCount()))
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first, firstLoss = g, res
			continue
		}
		if res != firstLoss {
			t.Fatalf("threads=%d: loss %+v, threads=1 %+v", th, res, firstLoss)
		}
		for i, v := range g.Flat() {
			if math.Float32bits(v) != math.Float32bits(first.Flat()[i]) {
				t.Fatalf("threads=%d: gradient value %d differs: %g vs %g", th, i, v, first.Flat()[i])
			}
		}
	}
}

func TestBatchValidation(t *testing.T) {
	cfg := tinyConfig()
	cases := map[string]func(b *llama.Batch){
		"mask at last position":    func(b *llama.Batch) { b.LossMask[b.T-1] = true },
		"mask across documents":    func(b *llama.Batch) { b.Segments[3] = 1; b.LossMask[2] = true },
		"mask on padding":          func(b *llama.Batch) { b.Segments[2], b.Segments[3] = -1, -1; b.LossMask[2] = true },
		"token outside vocabulary": func(b *llama.Batch) { b.Tokens[1] = int32(cfg.VocabSize) },
		"negative segment":         func(b *llama.Batch) { b.Segments[0] = -2 },
		"position too large":       func(b *llama.Batch) { b.Positions[0] = int32(cfg.MaxPositionEmbeddings) },
		"short tokens":             func(b *llama.Batch) { b.Tokens = b.Tokens[:3] },
	}
	for name, mutate := range cases {
		b := llama.NewBatch(1, 6)
		mutate(b)
		if err := b.Validate(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	b := llama.NewBatch(1, 6)
	b.LossMask[2] = true
	if err := b.Validate(cfg); err != nil {
		t.Fatalf("valid batch refused: %v", err)
	}
}

func TestDerivedPositions(t *testing.T) {
	b := llama.NewBatch(1, 8)
	copy(b.Segments, []int32{0, 0, 0, 1, 1, -1, 2, 2})
	b.Positions = nil
	got := fmt.Sprint(b.DerivedPositions())
	if want := "[0 1 2 0 1 0 0 1]"; got != want {
		t.Fatalf("positions %s, want %s", got, want)
	}
}
