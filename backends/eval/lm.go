package eval

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// Engine is what an evaluation needs from a compute engine: the log
// probabilities of token continuations and greedy generation. backends/cpu
// and backends/gomlx implement it; everything above token ids (templates,
// tokenization, chat formats, metrics) is here.
type Engine interface {
	// MaxLength is the most positions one sequence may hold (the model's
	// max_position_embeddings, or less).
	MaxLength() int
	// Score returns, for each request, the log-probability of every token
	// of every continuation given the context and what precedes it in the
	// continuation, and whether each token is the argmax there. The
	// continuations of one request share the context's forward pass where
	// the engine can. len(Context) + len(longest continuation) - 1 <=
	// MaxLength; the context is never empty.
	Score(ctx context.Context, reqs []ScoreRequest) ([]ScoreResult, error)
	// Generate continues each prompt greedily (argmax, lowest id on ties)
	// until MaxNew tokens or until Stop says so, and returns the new tokens
	// (including the one that made Stop true). len(Prompt) + MaxNew <=
	// MaxLength.
	Generate(ctx context.Context, reqs []GenerateRequest) ([][]int32, error)
}

// ScoreRequest is one context and the continuations to score after it.
type ScoreRequest struct {
	Context       []int32
	Continuations [][]int32
}

// ScoreResult holds, per continuation, per token, log p and whether the
// token was the argmax.
type ScoreResult struct {
	LogProbs [][]float64
	Greedy   [][]bool
}

// GenerateRequest is one prompt to continue.
type GenerateRequest struct {
	Prompt []int32
	MaxNew int
	// Stop, when not nil, is called with the tokens generated so far after
	// each new token; true ends this request.
	Stop func(generated []int32) bool
}

// Prompt is a request's context: plain text, or chat messages rendered by
// the model's chat format with the generation prompt.
type Prompt struct {
	Text     string
	Messages []chat.Message
	// Continue renders the last (assistant) message as an unfinished turn
	// (lm-eval's gen_prefix), instead of adding a generation prompt.
	Continue bool
}

// IsChat reports whether p is rendered with a chat format.
func (p Prompt) IsChat() bool { return p.Messages != nil }

// LM turns lm-eval's string requests into token requests for an Engine,
// tokenizing exactly as lm-eval's HFLM does: a context and its
// continuation are encoded together and split after the context's tokens
// (trailing spaces of the context move to the continuation), plain text
// gets the tokenizer's special tokens, an empty context is the BOS (else
// EOS) token, over-long inputs lose tokens on the left.
type LM struct {
	Engine Engine
	Tok    *tokenizer.Tokenizer
	Vocab  *chat.Vocab
	// Format renders chat prompts; nil when the run applies no chat
	// template.
	Format chat.Format
	// BatchSize is how many requests go to the engine at once.
	BatchSize int
	// MaxLength overrides the engine's, when smaller and positive.
	MaxLength int
	// Progress, when set, is told of finished requests.
	Progress func(kind string, done, total int)

	enc       *chat.Encoder
	turnEnds  []string
	turnEndOK bool
}

// chatStops returns the control tokens that end an assistant turn in the
// chat format (what the format writes right after the reply). Generation
// with a chat template stops at them as well as at the tokenizer's EOS:
// an instruction model ends its turn there (vLLM stops at the same tokens
// through generation_config's eos_token_id list).
func (lm *LM) chatStops() []string {
	if lm.Format == nil || lm.turnEndOK {
		return lm.turnEnds
	}
	lm.turnEndOK = true
	out, err := lm.Format.Render(context.Background(), []chat.Conversation{{ID: "stops", Messages: []chat.Message{
		{Role: "user", Content: "x"}, {Role: "assistant", Content: sentinel}}}})
	if err != nil || len(out) != 1 || out[0].Skip != "" {
		return nil
	}
	after := false
	for _, s := range out[0].Segments {
		if !after {
			if s.Special == "" && strings.Contains(s.Text, sentinel) {
				after = true
				rest := s.Text[strings.Index(s.Text, sentinel)+len(sentinel):]
				if s.Literal {
					lm.turnEnds = append(lm.turnEnds, lm.specialsIn(rest)...)
				}
			}
			continue
		}
		if s.Special != "" {
			lm.turnEnds = append(lm.turnEnds, s.Special)
		} else if s.Literal {
			lm.turnEnds = append(lm.turnEnds, lm.specialsIn(s.Text)...)
		}
		if len(lm.turnEnds) > 0 {
			break
		}
	}
	return lm.turnEnds
}

