// Package tokenizer is a pure-Go implementation of Hugging Face
// tokenizer.json files whose ids are identical to the Hugging Face
// `tokenizers` library (checked against its npm build on a parity corpus;
// see oracle/ and testdata/).
//
// A Tokenizer is loaded with FromFile or FromBytes and is safe for
// concurrent use. Encode runs the file's pipeline in Hugging Face's order:
// added tokens that are not normalized are split out of the raw text first;
// each remaining piece is normalized, normalized added tokens are split out,
// the rest is pre-tokenized into words and the model (BPE — byte-level or
// SentencePiece-style with byte fallback —, Unigram, WordPiece or WordLevel)
// turns words into ids; the post-processor adds BOS/EOS-style tokens. Decode
// runs the decoder chain. EncodeBatch spreads a batch over all cores.
//
// SentencePiece Unigram files (T5, mT5, XLM-R, ALBERT) load with their
// Precompiled normalizer: the compiled normalization map of the .model file,
// applied per grapheme cluster as Hugging Face applies it (precompiled.go,
// grapheme.go), and Viterbi segmentation with Hugging Face's unknown-piece
// rules (unigram.go); scores are read as the oracle's JSON parser reads
// them (serdefloat.go). Anything the oracle loads that this package does not
// implement is refused at load with the field and the reason.
//
// Where the oracle's Unicode tables differ from Go's (older ones in its
// normalizers and BERT classes, a newer one in its regex engine), this
// package uses the oracle's, generated from it into unicode_hf.go by
// oracle/unicode_tables.js; a differential fuzzer (oracle_fuzz_test.go)
// compares generated text from every Unicode category and script with it.
//
// Speed comes from hand-written scanners for the split regexes of GPT-2,
// Llama 3 and Qwen (any other regex runs on github.com/dlclark/regexp2),
// byte-level BPE over raw bytes (no byte-to-char transform), a per-worker
// word cache and merge lookup by (left id, right id).
package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Tokenizer is a loaded tokenizer.json pipeline. It is safe for concurrent use.
type Tokenizer struct {
	hash string

	added      *addedVocab
	normalizer normalizer
	pre        []preTokenizer
	model      *modelParts
	post       postProcessor
	decoder    decoder
	trunc      *truncation
	pad        *padding
	prefix     []uint32 // post-processor tokens before the sequence
	suffix     []uint32 // and after it
	vocabSize  int
	byteMode   bool

	scratch sync.Pool
}

// EncodeOptions control one Encode call.
type EncodeOptions struct {
	// AddSpecialTokens runs the post-processor (BOS/EOS, templates) as
	// Hugging Face's add_special_tokens does.
	AddSpecialTokens bool
	// SplitSpecial: true matches added tokens found in the text as tokens
	// (Hugging Face's default); false leaves special added tokens in the
	// text as plain text (Hugging Face's encode_special_tokens=True), so
	// chat content can never produce control tokens.
	SplitSpecial bool
}

