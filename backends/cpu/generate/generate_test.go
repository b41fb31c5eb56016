package generate

import (
	"context"
	"math"
	"testing"

	"github.com/marin-go/marin/backends/cpu/transformer"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/plugins/tasks"
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
		d, err := NewDecoder(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		toks := make([]int32, 40)
		for i := range toks {
			toks[i] = int32((i*37 + 11) % 300)
		}
		// Prefill 30 tokens, then one at a time.
		var got []float32
		for n := 30; n <= len(toks); n++ {
			if n == 30 {
				got, err = d.Feed(toks[:30])
			} else {
				got, err = d.Feed(toks[n-1 : n])
			}
			if err != nil {
				t.Fatal(err)
			}
			want := fullLogits(t, p, toks[:n])
			var maxDiff, scale float64
			for i := range want {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
				scale = math.Max(scale, math.Abs(float64(want[i])))
			}
			if maxDiff > 1e-4*scale+1e-5 {
				t.Fatalf("%s: after %d tokens the cached decoder's logits differ by %g (scale %g)", name, n, maxDiff, scale)
			}
		}
		// Truncate and continue gives the same as a fresh decoder.
		d.Truncate(10)
		a, _ := d.Feed(toks[10:12])
		want := fullLogits(t, p, toks[:12])
		for i := range want {
			if math.Abs(float64(a[i]-want[i])) > 1e-3 {
				t.Fatalf("%s: after Truncate logits differ at %d: %v vs %v", name, i, a[i], want[i])
			}
		}
	}
}

func TestGreedyGenerationFollowsTheArgmax(t *testing.T) {
	p := testParams(t, nil)
	d, _ := NewDecoder(p, 0)
	prompt := []uint32{5, 17, 250, 3}
	res, err := Generate(context.Background(), d, prompt, Options{MaxNewTokens: 12}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tokens) != 12 || res.Stopped {
		t.Fatalf("%+v", res)
	}
	seq := []int32{5, 17, 250, 3}
	for k, tok := range res.Tokens {
		l := fullLogits(t, p, seq)
		best := 0
		for i, v := range l {
			if v > l[best] {
				best = i
			}
		}
		if uint32(best) != tok {
			t.Fatalf("token %d: generated %d, argmax of the full pass %d", k, tok, best)
		}
		seq = append(seq, int32(tok))
	}
	// A stop token ends generation and is not returned.
	d.Reset()
	stop := res.Tokens[3]
	r2, err := Generate(context.Background(), d, prompt, Options{MaxNewTokens: 12, Stop: []uint32{stop}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for first < len(res.Tokens) && res.Tokens[first] != stop {
		first++
	}
	if !r2.Stopped || r2.StopID != stop || len(r2.Tokens) != first {
		t.Errorf("with stop %d: %+v (first occurrence at %d)", stop, r2, first)
	}
}

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

func quickstartVocab(t *testing.T) (*chat.Vocab, *tokenizer.Tokenizer) {
	t.Helper()
	tj, cj, _, err := tasks.TokenizerFiles()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromBytes(tj)
	if err != nil {
		t.Fatal(err)
	}
	v, err := chat.NewVocab(tok, tj, cj)
	if err != nil {
		t.Fatal(err)
	}
	return v, tok
}

func TestPrompterRendersTheGenerationPromptAndStopsAtTheEndOfTurn(t *testing.T) {
	v, tok := quickstartVocab(t)
	o := chat.DefaultOptions()
	o.Name = chat.NameChatML
	p, err := NewPrompter(o, v)
	if err != nil {
		t.Fatal(err)
	}
	imEnd, _ := v.Tok.TokenToID(tasks.IMEnd)
	eot, _ := v.Tok.TokenToID(tasks.EndOfText)
	if st := p.Stop(); len(st) != 2 || st[0] != imEnd || st[1] != eot || p.EndOfTurn() != imEnd {
		t.Errorf("stop tokens %v, want [%d %d]", st, imEnd, eot)
	}
	ids, err := p.Encode([]chat.Message{{Role: "user", Content: "23+58"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>user\n23+58<|im_end|>\n<|im_start|>assistant\n"
	if got := tok.Decode(ids, false); got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
	// The user typing a control token gets text, not the token.
	ids, _ = p.Encode([]chat.Message{{Role: "user", Content: "<|im_end|>"}})
	// <|im_start|> "user\n" (5 bytes), the 10 bytes of the text, <|im_end|>.
	for _, id := range ids[6:16] {
		if id == imEnd {
			t.Errorf("user text became the control token: %v", ids)
		}
	}
	// The hf_template format renders the tokenizer's chat template.
	q, err := NewPrompter(chat.DefaultOptions(), v)
	if err != nil {
		t.Fatal(err)
	}
	ids2, err := q.Encode([]chat.Message{{Role: "user", Content: "23+58"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(ids2, false); got != "<|user|>23+58<|assistant|>" {
		t.Errorf("hf_template prompt %q", got)
	}
	end, _ := v.Tok.TokenToID(tasks.End)
	if st := q.Stop(); len(st) != 2 || st[0] != end || st[1] != eot {
		t.Errorf("hf_template stop tokens %v, want [%d %d]", st, end, eot)
	}
}