// specialsIn lists the special-token strings in a literal text.
func (lm *LM) specialsIn(s string) []string {
	var out []string
	for j := 0; j < len(s); {
		if t, ok := lm.Vocab.SpecialAt(s, j); ok {
			out = append(out, t.Content)
			j += len(t.Content)
			continue
		}
		j++
	}
	return out
}

func (lm *LM) maxLen() int {
	n := lm.Engine.MaxLength()
	if lm.MaxLength > 0 && lm.MaxLength < n {
		n = lm.MaxLength
	}
	return n
}

func (lm *LM) batch() int {
	if lm.BatchSize > 0 {
		return lm.BatchSize
	}
	return 16
}

var (
	plainOpts = tokenizer.EncodeOptions{AddSpecialTokens: true, SplitSpecial: true}
	textOpts  = tokenizer.EncodeOptions{SplitSpecial: false}
	rawOpts   = tokenizer.EncodeOptions{SplitSpecial: true}
)

func toInt32(ids []uint32) []int32 {
	out := make([]int32, len(ids))
	for i, v := range ids {
		out[i] = int32(v)
	}
	return out
}

// prefixTokenID is lm-eval's prefix_token_id: BOS, else EOS.
func (lm *LM) prefixTokenID() (int32, error) {
	for _, t := range []string{lm.Vocab.BOS, lm.Vocab.EOS} {
		if t == "" {
			continue
		}
		if id, ok := lm.Tok.TokenToID(t); ok {
			return int32(id), nil
		}
	}
	return 0, fmt.Errorf("the tokenizer names neither a BOS nor an EOS token to condition an empty context on")
}

// encodedContext is a context as token ids that precede its tail text, and
// the tail: the text a continuation is encoded together with.
type encodedContext struct {
	prefix []int32
	tail   string
	opts   tokenizer.EncodeOptions // how the tail (+ continuation) is encoded
	shown  string                  // the context as text, for sample records
}

// encodeContext renders p. For plain text the whole text is the tail,
// encoded with the tokenizer's special tokens (not added again when the
// text already starts with BOS). For chat, everything up to the last
// control token is the prefix and the text after it the tail.
func (lm *LM) encodeContext(p Prompt) (encodedContext, error) {
	if !p.IsChat() {
		opts := plainOpts
		if lm.Vocab.BOS != "" && strings.HasPrefix(p.Text, lm.Vocab.BOS) {
			opts = rawOpts
		}
		return encodedContext{tail: p.Text, opts: opts, shown: p.Text}, nil
	}
	if lm.Format == nil {
		return encodedContext{}, fmt.Errorf("a chat prompt but no chat format")
	}
	segs, err := lm.renderChat(p)
	if err != nil {
		return encodedContext{}, err
	}
	// Find the end of the last control token.
	cut, cutIn := -1, 0
	for i, s := range segs {
		if s.Special != "" {
			cut, cutIn = i, -1
			continue
		}
		if s.Literal {
			for j := 0; j < len(s.Text); {
				if t, ok := lm.Vocab.SpecialAt(s.Text, j); ok {
					j += len(t.Content)
					cut, cutIn = i, j
					continue
				}
				j++
			}
		}
	}
	var head []chat.Segment
	var tail strings.Builder
	switch {
	case cut < 0:
		for _, s := range segs {
			tail.WriteString(s.Text)
		}
	case cutIn < 0:
		head = segs[:cut+1]
		for _, s := range segs[cut+1:] {
			tail.WriteString(s.Text)
		}
	default:
		head = append(append([]chat.Segment{}, segs[:cut]...), chat.Segment{Text: segs[cut].Text[:cutIn], Literal: true})
		tail.WriteString(segs[cut].Text[cutIn:])
		for _, s := range segs[cut+1:] {
			tail.WriteString(s.Text)
		}
	}
	if lm.enc == nil {
		lm.enc = chat.NewEncoder(lm.Vocab)
	}
	ids, _, err := lm.enc.Encode(head)
	if err != nil {
		return encodedContext{}, fmt.Errorf("chat format %s: %w", lm.Format.Name(), err)
	}
	var shown strings.Builder
	for _, s := range segs {
		shown.WriteString(s.Text + s.Special)
	}
	return encodedContext{prefix: toInt32(ids), tail: tail.String(), opts: textOpts, shown: shown.String()}, nil
}

