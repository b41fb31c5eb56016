package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// fileJSON is the top level of tokenizer.json.
type fileJSON struct {
	Version       string            `json:"version"`
	Truncation    json.RawMessage   `json:"truncation"`
	Padding       json.RawMessage   `json:"padding"`
	AddedTokens   []json.RawMessage `json:"added_tokens"`
	Normalizer    json.RawMessage   `json:"normalizer"`
	PreTokenizer  json.RawMessage   `json:"pre_tokenizer"`
	PostProcessor json.RawMessage   `json:"post_processor"`
	Decoder       json.RawMessage   `json:"decoder"`
	Model         json.RawMessage   `json:"model"`
}

// fieldError names the JSON field at fault.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func fieldErr(field string, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) && !strings.HasPrefix(fe.field, field) {
		return &fieldError{field: field + "." + fe.field, err: fe.err}
	}
	if errors.As(err, &fe) {
		return err
	}
	return &fieldError{field: field, err: err}
}

func fieldf(field, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// decodeStrict unmarshals raw into v, naming field on failure.
func decodeStrict(field string, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fieldf(field+"."+te.Field, "expected %s, got JSON %s", te.Type, te.Value)
		}
		return fieldErr(field, err)
	}
	return nil
}

// typeOf reads the "type" member of a component object.
func typeOf(field string, raw json.RawMessage) (string, error) {
	var t struct {
		Type *string `json:"type"`
	}
	if err := decodeStrict(field, raw, &t); err != nil {
		return "", err
	}
	if t.Type == nil {
		return "", nil
	}
	return *t.Type, nil
}

// patternJSON is {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p *patternJSON) build(field string) (literal string, re *regexp2.Regexp, src string, err error) {
	switch {
	case p == nil:
		return "", nil, "", fieldf(field, "missing")
	case p.String != nil:
		return *p.String, nil, *p.String, nil
	case p.Regex != nil:
		// .NET mode: \s, \p{L}, \p{N} are Unicode-aware, as in the
		// oracle's engine; hfRegex gives the categories its Unicode version.
		re, err := regexp2.Compile(hfRegex(*p.Regex), regexp2.None)
		if re != nil {
			// A pathological pattern stops matching instead of hanging.
			re.MatchTimeout = 10 * time.Second
		}
		if err != nil {
			return "", nil, "", fieldf(field+".Regex", "compile %q: %w", *p.Regex, err)
		}
		return "", re, *p.Regex, nil
	}
	return "", nil, "", fieldf(field, "needs String or Regex")
}

func parseNormalizer(field string, raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	typ, err := typeOf(field, raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "NFC":
		return unicodeNorm{norm.NFC, "NFC"}, nil
	case "NFD":
		return unicodeNorm{norm.NFD, "NFD"}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC, "NFKC"}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD, "NFKD"}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "StripAccents":
		return stripAccents{}, nil
	case "Strip":
		var c struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		return strip{c.Left, c.Right}, nil
	case "Prepend":
		var c struct {
			Prepend *string `json:"prepend"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		if c.Prepend == nil {
			return nil, fieldf(field+".prepend", "missing")
		}
		return prepend{*c.Prepend}, nil
	case "Append":
		var c struct {
			Append *string `json:"append"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		if c.Append == nil {
			return nil, fieldf(field+".append", "missing")
		}
		return appendNorm{*c.Append}, nil
	case "Replace":
		r, err := parseReplace(field, raw)
		return r, err
	case "ByteLevel":
		return byteLevelNorm{}, nil
	case "BertNormalizer":
		var c struct {
			CleanText    *bool `json:"clean_text"`
			ChineseChars *bool `json:"handle_chinese_chars"`
			StripAccents *bool `json:"strip_accents"`
			Lowercase    *bool `json:"lowercase"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		b := bertNormalizer{cleanText: true, chineseChars: true, lowercase: true}
		if c.CleanText != nil {
			b.cleanText = *c.CleanText
		}
		if c.ChineseChars != nil {
			b.chineseChars = *c.ChineseChars
		}
		if c.Lowercase != nil {
			b.lowercase = *c.Lowercase
		}
		b.stripAccents = b.lowercase
		if c.StripAccents != nil {
			b.stripAccents = *c.StripAccents
		}
		return b, nil
	case "Sequence":
		var c struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		var seq normSequence
		for i, r := range c.Normalizers {
			n, err := parseNormalizer(fmt.Sprintf("%s.normalizers[%d]", field, i), r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "":
		return nil, fieldf(field+".type", "missing")
	case "Precompiled":
		var c struct {
			Charsmap *string `json:"precompiled_charsmap"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		if c.Charsmap == nil {
			return nil, fieldf(field+".precompiled_charsmap", "missing")
		}
		p, err := parsePrecompiled(*c.Charsmap)
		if err != nil {
			// Hugging Face cannot load such a file either.
			return nil, fieldf(field+".precompiled_charsmap", "%v", err)
		}
		return p, nil
	}
	return nil, fieldf(field+".type", "unsupported normalizer %q", typ)
}

