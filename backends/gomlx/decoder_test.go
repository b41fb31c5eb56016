package gomlx

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/sample"
)

func decoderParams(t *testing.T) *llama.Params {
	t.Helper()
	cfg := llama.Config{ModelType: "qwen2", VocabSize: 50, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 200}
	p := initParams(t, cfg, 5)
	for i := range p.Flat() {
		p.Flat()[i] *= 10 // logits far from uniform
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

func seq(n, seed int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32((i*7 + seed*13 + 1) % 50)
	}
	return s
}

func near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d logits, want %d", what, len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("%s: logit %d is %v, the cpu decoder's %v", what, i, got[i], want[i])
		}
	}
}

// The GoMLX decoder's key/value cache gives the cpu decoder's logits, for
// rows fed together with different lengths, across cache growth (past 64
// positions), with Every, after Truncate and in several passes.
func TestDecoderMatchesTheCPUDecoder(t *testing.T) {
	p := decoderParams(t)
	ctx := context.Background()
	gd, err := DecoderFactory(Options{})(p, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer gd.Close()
	cd, err := cpu.NewDecoder(p, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cd.Close()
	steps := []struct {
		feed [][]int32
		want sample.Want
	}{
		{[][]int32{seq(5, 1), seq(40, 2), seq(1, 3)}, sample.Last},
		{[][]int32{seq(1, 4), nil, seq(2, 5)}, sample.Every},
		{[][]int32{nil, seq(100, 6)}, sample.Last}, // grows row 1 past 64, then 128
		{[][]int32{seq(3, 7), seq(1, 8), seq(1, 9)}, sample.Every},
	}
	for i, s := range steps {
		g, err := gd.Feed(ctx, s.feed, s.want)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		c, err := cd.Feed(ctx, s.feed, s.want)
		if err != nil {
			t.Fatal(err)
		}
		for r := range 3 {
			near(t, fmt.Sprintf("step %d row %d", i, r), g[r], c[r])
			if gd.Len(r) != cd.Len(r) {
				t.Fatalf("step %d row %d: length %d, cpu %d", i, r, gd.Len(r), cd.Len(r))
			}
		}
		if i == 2 {
			gd.Truncate(1, 30)
			cd.Truncate(1, 30)
		}
	}
	// A pass larger than one chunk (256 tokens over all rows).
	gd.Reset()
	cd.Reset()
	long := [][]int32{seq(180, 10), seq(150, 11)}
	g, err := gd.Feed(ctx, long, sample.Last)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cd.Feed(ctx, long, sample.Last)
	near(t, "long row 0", g[0], c[0])
	near(t, "long row 1", g[1], c[1])
	if _, err := gd.Feed(ctx, [][]int32{seq(30, 1)}, sample.Last); err == nil {
		t.Error("a row was fed past max_position_embeddings")
	}
}

// The accelerator recipe (bf16 compute and caches) decodes on the pure-Go
// engine too, which emulates bf16: its logits track float32's.
func TestDecoderBF16TracksFloat32(t *testing.T) {
	p := decoderParams(t)
	ctx := context.Background()
	on := true
	feed := [][]int32{seq(20, 1), seq(7, 2)}
	var logits [2][][]float32
	for i, o := range []Options{{}, {BF16: &on}} {
		d, err := DecoderFactory(o)(p, 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, err := d.Feed(ctx, feed, sample.Last)
		if err != nil {
			t.Fatal(err)
		}
		logits[i] = out
		d.Close()
	}
	for r := range feed {
		var diff, scale float64
		for j, x := range logits[0][r] {
			diff = math.Max(diff, math.Abs(float64(logits[1][r][j]-x)))
			scale = math.Max(scale, math.Abs(float64(x)))
		}
		if diff > 0.05*scale {
			t.Errorf("row %d: bf16 logits differ by %.3g (scale %.3g)", r, diff, scale)
		}
		t.Logf("row %d: bf16 vs float32 logits within %.3g (scale %.3g)", r, diff, scale)
	}
}