// sentinel marks where the assistant's reply begins in a rendered chat.
const sentinel = "\x00MARINEVALREPLY\x00"

// renderChat renders p's messages up to where the assistant's reply
// begins. A system message the format cannot render is dropped and the
// rendering retried, as lm-eval does on a template error.
func (lm *LM) renderChat(p Prompt) ([]chat.Segment, error) {
	msgs := append([]chat.Message(nil), p.Messages...)
	if p.Continue && len(msgs) > 0 && msgs[len(msgs)-1].Role == "assistant" {
		msgs[len(msgs)-1].Content += sentinel
	} else {
		msgs = append(msgs, chat.Message{Role: "assistant", Content: sentinel})
	}
	segs, err := lm.renderUntilSentinel(msgs)
	if err != nil && len(msgs) > 0 && msgs[0].Role == "system" {
		if segs2, err2 := lm.renderUntilSentinel(msgs[1:]); err2 == nil {
			return segs2, nil
		}
	}
	return segs, err
}

func (lm *LM) renderUntilSentinel(msgs []chat.Message) ([]chat.Segment, error) {
	out, err := lm.Format.Render(context.Background(), []chat.Conversation{{ID: "prompt", Messages: msgs}})
	if err != nil {
		return nil, fmt.Errorf("chat format %s: %w", lm.Format.Name(), err)
	}
	if len(out) != 1 || out[0].Skip != "" {
		detail := ""
		if len(out) == 1 {
			detail = ": " + out[0].Skip + " " + out[0].SkipDetail
		}
		return nil, fmt.Errorf("chat format %s cannot render the prompt%s", lm.Format.Name(), detail)
	}
	segs := out[0].Segments
	for i, s := range segs {
		if s.Special != "" {
			continue
		}
		if j := strings.Index(s.Text, sentinel); j >= 0 {
			res := append([]chat.Segment(nil), segs[:i]...)
			if j > 0 {
				b := s
				b.Text = s.Text[:j]
				res = append(res, b)
			}
			return res, nil
		}
	}
	return nil, fmt.Errorf("chat format %s: could not find where the assistant's reply begins", lm.Format.Name())
}

// LLRequest is a loglikelihood request: a context and a continuation.
type LLRequest struct {
	Context      Prompt
	Continuation string
}

// LLResult is lm-eval's (logprob, is_greedy).
type LLResult struct {
	LogProb float64
	Greedy  bool
}

// pair is one encoded (context, continuation) request.
type pair struct {
	ctx, cont []int32
	idx       int
}

// encodePair is lm-eval's _encode_pair.
func (lm *LM) encodePair(p Prompt, continuation string) (ctxIDs, contIDs []int32, err error) {
	ec, err := lm.encodeContext(p)
	if err != nil {
		return nil, nil, err
	}
	if ec.tail == "" && len(ec.prefix) == 0 {
		// Empty context: condition on the prefix token.
		pid, err := lm.prefixTokenID()
		if err != nil {
			return nil, nil, err
		}
		cont := toInt32(lm.Tok.Encode(continuation, textOpts))
		if len(cont) > 0 && cont[0] == pid {
			return cont[:1], cont[1:], nil
		}
		return []int32{pid}, cont, nil
	}
	ctx, cont := ec.tail, continuation
	n := len(ctx) - len(strings.TrimRight(ctx, " \t\n\r\v\f"))
	if n > 0 {
		cont = ctx[len(ctx)-n:] + cont
		ctx = ctx[:len(ctx)-n]
	}
	whole := toInt32(lm.Tok.Encode(ctx+cont, ec.opts))
	ctxEnc := toInt32(lm.Tok.Encode(ctx, ec.opts))
	if len(ctxEnc) > len(whole) {
		ctxEnc = whole
	}
	ctxIDs = append(append([]int32(nil), ec.prefix...), ctxEnc...)
	contIDs = whole[len(ctxEnc):]
	if len(ctxIDs) == 0 {
		pid, err := lm.prefixTokenID()
		if err != nil {
			return nil, nil, err
		}
		ctxIDs = []int32{pid}
	}
	return ctxIDs, contIDs, nil
}

// Loglikelihood scores requests; continuations of equal contexts go to the
// engine together so they share the context's forward pass.
func (lm *LM) Loglikelihood(ctx context.Context, reqs []LLRequest) ([]LLResult, error) {
	pairs := make([]pair, len(reqs))
	for i, r := range reqs {
		c, k, err := lm.encodePair(r.Context, r.Continuation)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		if len(k) == 0 {
			return nil, fmt.Errorf("request %d: the continuation %q encodes to no tokens", i, abbreviate(r.Continuation, 40))
		}
		pairs[i] = pair{ctx: c, cont: k, idx: i}
	}
	return lm.scorePairs(ctx, pairs, "loglikelihood")
}

