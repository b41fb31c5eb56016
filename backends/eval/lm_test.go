package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// fakeEngine scores a token by a fixed rule of its position and value, so
// results can be computed by hand and do not depend on batching; it
// records what it was asked.
type fakeEngine struct {
	maxLen int
	scored []ScoreRequest
	script []int32 // what Generate emits, in order
}

func fakeLP(pos int, tok int32) float64 { return -0.01*float64(pos) - 0.1*float64(tok%7) }

func (f *fakeEngine) MaxLength() int { return f.maxLen }

func (f *fakeEngine) Score(_ context.Context, reqs []ScoreRequest) ([]ScoreResult, error) {
	f.scored = append(f.scored, reqs...)
	out := make([]ScoreResult, len(reqs))
	for i, r := range reqs {
		for _, c := range r.Continuations {
			var lp []float64
			var gr []bool
			for k, tok := range c {
				lp = append(lp, fakeLP(len(r.Context)+k, tok))
				gr = append(gr, tok%7 == 0)
			}
			out[i].LogProbs = append(out[i].LogProbs, lp)
			out[i].Greedy = append(out[i].Greedy, gr)
		}
	}
	return out, nil
}

func (f *fakeEngine) Generate(_ context.Context, reqs []GenerateRequest) ([][]int32, error) {
	out := make([][]int32, len(reqs))
	for i, r := range reqs {
		var g []int32
		for _, tok := range f.script {
			if len(g) == r.MaxNew {
				break
			}
			g = append(g, tok)
			if r.Stop != nil && r.Stop(g) {
				break
			}
		}
		out[i] = g
	}
	return out, nil
}

// quickstartTokenizer is the byte-level tokenizer the quickstart ships:
// one token per byte, control tokens from 256, a chat template.
func quickstartTokenizer(t *testing.T) (*tokenizer.Tokenizer, *chat.Vocab) {
	t.Helper()
	dir := filepath.Join("..", "..", "experiments", "quickstart", "tokenizer")
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	cj, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
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
	return tok, v
}

func ids(s string) []int32 {
	out := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int32(s[i])
	}
	return out
}

// TestEncodePairConventions: a context's trailing whitespace moves to the
// continuation (lm-eval's _encode_pair); an empty context is the prefix
// token (BOS, else EOS).
func TestEncodePairConventions(t *testing.T) {
	tok, v := quickstartTokenizer(t)
	lm := &LM{Engine: &fakeEngine{maxLen: 64}, Tok: tok, Vocab: v}
	c, k, err := lm.encodePair(Prompt{Text: "Answer: "}, "yes")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, ids("Answer:")) || !reflect.DeepEqual(k, ids(" yes")) {
		t.Errorf("context %v continuation %v", c, k)
	}
	c, k, err = lm.encodePair(Prompt{Text: ""}, "hi")
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.TokenToID(v.EOS)
	if !reflect.DeepEqual(c, []int32{int32(eos)}) || !reflect.DeepEqual(k, ids("hi")) {
		t.Errorf("empty context: %v %v (eos %d)", c, k, eos)
	}
}

// TestLoglikelihoodGroupsAndTruncates: continuations of one context reach
// the engine as one request; an over-long pair loses context tokens on the
// left (lm-eval's (ctx + cont)[-(max_length+1):][:-1]).
func TestLoglikelihoodGroupsAndTruncates(t *testing.T) {
	tok, v := quickstartTokenizer(t)
	f := &fakeEngine{maxLen: 12}
	lm := &LM{Engine: f, Tok: tok, Vocab: v}
	reqs := []LLRequest{
		{Prompt{Text: "Q: x\nA:"}, " no"},
		{Prompt{Text: "Q: x\nA:"}, " yes"},
		{Prompt{Text: "Q: a much longer question\nA:"}, " ok"},
	}
	res, err := lm.Loglikelihood(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.scored) != 2 {
		t.Fatalf("%d engine requests, want 2 (one per context)", len(f.scored))
	}
	var long ScoreRequest
	for _, s := range f.scored {
		if len(s.Continuations) == 1 {
			long = s
		}
	}
	full := ids("Q: a much longer question\nA:")
	// 30 context + 3 continuation tokens > 12+1: keep the last 10 of the context.
	if want := full[len(full)-10:]; !reflect.DeepEqual(long.Context, want) {
		t.Errorf("truncated context %q, want %q", string(toBytes(long.Context)), string(toBytes(want)))
	}
	want := 0.0
	for k, b := range []byte(" yes") {
		want += fakeLP(len(ids("Q: x\nA:"))+k, int32(b))
	}
	if math.Abs(res[1].LogProb-want) > 1e-12 {
		t.Errorf("loglikelihood %v, want %v", res[1].LogProb, want)
	}
	// " no": ' ' is 32 (32%7 = 4) → not greedy.
	if res[0].Greedy {
		t.Error("greedy should need every token to be the argmax")
	}
}