func parseReplace(field string, raw json.RawMessage) (replace, error) {
	var c struct {
		Pattern *patternJSON `json:"pattern"`
		Content *string      `json:"content"`
	}
	if err := decodeStrict(field, raw, &c); err != nil {
		return replace{}, err
	}
	lit, re, _, err := c.Pattern.build(field + ".pattern")
	if err != nil {
		return replace{}, err
	}
	if c.Content == nil {
		return replace{}, fieldf(field+".content", "missing")
	}
	return replace{literal: lit, re: re, content: *c.Content}, nil
}

func parseBehavior(field, s string, def behavior) (behavior, error) {
	if s == "" {
		return def, nil
	}
	b, ok := behaviorNames[s]
	if !ok {
		return 0, fieldf(field, "unknown behavior %q", s)
	}
	return b, nil
}

func parsePreTokenizer(field string, raw json.RawMessage, out []preTokenizer) ([]preTokenizer, error) {
	if isNull(raw) {
		return out, nil
	}
	typ, err := typeOf(field, raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var c struct {
			Pretokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		for i, r := range c.Pretokenizers {
			if out, err = parsePreTokenizer(fmt.Sprintf("%s.pretokenizers[%d]", field, i), r, out); err != nil {
				return nil, err
			}
		}
		return out, nil
	case "Split":
		var c struct {
			Pattern  *patternJSON `json:"pattern"`
			Behavior string       `json:"behavior"`
			Invert   bool         `json:"invert"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		beh, err := parseBehavior(field+".behavior", c.Behavior, behIsolated)
		if err != nil {
			return nil, err
		}
		if c.Behavior == "" {
			return nil, fieldf(field+".behavior", "missing")
		}
		p := &splitPT{beh: beh, invert: c.Invert}
		if c.Pattern != nil && c.Pattern.Regex != nil {
			p.fast = scanKindOf(*c.Pattern.Regex)
		}
		if p.fast != 0 {
			p.src = *c.Pattern.Regex
		} else if p.literal, p.re, p.src, err = c.Pattern.build(field + ".pattern"); err != nil {
			return nil, err
		}
		return append(out, p), nil
	case "ByteLevel":
		c := struct {
			AddPrefixSpace *bool `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		p := &byteLevelPT{addPrefixSpace: true, useRegex: true, transform: true}
		if c.AddPrefixSpace != nil {
			p.addPrefixSpace = *c.AddPrefixSpace
		}
		if c.UseRegex != nil {
			p.useRegex = *c.UseRegex
		}
		return append(out, p), nil
	case "Metaspace":
		p, err := parseMetaspace(field, raw)
		if err != nil {
			return nil, err
		}
		return append(out, &metaspacePT{repl: p.repl, replStr: string(p.repl), scheme: p.scheme, split_: p.split}), nil
	case "BertPreTokenizer":
		return append(out, bertPT{}), nil
	case "Whitespace":
		return append(out, whitespacePT{}), nil
	case "WhitespaceSplit":
		return append(out, whitespaceSplitPT{}), nil
	case "Punctuation":
		var c struct {
			Behavior string `json:"behavior"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		beh, err := parseBehavior(field+".behavior", c.Behavior, behIsolated)
		if err != nil {
			return nil, err
		}
		return append(out, punctuationPT{beh}), nil
	case "Digits":
		var c struct {
			Individual bool `json:"individual_digits"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		return append(out, digitsPT{c.Individual}), nil
	case "":
		return nil, fieldf(field+".type", "missing")
	}
	return nil, fieldf(field+".type", "unsupported pre-tokenizer %q", typ)
}

type metaspaceCfg struct {
	repl   rune
	scheme string
	split  bool
}

func parseMetaspace(field string, raw json.RawMessage) (metaspaceCfg, error) {
	var c struct {
		Replacement    *string `json:"replacement"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		PrependScheme  *string `json:"prepend_scheme"`
		Split          *bool   `json:"split"`
	}
	if err := decodeStrict(field, raw, &c); err != nil {
		return metaspaceCfg{}, err
	}
	cfg := metaspaceCfg{repl: '▁', scheme: "always", split: true}
	if c.Replacement != nil {
		r, n := utf8.DecodeRuneInString(*c.Replacement)
		if n == 0 || n != len(*c.Replacement) {
			return cfg, fieldf(field+".replacement", "must be one character, got %q", *c.Replacement)
		}
		cfg.repl = r
	}
	if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
		cfg.scheme = "never"
	}
	if c.PrependScheme != nil {
		switch *c.PrependScheme {
		case "always", "first", "never":
			cfg.scheme = *c.PrependScheme
		default:
			return cfg, fieldf(field+".prepend_scheme", "unknown scheme %q", *c.PrependScheme)
		}
	}
	if c.Split != nil {
		cfg.split = *c.Split
	}
	return cfg, nil
}

func parseDecoder(field string, raw json.RawMessage) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	typ, err := typeOf(field, raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "ByteLevel":
		return byteLevelDec{}, nil
	case "Metaspace":
		c, err := parseMetaspace(field, raw)
		if err != nil {
			return nil, err
		}
		return metaspaceDec{repl: c.repl, scheme: c.scheme}, nil
	case "WordPiece":
		c := struct {
			Prefix  *string `json:"prefix"`
			Cleanup *bool   `json:"cleanup"`
		}{}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		d := wordPieceDec{prefix: "##", cleanup: true}
		if c.Prefix != nil {
			d.prefix = *c.Prefix
		}
		if c.Cleanup != nil {
			d.cleanup = *c.Cleanup
		}
		return d, nil
	case "Replace":
		r, err := parseReplace(field, raw)
		if err != nil {
			return nil, err
		}
		return replaceDec{r}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		var c struct {
			Content *string `json:"content"`
			Start   int     `json:"start"`
			Stop    int     `json:"stop"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		if c.Content == nil || utf8.RuneCountInString(*c.Content) != 1 {
			return nil, fieldf(field+".content", "must be one character")
		}
		if c.Start < 0 || c.Stop < 0 {
			return nil, fieldf(field+".start", "must not be negative")
		}
		r, _ := utf8.DecodeRuneInString(*c.Content)
		return stripDec{content: r, start: c.Start, stop: c.Stop}, nil
	case "BPEDecoder":
		c := struct {
			Suffix *string `json:"suffix"`
		}{}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		d := bpeDec{suffix: "</w>"}
		if c.Suffix != nil {
			d.suffix = *c.Suffix
		}
		return d, nil
	case "Sequence":
		var c struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		var seq seqDec
		for i, r := range c.Decoders {
			d, err := parseDecoder(fmt.Sprintf("%s.decoders[%d]", field, i), r)
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "":
		return nil, fieldf(field+".type", "missing")
	}
	return nil, fieldf(field+".type", "unsupported decoder %q", typ)
}

// tokenIDs resolves a token string through the added tokens, then the model.
type tokenIDs func(string) (uint32, bool)

func parsePostProcessor(field string, raw json.RawMessage, lookup tokenIDs) (postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	typ, err := typeOf(field, raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "ByteLevel":
		return byteLevelPP{}, nil
	case "TemplateProcessing":
		var c struct {
			Single        []json.RawMessage `json:"single"`
			SpecialTokens map[string]struct {
				ID  string   `json:"id"`
				IDs []uint32 `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		var p templatePP
		seen := false
		var parts []string
		for i, item := range c.Single {
			f := fmt.Sprintf("%s.single[%d]", field, i)
			var it struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			}
			if err := decodeStrict(f, item, &it); err != nil {
				return nil, err
			}
			switch {
			case it.Sequence != nil:
				if it.Sequence.ID != "A" {
					return nil, fieldf(f+".Sequence.id", "single template may only use sequence A, got %q", it.Sequence.ID)
				}
				if seen {
					return nil, fieldf(f, "sequence A appears twice")
				}
				seen = true
				parts = append(parts, "$A")
			case it.SpecialToken != nil:
				st, ok := c.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, fieldf(f+".SpecialToken.id", "%q is not in special_tokens", it.SpecialToken.ID)
				}
				if seen {
					p.suffix = append(p.suffix, st.IDs...)
				} else {
					p.prefix = append(p.prefix, st.IDs...)
				}
				parts = append(parts, it.SpecialToken.ID)
			default:
				return nil, fieldf(f, "needs SpecialToken or Sequence")
			}
		}
		if !seen {
			return nil, fieldf(field+".single", "has no Sequence")
		}
		p.src = strings.Join(parts, " ")
		return p, nil
	case "BertProcessing", "RobertaProcessing":
		var c struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		get := func(name string, v []json.RawMessage) (uint32, string, error) {
			var tok string
			var id uint32
			if len(v) != 2 || json.Unmarshal(v[0], &tok) != nil || json.Unmarshal(v[1], &id) != nil {
				return 0, "", fieldf(field+"."+name, "expected [token, id]")
			}
			return id, tok, nil
		}
		cls, clsTok, err := get("cls", c.Cls)
		if err != nil {
			return nil, err
		}
		sep, sepTok, err := get("sep", c.Sep)
		if err != nil {
			return nil, err
		}
		return templatePP{prefix: []uint32{cls}, suffix: []uint32{sep}, src: clsTok + " $A " + sepTok}, nil
	case "Sequence":
		var c struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := decodeStrict(field, raw, &c); err != nil {
			return nil, err
		}
		var seq seqPP
		for i, r := range c.Processors {
			p, err := parsePostProcessor(fmt.Sprintf("%s.processors[%d]", field, i), r, lookup)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "":
		return nil, fieldf(field+".type", "missing")
	}
	return nil, fieldf(field+".type", "unsupported post-processor %q", typ)
}

// model is what a parsed "model" field becomes.
type modelParts struct {
	kind      string
	bpe       *bpe
	wordPiece *wordPiece
	wordLevel *wordLevel
	unigram   *unigram
	vocab     map[string]uint32
	vocabR    []string
}

// size is the model's vocabulary size as Hugging Face's get_vocab_size
// counts it (a Unigram vocabulary may repeat a piece).
func (m *modelParts) size() int {
	if m.unigram != nil {
		return len(m.unigram.vocabR)
	}
	return len(m.vocab)
}

func parseVocab(field string, raw json.RawMessage) (map[string]uint32, []string, error) {
	if isNull(raw) {
		return nil, nil, fieldf(field, "missing")
	}
	var v map[string]int64
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, nil, fieldf(field, "expected an object of token -> id: %w", err)
	}
	vocab := make(map[string]uint32, len(v))
	maxID := int64(-1)
	for tok, id := range v {
		if id < 0 || id > math.MaxInt32 {
			return nil, nil, fieldf(field, "token %q has id %d out of range", tok, id)
		}
		vocab[tok] = uint32(id)
		maxID = max(maxID, id)
	}
	if maxID > int64(len(v))*4+1<<20 {
		return nil, nil, fieldf(field, "ids up to %d for %d tokens", maxID, len(v))
	}
	vocabR := make([]string, maxID+1)
	for tok, id := range vocab {
		vocabR[id] = tok
	}
	return vocab, vocabR, nil
}

// parseModel builds the model; cached, when not nil, holds the vocabulary
// and merges of this very file (see cache.go) and replaces their parsing.
func parseModel(field string, raw json.RawMessage, cached *cachedModel) (*modelParts, error) {
	if isNull(raw) {
		return nil, fieldf(field, "missing")
	}
	var c struct {
		Type         *string         `json:"type"`
		Vocab        json.RawMessage `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		UnkToken     *string         `json:"unk_token"`
		Prefix       *string         `json:"continuing_subword_prefix"`
		Suffix       *string         `json:"end_of_word_suffix"`
		FuseUnk      bool            `json:"fuse_unk"`
		ByteFallback bool            `json:"byte_fallback"`
		IgnoreMerges bool            `json:"ignore_merges"`
		UnkID        json.RawMessage `json:"unk_id"`
		Dropout      *float64        `json:"dropout"`
		MaxChars     *int            `json:"max_input_chars_per_word"`
	}
	if err := decodeStrict(field, raw, &c); err != nil {
		return nil, err
	}
	kind := ""
	if c.Type != nil {
		kind = *c.Type
	} else {
		// Older files omit the type; Hugging Face tries BPE, WordPiece,
		// WordLevel in turn.
		switch {
		case !isNull(c.Merges):
			kind = "BPE"
		case c.Prefix != nil || c.MaxChars != nil:
			kind = "WordPiece"
		case len(bytes.TrimSpace(c.Vocab)) > 0 && bytes.TrimSpace(c.Vocab)[0] == '[':
			kind = "Unigram"
		default:
			kind = "WordLevel"
		}
	}
	if kind == "Unigram" {
		return parseUnigram(field, c.Vocab, c.UnkID, c.ByteFallback)
	}
	if kind != "BPE" && kind != "WordPiece" && kind != "WordLevel" {
		return nil, fieldf(field+".type", "unsupported model %q", kind)
	}
	if cached != nil && (kind != "BPE" || cached.merges == nil) {
		cached = nil
	}
	var vocab map[string]uint32
	var vocabR []string
	var err error
	if cached != nil {
		vocab, vocabR = cached.vocab, cached.vocabR
	} else if vocab, vocabR, err = parseVocab(field+".vocab", c.Vocab); err != nil {
		return nil, err
	}
	mp := &modelParts{kind: kind, vocab: vocab, vocabR: vocabR}
	unk := func() (uint32, bool, error) {
		if c.UnkToken == nil {
			return 0, false, nil
		}
		id, ok := vocab[*c.UnkToken]
		if !ok {
			if kind == "BPE" {
				// Hugging Face only fails when the unknown token is needed.
				return 0, false, nil
			}
			return 0, false, fieldf(field+".unk_token", "%q is not in the vocabulary", *c.UnkToken)
		}
		return id, true, nil
	}
	unkID, hasUnk, err := unk()
	if err != nil {
		return nil, err
	}
	switch kind {
	case "BPE":
		if c.Dropout != nil && *c.Dropout != 0 {
			return nil, fieldf(field+".dropout", "BPE dropout %v is random and not supported", *c.Dropout)
		}
		m := &bpe{vocab: vocab, vocabR: vocabR, unkID: unkID, hasUnk: hasUnk, fuseUnk: c.FuseUnk,
			byteFallback: c.ByteFallback, ignoreMerges: c.IgnoreMerges}
		if c.UnkToken != nil {
			m.unkToken = *c.UnkToken
		}
		if c.Prefix != nil {
			m.prefix = *c.Prefix
		}
		if c.Suffix != nil {
			m.suffix = *c.Suffix
		}
		if cached != nil {
			m.merges = cached.merges
		} else if m.merges, err = parseMerges(field+".merges", c.Merges, vocab, m.prefix); err != nil {
			return nil, err
		}
		m.finish()
		mp.bpe = m
	case "WordPiece":
		m := &wordPiece{vocab: vocab, vocabR: vocabR, unkID: unkID, hasUnk: hasUnk, prefix: "##", maxChars: 100}
		if c.UnkToken == nil {
			if id, ok := vocab["[UNK]"]; ok {
				m.unkID, m.hasUnk = id, true
			}
		}
		if c.Prefix != nil {
			m.prefix = *c.Prefix
		}
		if c.MaxChars != nil {
			m.maxChars = *c.MaxChars
		}
		mp.wordPiece = m
	case "WordLevel":
		mp.wordLevel = &wordLevel{vocab: vocab, vocabR: vocabR, unkID: unkID, hasUnk: hasUnk}
	}
	return mp, nil
}

func parseMerges(field string, raw json.RawMessage, vocab map[string]uint32, prefix string) (map[uint64]uint64, error) {
	if isNull(raw) {
		return nil, fieldf(field, "missing")
	}
	var pairs [][2]string
	trim := bytes.TrimSpace(raw)
	if len(trim) < 2 || trim[0] != '[' {
		return nil, fieldf(field, "expected an array")
	}
	rest := bytes.TrimSpace(trim[1:])
	if len(rest) > 0 && rest[0] == '[' {
		var tuples [][]string
		if err := json.Unmarshal(raw, &tuples); err != nil {
			return nil, fieldf(field, "expected [[left, right], ...]: %w", err)
		}
		pairs = make([][2]string, len(tuples))
		for i, t := range tuples {
			if len(t) != 2 {
				return nil, fieldf(fmt.Sprintf("%s[%d]", field, i), "expected 2 tokens, got %d", len(t))
			}
			pairs[i] = [2]string{t[0], t[1]}
		}
	} else {
		var lines []string
		if err := json.Unmarshal(raw, &lines); err != nil {
			return nil, fieldf(field, "expected [\"left right\", ...]: %w", err)
		}
		pairs = make([][2]string, len(lines))
		for i, l := range lines {
			a, b, ok := strings.Cut(l, " ")
			if !ok {
				return nil, fieldf(fmt.Sprintf("%s[%d]", field, i), "%q is not \"left right\"", l)
			}
			pairs[i] = [2]string{a, b}
		}
	}
	merges := make(map[uint64]uint64, len(pairs))
	for rank, p := range pairs {
		a, ok := vocab[p[0]]
		if !ok {
			return nil, fieldf(fmt.Sprintf("%s[%d]", field, rank), "token %q is not in the vocabulary", p[0])
		}
		b, ok := vocab[p[1]]
		if !ok {
			return nil, fieldf(fmt.Sprintf("%s[%d]", field, rank), "token %q is not in the vocabulary", p[1])
		}
		right := p[1]
		if prefix != "" {
			right = strings.TrimPrefix(right, prefix)
		}
		merged, ok := vocab[p[0]+right]
		if !ok {
			return nil, fieldf(fmt.Sprintf("%s[%d]", field, rank), "merged token %q is not in the vocabulary", p[0]+right)
		}
		merges[pairKey(a, b)] = uint64(rank)<<32 | uint64(merged)
	}
	return merges, nil
}

func parseAddedTokens(field string, raws []json.RawMessage) ([]addedTokenJSON, error) {
	out := make([]addedTokenJSON, 0, len(raws))
	for i, r := range raws {
		f := fmt.Sprintf("%s[%d]", field, i)
		var a addedTokenJSON
		if err := decodeStrict(f, r, &a); err != nil {
			return nil, err
		}
		if a.Content == nil {
			return nil, fieldf(f+".content", "missing")
		}
		out = append(out, a)
	}
	return out, nil
}

type addedTokenJSON struct {
	ID         *int64  `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	Lstrip     bool    `json:"lstrip"`
	Rstrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

func parseTruncation(field string, raw json.RawMessage) (*truncation, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		MaxLength *int   `json:"max_length"`
		Direction string `json:"direction"`
	}
	if err := decodeStrict(field, raw, &c); err != nil {
		return nil, err
	}
	if c.MaxLength == nil || *c.MaxLength < 0 {
		return nil, fieldf(field+".max_length", "missing or negative")
	}
	return &truncation{maxLength: *c.MaxLength, left: c.Direction == "Left"}, nil
}

func parsePadding(field string, raw json.RawMessage) (*padding, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		Strategy   json.RawMessage `json:"strategy"`
		Direction  string          `json:"direction"`
		MultipleOf *int            `json:"pad_to_multiple_of"`
		PadID      uint32          `json:"pad_id"`
	}
	if err := decodeStrict(field, raw, &c); err != nil {
		return nil, err
	}
	p := &padding{left: c.Direction == "Left", padID: c.PadID}
	if c.MultipleOf != nil {
		if *c.MultipleOf < 0 {
			return nil, fieldf(field+".pad_to_multiple_of", "negative")
		}
		if *c.MultipleOf > 1<<24 {
			return nil, fieldf(field+".pad_to_multiple_of", "too large")
		}
		p.multipleOf = *c.MultipleOf
	}
	var s string
	if json.Unmarshal(c.Strategy, &s) == nil {
		if s != "BatchLongest" {
			return nil, fieldf(field+".strategy", "unknown strategy %q", s)
		}
		return p, nil
	}
	var fixed struct {
		Fixed *int `json:"Fixed"`
	}
	if err := json.Unmarshal(c.Strategy, &fixed); err != nil || fixed.Fixed == nil || *fixed.Fixed < 0 || *fixed.Fixed > 1<<24 {
		return nil, fieldf(field+".strategy", "expected \"BatchLongest\" or {\"Fixed\": n} with 0 <= n <= 2^24")
	}
	p.fixed = *fixed.Fixed
	return p, nil
}

// parseUnigram builds a Unigram model: vocab [[piece, score], ...], unk_id
// (an index into vocab, or null) and byte_fallback, the fields Hugging Face
// reads (it ignores any other).
func parseUnigram(field string, vocabRaw, unkRaw json.RawMessage, byteFallback bool) (*modelParts, error) {
	pieces, scores, err := parseUnigramVocab(field+".vocab", vocabRaw)
	if err != nil {
		return nil, err
	}
	unkID, hasUnk := 0, false
	if !isNull(unkRaw) {
		var id int64
		if err := json.Unmarshal(unkRaw, &id); err != nil || id < 0 {
			return nil, fieldf(field+".unk_id", "expected a vocabulary index or null, got %s", unkRaw)
		}
		if len(pieces) == 0 {
			return nil, fieldf(field+".vocab", "is empty but unk_id is set")
		}
		if id >= int64(len(pieces)) {
			return nil, fieldf(field+".unk_id", "%d is not below the vocabulary size %d", id, len(pieces))
		}
		unkID, hasUnk = int(id), true
	}
	m := newUnigram(pieces, scores, unkID, hasUnk, byteFallback)
	return &modelParts{kind: "Unigram", unigram: m, vocab: m.vocab, vocabR: m.vocabR}, nil
}