// FromFile loads a tokenizer.json file.
func FromFile(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	t, err := FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// FromBytes parses the contents of a tokenizer.json file. Errors name the
// JSON field at fault. A large BPE model's parsed vocabulary and merges are
// kept in a content-addressed cache (cache.go, $MARIN_TOKENIZER_CACHE), so
// loading the same bytes again skips their parsing.
func FromBytes(data []byte) (*Tokenizer, error) {
	sum := sha256.Sum256(data)
	cached := loadCachedModel(sum)
	src := data
	if cached != nil {
		// The file without model.vocab and model.merges: the rest of it.
		src = cached.stripped
	}
	var f fileJSON
	if err := json.Unmarshal(src, &f); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok && te.Field != "" {
			return nil, fmt.Errorf("%s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	t := &Tokenizer{hash: hex.EncodeToString(sum[:])}
	var err error
	if t.model, err = parseModel("model", f.Model, cached); err != nil {
		return nil, err
	}
	if cached == nil && t.model.bpe != nil {
		storeCachedModel(sum, data, &cachedModel{vocab: t.model.vocab, vocabR: t.model.vocabR, merges: t.model.bpe.merges})
	}
	if t.normalizer, err = parseNormalizer("normalizer", f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer("pre_tokenizer", f.PreTokenizer, nil); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder("decoder", f.Decoder); err != nil {
		return nil, err
	}
	if t.trunc, err = parseTruncation("truncation", f.Truncation); err != nil {
		return nil, err
	}
	if t.pad, err = parsePadding("padding", f.Padding); err != nil {
		return nil, err
	}
	added, err := parseAddedTokens("added_tokens", f.AddedTokens)
	if err != nil {
		return nil, err
	}
	t.buildAdded(added)
	if t.post, err = parsePostProcessor("post_processor", f.PostProcessor, t.TokenToID); err != nil {
		return nil, err
	}
	if t.post != nil {
		t.prefix, t.suffix = t.post.single()
	}
	t.setupByteMode()
	t.scratch.New = func() any { return newScratch() }
	return t, nil
}

// buildAdded assigns ids as Hugging Face's AddedVocabulary does on load:
// a token already in the model keeps the model's id, a new one gets the
// next id after the model's vocabulary and the added tokens so far.
func (t *Tokenizer) buildAdded(list []addedTokenJSON) {
	modelSize := t.model.size()
	var toks []*addedToken
	byContent := map[string]*addedToken{}
	maxAdded := int64(-1)
	for _, a := range list {
		content := *a.Content
		if content == "" {
			continue
		}
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		if old, ok := byContent[content]; ok {
			old.special, old.singleWord, old.lstrip, old.rstrip, old.normalized = a.Special, a.SingleWord, a.Lstrip, a.Rstrip, normalized
			continue
		}
		var id uint32
		if mid, ok := t.model.vocab[content]; ok {
			id = mid
		} else {
			switch {
			case maxAdded < 0:
				id = uint32(modelSize)
			case maxAdded >= int64(modelSize) || modelSize == 0:
				id = uint32(maxAdded + 1)
			default:
				id = uint32(modelSize)
			}
		}
		maxAdded = max(maxAdded, int64(id))
		tok := &addedToken{content: content, id: id, special: a.Special, singleWord: a.SingleWord,
			lstrip: a.Lstrip, rstrip: a.Rstrip, normalized: normalized}
		byContent[content] = tok
		toks = append(toks, tok)
	}
	t.added = newAddedVocab(toks, t.normalizer)
	n := t.model.size()
	for _, tok := range toks {
		if _, ok := t.model.vocab[tok.content]; !ok {
			n++
		}
	}
	t.vocabSize = n
}

// setupByteMode lets a byte-level BPE model read raw bytes when a ByteLevel
// pre-tokenizer is the last step, and drops that step when it would do
// nothing else.
func (t *Tokenizer) setupByteMode() {
	if t.model.bpe == nil || len(t.pre) == 0 {
		return
	}
	bl, ok := t.pre[len(t.pre)-1].(*byteLevelPT)
	if !ok {
		return
	}
	for _, p := range t.pre[:len(t.pre)-1] {
		if _, ok := p.(*byteLevelPT); ok {
			return
		}
	}
	if !t.model.bpe.enableByteMode() {
		return
	}
	t.byteMode = true
	bl.transform = false
	if !bl.addPrefixSpace && !bl.useRegex {
		t.pre = t.pre[:len(t.pre)-1]
	}
}

// scratch is per-goroutine state: reusable buffers and a word cache.
type scratch struct {
	sy    symbols
	uni   uniScratch
	segs  []segment
	segs2 []segment
	cache map[string][]uint32
	out   []uint32
}

const (
	cacheMaxEntries = 1 << 16
	cacheMaxWordLen = 64
)

func newScratch() *scratch { return &scratch{cache: make(map[string][]uint32, 1024)} }

// encoder runs the word-level stages for one Encode call.
type encoder struct {
	t   *Tokenizer
	sc  *scratch
	out []uint32
}

func (e *encoder) word(w string, _ bool) {
	m := e.t.model
	switch {
	case m.bpe != nil:
		if len(w) <= cacheMaxWordLen {
			if ids, ok := e.sc.cache[w]; ok {
				e.out = append(e.out, ids...)
				return
			}
			mark := len(e.out)
			e.out = m.bpe.encodeWord(w, &e.sc.sy, e.out)
			if len(e.sc.cache) >= cacheMaxEntries {
				clear(e.sc.cache)
			}
			e.sc.cache[strings.Clone(w)] = append([]uint32(nil), e.out[mark:]...)
			return
		}
		e.out = m.bpe.encodeWord(w, &e.sc.sy, e.out)
	case m.unigram != nil:
		if len(w) <= cacheMaxWordLen {
			if ids, ok := e.sc.cache[w]; ok {
				e.out = append(e.out, ids...)
				return
			}
			mark := len(e.out)
			e.out = m.unigram.encodeWord(w, &e.sc.uni, e.out)
			if len(e.sc.cache) >= cacheMaxEntries {
				clear(e.sc.cache)
			}
			e.sc.cache[strings.Clone(w)] = append([]uint32(nil), e.out[mark:]...)
			return
		}
		e.out = m.unigram.encodeWord(w, &e.sc.uni, e.out)
	case m.wordPiece != nil:
		e.out = m.wordPiece.encodeWord(w, e.out)
	default:
		e.out = m.wordLevel.encodeWord(w, e.out)
	}
}

// text encodes a piece with no non-normalized added tokens in it.
func (e *encoder) text(s string, first, splitSpecial bool, emit emitFunc) {
	t := e.t
	if s == "" {
		return
	}
	if t.normalizer != nil {
		s = t.normalizer.normalize(s)
	}
	if t.added.norm.empty {
		runPre(t.pre, s, first, emit)
		return
	}
	mark := len(e.sc.segs2)
	e.sc.segs2 = findMatches(s, t.added.norm, t.added.normTok, splitSpecial, e.sc.segs2)
	for i := mark; i < len(e.sc.segs2); i++ {
		sg := e.sc.segs2[i]
		if sg.tok != nil {
			e.out = append(e.out, sg.tok.id)
			continue
		}
		runPre(t.pre, s[sg.start:sg.end], first && sg.start == 0, emit)
	}
	e.sc.segs2 = e.sc.segs2[:mark]
}

// encodeInto appends the ids of text (no post-processing).
func (t *Tokenizer) encodeInto(text string, splitSpecial bool, sc *scratch, out []uint32) []uint32 {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	e := encoder{t: t, sc: sc, out: out}
	emit := e.word
	if t.added.raw.empty {
		e.text(text, true, splitSpecial, emit)
		return e.out
	}
	sc.segs = findMatches(text, t.added.raw, t.added.rawToks, splitSpecial, sc.segs[:0])
	for _, sg := range sc.segs {
		if sg.tok != nil {
			e.out = append(e.out, sg.tok.id)
			continue
		}
		e.text(text[sg.start:sg.end], sg.start == 0, splitSpecial, emit)
	}
	return e.out
}

// finish applies truncation and the post-processor.
func (t *Tokenizer) finish(body []uint32, add bool) []uint32 {
	if t.trunc != nil {
		limit := t.trunc.maxLength
		if add {
			limit -= len(t.prefix) + len(t.suffix)
		}
		limit = max(limit, 0)
		if len(body) > limit {
			if t.trunc.left {
				body = body[len(body)-limit:]
			} else {
				body = body[:limit]
			}
		}
	}
	if !add || (len(t.prefix) == 0 && len(t.suffix) == 0) {
		return append([]uint32(nil), body...)
	}
	out := make([]uint32, 0, len(body)+len(t.prefix)+len(t.suffix))
	out = append(out, t.prefix...)
	out = append(out, body...)
	return append(out, t.suffix...)
}

func (t *Tokenizer) encodeOne(text string, o EncodeOptions, sc *scratch) []uint32 {
	sc.out = t.encodeInto(text, o.SplitSpecial, sc, sc.out[:0])
	ids := t.finish(sc.out, o.AddSpecialTokens)
	if cap(sc.out) > 1<<20 {
		sc.out = nil
	}
	return ids
}

// Encode tokenizes text. When the file configures padding, the result is
// padded as Hugging Face pads a single encoding.
func (t *Tokenizer) Encode(text string, o EncodeOptions) []uint32 {
	sc := t.scratch.Get().(*scratch)
	ids := t.encodeOne(text, o, sc)
	t.scratch.Put(sc)
	if t.pad != nil {
		ids = t.pad.pad(ids, t.pad.target(len(ids)))
	}
	return ids
}

// EncodeBatch encodes texts on all cores; the result keeps the input order.
// Padding configured in the file applies across the batch, as in Hugging
// Face's encode_batch.
func (t *Tokenizer) EncodeBatch(texts []string, o EncodeOptions) [][]uint32 {
	out := make([][]uint32, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var next atomic.Int64
	var wg sync.WaitGroup
	const chunk = 16
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := t.scratch.Get().(*scratch)
			defer t.scratch.Put(sc)
			for {
				start := int(next.Add(chunk)) - chunk
				if start >= len(texts) {
					return
				}
				for i := start; i < min(start+chunk, len(texts)); i++ {
					out[i] = t.encodeOne(texts[i], o, sc)
				}
			}
		}()
	}
	wg.Wait()
	if t.pad != nil {
		longest := 0
		for _, ids := range out {
			longest = max(longest, len(ids))
		}
		n := t.pad.target(longest)
		for i := range out {
			out[i] = t.pad.pad(out[i], n)
		}
	}
	return out
}

// Decode turns ids back into text; skipSpecial drops special added tokens.
// Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []uint32, skipSpecial bool) string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		if a, ok := t.added.byID[id]; ok {
			if skipSpecial && a.special {
				continue
			}
			tokens = append(tokens, a.content)
			continue
		}
		if tok, ok := t.modelToken(id); ok {
			if skipSpecial {
				if a, ok := t.added.byText[tok]; ok && a.special {
					continue
				}
			}
			tokens = append(tokens, tok)
		}
	}
	if t.decoder == nil {
		return strings.Join(tokens, " ")
	}
	return strings.Join(t.decoder.decodeChain(tokens), "")
}