// scorePairs truncates, groups by context, batches and scores.
func (lm *LM) scorePairs(ctx context.Context, pairs []pair, kind string) ([]LLResult, error) {
	maxLen := lm.maxLen()
	type group struct {
		ctx   []int32
		items []pair
	}
	var groups []*group
	byCtx := map[string]*group{}
	for _, p := range pairs {
		if len(p.cont) > maxLen {
			return nil, fmt.Errorf("a continuation of %d tokens exceeds the model's %d positions", len(p.cont), maxLen)
		}
		c := p.ctx
		if total := len(c) + len(p.cont); total > maxLen+1 {
			// lm-eval: (ctx + cont)[-(max_length+1):][:-1]
			c = c[total-(maxLen+1):]
			p.ctx = c
			g := &group{ctx: c, items: []pair{p}}
			groups = append(groups, g)
			continue
		}
		key := tokenKey(c)
		g := byCtx[key]
		if g == nil {
			g = &group{ctx: c}
			byCtx[key] = g
			groups = append(groups, g)
		}
		g.items = append(g.items, p)
	}
	// Longest first, as lm-eval orders requests: time estimates err high
	// and memory trouble shows at once.
	sort.SliceStable(groups, func(i, j int) bool { return len(groups[i].ctx) > len(groups[j].ctx) })
	out := make([]LLResult, len(pairs))
	done := 0
	bs := lm.batch()
	for start := 0; start < len(groups); start += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+bs, len(groups))
		reqs := make([]ScoreRequest, 0, end-start)
		for _, g := range groups[start:end] {
			sr := ScoreRequest{Context: g.ctx}
			for _, it := range g.items {
				sr.Continuations = append(sr.Continuations, it.cont)
			}
			reqs = append(reqs, sr)
		}
		res, err := lm.Engine.Score(ctx, reqs)
		if err != nil {
			return nil, err
		}
		if len(res) != len(reqs) {
			return nil, fmt.Errorf("engine scored %d of %d requests", len(res), len(reqs))
		}
		for gi, g := range groups[start:end] {
			for ci, it := range g.items {
				lp, gr := res[gi].LogProbs[ci], res[gi].Greedy[ci]
				if len(lp) != len(it.cont) || len(gr) != len(it.cont) {
					return nil, fmt.Errorf("engine returned %d scores for a %d-token continuation", len(lp), len(it.cont))
				}
				r := LLResult{Greedy: true}
				for k := range lp {
					r.LogProb += lp[k]
					r.Greedy = r.Greedy && gr[k]
				}
				out[it.idx] = r
				done++
			}
		}
		if lm.Progress != nil {
			lm.Progress(kind, done, len(pairs))
		}
	}
	return out, nil
}

func tokenKey(t []int32) string {
	b := make([]byte, 4*len(t))
	for i, v := range t {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return string(b)
}

// LoglikelihoodRolling is lm-eval's loglikelihood_rolling: the text's
// total log-probability, in disjoint windows of at most MaxLength tokens
// each conditioned on the token before it (the prefix token for the
// first).
func (lm *LM) LoglikelihoodRolling(ctx context.Context, texts []string) ([]float64, error) {
	pid, err := lm.prefixTokenID()
	if err != nil {
		return nil, err
	}
	maxLen := lm.maxLen()
	var pairs []pair
	var owner []int
	for i, s := range texts {
		toks := toInt32(lm.Tok.Encode(s, plainOpts))
		for _, w := range rollingWindows(toks, pid, maxLen) {
			pairs = append(pairs, pair{ctx: w[0], cont: w[1], idx: len(pairs)})
			owner = append(owner, i)
		}
	}
	res, err := lm.scorePairs(ctx, pairs, "loglikelihood_rolling")
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(texts))
	for k, r := range res {
		out[owner[k]] += r.LogProb
	}
	return out, nil
}

