package generate

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/cpu/transformer"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/sample"
)

func testParams(t *testing.T, mod func(*llama.Config)) *llama.Params {
	t.Helper()
	cfg := llama.Config{
		HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		VocabSize: 300, MaxPositionEmbeddings: 96, RMSNormEps: 1e-5, RopeTheta: 10000,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := llama.InitParams(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Larger weights than the 0.02 init so logits are far from uniform.
	for i, v := range p.Flat() {
		p.Flat()[i] = v * 8
	}
	for _, tn := range p.Tensors() {
		if len(tn.Shape) == 1 {
			for i := range tn.Data {
				tn.Data[i] = 1 + float32(i%3)*0.1
			}
		}
	}
	return p
}

func fullLogits(t *testing.T, p *llama.Params, toks []int32) []float32 {
	t.Helper()
	m, err := transformer.New(p.Config, p)
	if err != nil {
		t.Fatal(err)
	}
	b := llama.NewBatch(1, len(toks))
	b.Positions, b.Segments = nil, nil
	copy(b.Tokens, toks)
	out, err := m.Logits(b, []int{len(toks) - 1})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// feed1 feeds one row's tokens and returns its logits.
func feed1(t *testing.T, d *Decoder, r int, toks []int32, want sample.Want) []float32 {
	t.Helper()
	in := make([][]int32, r+1)
	in[r] = toks
	out, err := d.Feed(context.Background(), in, want)
	if err != nil {
		t.Fatal(err)
	}
	return out[r]
}

func closeTo(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d logits, want %d", what, len(got), len(want))
	}
	var maxDiff, scale float64
	for i := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	if maxDiff > 1e-4*scale+1e-5 {
		t.Fatalf("%s: the cached decoder's logits differ by %g (scale %g)", what, maxDiff, scale)
	}
}

func testTokens(n, seed int) []int32 {
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32((i*37 + 11 + seed*101) % 300)
	}
	return toks
}

func TestDecoderMatchesTheFullForwardPass(t *testing.T) {
	for name, mod := range map[string]func(*llama.Config){
		"gqa":    nil,
		"biases": func(c *llama.Config) { c.ModelType = "qwen2"; c.TieWordEmbeddings = true },
		"llama3-rope": func(c *llama.Config) {
			c.NumKeyValueHeads = 1
			c.RopeScaling = &llama.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
		},
	} {
		p := testParams(t, mod)
		if name == "biases" {
			for _, tn := range p.Tensors() {
				if len(tn.Name) > 5 && tn.Name[len(tn.Name)-5:] == ".bias" {
					for i := range tn.Data {
						tn.Data[i] = float32(i%7-3) * 0.05
					}
				}
			}
		}
		d, err := NewDecoder(p, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		toks := testTokens(40, 0)
		// Prefill 30 tokens, then one at a time.
		for n := 30; n <= len(toks); n++ {
			var got []float32
			if n == 30 {
				got = feed1(t, d, 0, toks[:30], sample.Last)
			} else {
				got = feed1(t, d, 0, toks[n-1:n], sample.Last)
			}
			closeTo(t, fmt.Sprintf("%s after %d tokens", name, n), got, fullLogits(t, p, toks[:n]))
		}
		// Truncate and continue gives the same as a fresh decoder.
		d.Truncate(0, 10)
		if d.Len(0) != 10 {
			t.Fatalf("Len after Truncate(0, 10) = %d", d.Len(0))
		}
		closeTo(t, name+" after Truncate", feed1(t, d, 0, toks[10:12], sample.Last), fullLogits(t, p, toks[:12]))
	}
}

// Rows of a batch are fed together, with different lengths, and each
// row's logits are its own sequence's; Every gives the logits after each
// fed token.
func TestBatchedRowsAreIndependent(t *testing.T) {
	p := testParams(t, nil)
	d, err := NewDecoder(p, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	seqs := [][]int32{testTokens(7, 1), testTokens(300, 2)[:65], testTokens(3, 3)}
	// Row 1 gets more tokens than one pass takes for three rows (256/3).
	out, err := d.Feed(context.Background(), [][]int32{seqs[0], seqs[1][:60], seqs[2]}, sample.Last)
	if err != nil {
		t.Fatal(err)
	}
	for r, s := range [][]int32{seqs[0], seqs[1][:60], seqs[2]} {
		closeTo(t, fmt.Sprintf("row %d", r), out[r], fullLogits(t, p, s))
	}
	// Continue only row 1, asking for every position.
	out, err = d.Feed(context.Background(), [][]int32{nil, seqs[1][60:]}, sample.Every)
	if err != nil {
		t.Fatal(err)
	}
	V := p.Config.VocabSize
	if out[0] != nil || out[2] != nil || len(out[1]) != 5*V {
		t.Fatalf("Every: rows %d/%d/%d values", len(out[0]), len(out[1]), len(out[2]))
	}
	for j := range 5 {
		closeTo(t, fmt.Sprintf("row 1 position %d", 60+j), out[1][j*V:(j+1)*V], fullLogits(t, p, seqs[1][:61+j]))
	}
	if d.Len(0) != 7 || d.Len(1) != 65 || d.Len(2) != 3 {
		t.Errorf("lengths %d %d %d", d.Len(0), d.Len(1), d.Len(2))
	}
	// Errors name the row and leave the decoder as it was.
	if _, err := d.Feed(context.Background(), [][]int32{nil, nil, {300}}, sample.Last); err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("token outside the vocabulary: %v", err)
	}
	if _, err := d.Feed(context.Background(), [][]int32{make([]int32, 90)}, sample.Last); err == nil || d.Len(0) != 7 {
		t.Errorf("overfull row: %v, length %d", err, d.Len(0))
	}
	if _, err := d.Feed(context.Background(), [][]int32{nil, nil, nil, {1}}, sample.Last); err == nil {
		t.Error("a fourth row was fed")
	}
	d.Reset()
	if d.Len(1) != 0 {
		t.Error("Reset kept positions")
	}
}

func argmax(l []float32) int {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return best
}

func TestGreedyGenerationFollowsTheArgmax(t *testing.T) {
	p := testParams(t, nil)
	d, _ := NewDecoder(p, 2, 0)
	prompts := [][]uint32{{5, 17, 250, 3}, {9}}
	res, err := sample.Generate(context.Background(), d, prompts, sample.Options{MaxNewTokens: 12}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for r, prompt := range prompts {
		if len(res[r].Tokens) != 12 || res[r].Stopped {
			t.Fatalf("row %d: %+v", r, res[r])
		}
		var seq []int32
		for _, x := range prompt {
			seq = append(seq, int32(x))
		}
		for k, tok := range res[r].Tokens {
			if best := argmax(fullLogits(t, p, seq)); uint32(best) != tok {
				t.Fatalf("row %d token %d: generated %d, argmax of the full pass %d", r, k, tok, best)
			}
			seq = append(seq, int32(tok))
		}
	}
	// A stop token ends its row's generation and is not returned; the other
	// row goes on.
	d.Reset()
	stop := res[0].Tokens[3]
	var streamed [2][]uint32
	r2, err := sample.Generate(context.Background(), d, prompts, sample.Options{MaxNewTokens: 12, Stop: []uint32{stop}},
		func(r int, id uint32) { streamed[r] = append(streamed[r], id) })
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for first < len(res[0].Tokens) && res[0].Tokens[first] != stop {
		first++
	}
	if !r2[0].Stopped || r2[0].StopID != stop || len(r2[0].Tokens) != first || d.Len(0) != len(prompts[0])+first+1 {
		t.Errorf("with stop %d: %+v (first occurrence at %d), %d positions", stop, r2[0], first, d.Len(0))
	}
	if !slices.Equal(streamed[0], r2[0].Tokens) || !slices.Equal(streamed[1], r2[1].Tokens) {
		t.Errorf("streamed %v, returned %v %v", streamed, r2[0].Tokens, r2[1].Tokens)
	}
	want1 := res[1].Tokens
	if i := slices.Index(want1, stop); i >= 0 {
		want1 = want1[:i]
	}
	if !slices.Equal(r2[1].Tokens, want1) {
		t.Errorf("row 1 generated %v with the stop token, want %v", r2[1].Tokens, want1)
	}
}