func (t *Tokenizer) modelToken(id uint32) (string, bool) {
	r := t.model.vocabR
	if int(id) >= len(r) {
		return "", false
	}
	if t.model.unigram != nil {
		return r[id], true
	}
	if r[id] == "" {
		if v, ok := t.model.vocab[""]; !ok || v != id {
			return "", false
		}
	}
	return r[id], true
}

// TokenToID looks up a token (added tokens first, then the vocabulary).
func (t *Tokenizer) TokenToID(tok string) (uint32, bool) {
	if a, ok := t.added.byText[tok]; ok {
		return a.id, true
	}
	id, ok := t.model.vocab[tok]
	return id, ok
}

// IDToToken looks up the token of an id (added tokens first).
func (t *Tokenizer) IDToToken(id uint32) (string, bool) {
	if a, ok := t.added.byID[id]; ok {
		return a.content, true
	}
	return t.modelToken(id)
}

// VocabSize is the vocabulary size including added tokens, as Hugging Face's
// get_vocab_size(with_added_tokens=True).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// Hash is the sha256 hex digest of the tokenizer.json bytes.
func (t *Tokenizer) Hash() string { return t.hash }

// Describe summarises the pipeline for `marin tokenizer info`.
func (t *Tokenizer) Describe() string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-15s %s\n", k+":", v) }
	m := t.model
	switch {
	case m.bpe != nil:
		var opts []string
		if m.bpe.byteMode {
			opts = append(opts, "byte-level")
		}
		if m.bpe.byteFallback {
			opts = append(opts, "byte_fallback")
		}
		if m.bpe.fuseUnk {
			opts = append(opts, "fuse_unk")
		}
		if m.bpe.ignoreMerges {
			opts = append(opts, "ignore_merges")
		}
		if m.bpe.unkToken != "" {
			opts = append(opts, "unk="+quote(m.bpe.unkToken))
		}
		line("model", fmt.Sprintf("BPE (%d tokens, %d merges; %s)", len(m.vocab), len(m.bpe.merges), strings.Join(opts, ", ")))
	case m.unigram != nil:
		u := m.unigram
		var opts []string
		if u.hasUnk {
			opts = append(opts, fmt.Sprintf("unk_id=%d %s", u.unkID, quote(u.vocabR[u.unkID])))
		} else {
			opts = append(opts, "no unk_id: characters outside the vocabulary are dropped, where Hugging Face fails the encode")
		}
		if u.byteFallback {
			opts = append(opts, "byte_fallback")
		}
		line("model", fmt.Sprintf("Unigram (%d pieces; %s)", len(u.vocabR), strings.Join(opts, ", ")))
	case m.wordPiece != nil:
		line("model", fmt.Sprintf("WordPiece (%d tokens, prefix %q, max %d chars/word)", len(m.vocab), m.wordPiece.prefix, m.wordPiece.maxChars))
	default:
		line("model", fmt.Sprintf("WordLevel (%d tokens)", len(m.vocab)))
	}
	line("vocab size", fmt.Sprintf("%d (with added tokens)", t.vocabSize))
	special := 0
	for _, a := range t.added.tokens {
		if a.special {
			special++
		}
	}
	line("added tokens", fmt.Sprintf("%d (%d special)", len(t.added.tokens), special))
	if t.normalizer != nil {
		line("normalizer", t.normalizer.describe())
	} else {
		line("normalizer", "none")
	}
	var pres []string
	for _, p := range t.pre {
		pres = append(pres, p.describe())
	}
	if t.byteMode {
		pres = append(pres, "ByteLevel bytes straight into the model")
	}
	if len(pres) == 0 {
		pres = []string{"none"}
	}
	line("pre-tokenizer", strings.Join(pres, " -> "))
	if t.post != nil {
		line("post-processor", t.post.describe())
	} else {
		line("post-processor", "none")
	}
	if t.decoder != nil {
		line("decoder", t.decoder.describe())
	} else {
		line("decoder", "none (tokens joined by spaces)")
	}
	if t.trunc != nil {
		line("truncation", fmt.Sprintf("max_length %d", t.trunc.maxLength))
	}
	if t.pad != nil {
		line("padding", t.pad.describe())
	}
	line("sha256", t.hash)
	return b.String()
}