// rollingWindows is lm-eval's get_rolling_token_windows with context_len 1
// followed by make_disjoint_window: (context, continuation) pairs that
// together predict every token once.
func rollingWindows(toks []int32, prefix int32, maxLen int) [][2][]int32 {
	if len(toks) == 0 {
		return nil
	}
	var out [][2][]int32
	predLen := maxLen
	first := min(maxLen, len(toks))
	in := append([]int32{prefix}, toks[:first-1]...)
	pred := toks[:first]
	out = append(out, disjoint(in, pred))
	done := first
	for done < len(toks) {
		n := min(len(toks)-done, predLen)
		end := done + n
		lo := max(end-maxLen-1, 0)
		out = append(out, disjoint(toks[lo:end-1], toks[end-n:end]))
		done += n
	}
	return out
}

func disjoint(in, pred []int32) [2][]int32 {
	c := in[:len(in)-(len(pred)-1)]
	return [2][]int32{append([]int32(nil), c...), append([]int32(nil), pred...)}
}

// GenRequest is a generate_until request.
type GenRequest struct {
	Context    Prompt
	Until      []string
	MaxGenToks int
}

// GenerateUntil generates greedily for each request until a stop sequence,
// the EOS token or MaxGenToks, and cuts the text at the first stop
// sequence, as lm-eval does.
func (lm *LM) GenerateUntil(ctx context.Context, reqs []GenRequest) ([]string, error) {
	maxLen := lm.maxLen()
	eosText := ""
	if lm.Vocab.EOS != "" {
		eosText = lm.Vocab.EOS
	}
	type item struct {
		idx    int
		prompt []int32
		until  []string
		maxNew int
	}
	items := make([]item, len(reqs))
	for i, r := range reqs {
		ec, err := lm.encodeContext(r.Context)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		ids := append(append([]int32(nil), ec.prefix...), toInt32(lm.Tok.Encode(ec.tail, ec.opts))...)
		maxNew := r.MaxGenToks
		if maxNew <= 0 {
			maxNew = 256
		}
		if maxNew >= maxLen {
			return nil, fmt.Errorf("max_gen_toks %d must be less than the model's %d positions", maxNew, maxLen)
		}
		if keep := maxLen - maxNew; len(ids) > keep {
			ids = ids[len(ids)-keep:] // left truncation, as lm-eval does
		}
		if len(ids) == 0 {
			pid, err := lm.prefixTokenID()
			if err != nil {
				return nil, err
			}
			ids = []int32{pid}
		}
		until := append([]string(nil), r.Until...)
		if eosText != "" && !contains(until, eosText) {
			until = append(until, eosText)
		}
		if r.Context.IsChat() {
			for _, s := range lm.chatStops() {
				if !contains(until, s) {
					until = append(until, s)
				}
			}
		}
		items[i] = item{idx: i, prompt: ids, until: until, maxNew: maxNew}
	}
	sort.SliceStable(items, func(a, b int) bool { return len(items[a].prompt) > len(items[b].prompt) })
	eosID, hasEOS := int32(-1), false
	if eosText != "" {
		if id, ok := lm.Tok.TokenToID(eosText); ok {
			eosID, hasEOS = int32(id), true
		}
	}
	out := make([]string, len(reqs))
	bs := lm.batch()
	done := 0
	for start := 0; start < len(items); start += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+bs, len(items))
		greqs := make([]GenerateRequest, 0, end-start)
		for _, it := range items[start:end] {
			until := it.until
			greqs = append(greqs, GenerateRequest{Prompt: it.prompt, MaxNew: it.maxNew, Stop: func(gen []int32) bool {
				if hasEOS && gen[len(gen)-1] == eosID {
					return true
				}
				if len(until) == 0 {
					return false
				}
				text := lm.Tok.Decode(toUint32(gen), false)
				for _, u := range until {
					if u != "" && strings.Contains(text, u) {
						return true
					}
				}
				return false
			}})
		}
		res, err := lm.Engine.Generate(ctx, greqs)
		if err != nil {
			return nil, err
		}
		if len(res) != len(greqs) {
			return nil, fmt.Errorf("engine generated for %d of %d requests", len(res), len(greqs))
		}
		for k, it := range items[start:end] {
			s := lm.Tok.Decode(toUint32(res[k]), true)
			for _, u := range it.until {
				if u != "" {
					if j := strings.Index(s, u); j >= 0 {
						s = s[:j]
					}
				}
			}
			out[it.idx] = s
			done++
		}
		if lm.Progress != nil {
			lm.Progress("generate_until", done, len(items))
		}
	}
	return out, nil
}

func toUint32(ids []int32) []uint32 {
	out := make([]uint32, len(ids))
	for i, v := range ids {
		out[i] = uint32(v)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