func toBytes(t []int32) []byte {
	out := make([]byte, len(t))
	for i, v := range t {
		out[i] = byte(v)
	}
	return out
}

// TestRollingWindows: lm-eval's get_rolling_token_windows(tokens 1..7,
// prefix 0, max_seq_len 3, context_len 1) through make_disjoint_window, as
// its Python gives them: ([0], [1, 2, 3]), ([3], [4, 5, 6]), ([4, 5, 6], [7]).
// Every token is predicted once; the last window keeps a full context.
func TestRollingWindows(t *testing.T) {
	w := rollingWindows([]int32{1, 2, 3, 4, 5, 6, 7}, 0, 3)
	want := [][2][]int32{
		{{0}, {1, 2, 3}},
		{{3}, {4, 5, 6}},
		{{4, 5, 6}, {7}},
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("windows %v, want %v", w, want)
	}
}

// TestGenerateUntilCutsAtStops: generation ends at a stop sequence and the
// text is cut before it; with a chat template the format's end of turn
// also stops it.
func TestGenerateUntilCutsAtStops(t *testing.T) {
	tok, v := quickstartTokenizer(t)
	end, _ := tok.TokenToID("<|end|>")
	f := &fakeEngine{maxLen: 200, script: append(ids("42\n\nQ: next"), int32(end))}
	lm := &LM{Engine: f, Tok: tok, Vocab: v}
	out, err := lm.GenerateUntil(context.Background(), []GenRequest{{Context: Prompt{Text: "Q: 6*7\nA:"}, Until: []string{"Q:"}, MaxGenToks: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != "42\n\n" {
		t.Errorf("generated %q", out[0])
	}
	f.script = append(ids("42"), int32(end), 'x', 'y')
	lm.Format, err = chat.New(chat.DefaultOptions(), v)
	if err != nil {
		t.Fatal(err)
	}
	out, err = lm.GenerateUntil(context.Background(), []GenRequest{{Context: Prompt{Messages: []chat.Message{{Role: "user", Content: "6*7"}}}, MaxGenToks: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != "42" {
		t.Errorf("chat generation %q, want it to stop at <|end|>", out[0])
	}
}

// TestChatContextSplitsAtLastControlToken: a chat prompt's tokens up to
// its last control token are fixed; the text after it is encoded together
// with the continuation.
func TestChatContextSplitsAtLastControlToken(t *testing.T) {
	tok, v := quickstartTokenizer(t)
	fm, err := chat.New(chat.DefaultOptions(), v)
	if err != nil {
		t.Fatal(err)
	}
	lm := &LM{Engine: &fakeEngine{maxLen: 64}, Tok: tok, Vocab: v, Format: fm}
	c, k, err := lm.encodePair(Prompt{Messages: []chat.Message{{Role: "user", Content: "2+2"}}}, "4")
	if err != nil {
		t.Fatal(err)
	}
	user, _ := tok.TokenToID("<|user|>")
	asst, _ := tok.TokenToID("<|assistant|>")
	want := append(append([]int32{int32(user)}, ids("2+2")...), int32(asst))
	if !reflect.DeepEqual(c, want) || !reflect.DeepEqual(k, ids("4")) {
		t.Errorf("context %v continuation %v, want %v %v", c, k, want, ids("4"))
	}
}
