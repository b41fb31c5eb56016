package chat

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a special token of a tokenizer.json ("added_tokens" with
// "special": true). LStrip and RStrip make a match swallow the whitespace on
// that side, as Hugging Face does.
type AddedToken struct {
	ID      uint32
	Content string
	LStrip  bool
	RStrip  bool
}

// Vocab is what the formats know about a tokenizer: its encoder, its special
// tokens, and tokenizer_config.json's bos/eos tokens and chat template.
type Vocab struct {
	Tok          Tokenizer
	Specials     []AddedToken // longest first
	BOS, EOS     string       // from tokenizer_config.json, "" when unknown
	ChatTemplate string       // tokenizer_config.json's chat_template ("default" when there are several)

	byFirst [256][]int // first byte of a special → indexes into Specials, longest first
}

// NewVocab reads the special tokens from a tokenizer.json's bytes and, when
// configJSON is not empty, the bos/eos tokens and chat template from
// tokenizer_config.json's bytes.
func NewVocab(tok Tokenizer, tokenizerJSON, configJSON []byte) (*Vocab, error) {
	v := &Vocab{Tok: tok}
	var tj struct {
		AddedTokens []struct {
			ID      *uint32 `json:"id"`
			Content string  `json:"content"`
			Special bool    `json:"special"`
			LStrip  bool    `json:"lstrip"`
			RStrip  bool    `json:"rstrip"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(tokenizerJSON, &tj); err != nil {
		return nil, fmt.Errorf("tokenizer.json: added_tokens: %w", err)
	}
	for i, at := range tj.AddedTokens {
		if !at.Special {
			continue
		}
		if at.Content == "" || at.ID == nil {
			return nil, fmt.Errorf("tokenizer.json: added_tokens[%d]: special token without content or id", i)
		}
		v.Specials = append(v.Specials, AddedToken{ID: *at.ID, Content: at.Content, LStrip: at.LStrip, RStrip: at.RStrip})
	}
	if len(strings.TrimSpace(string(configJSON))) > 0 {
		if err := v.readConfig(configJSON); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	v.index()
	return v, nil
}

func (v *Vocab) readConfig(raw []byte) error {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	var err error
	if v.BOS, err = tokenString(cfg["bos_token"]); err != nil {
		return fmt.Errorf("bos_token: %w", err)
	}
	if v.EOS, err = tokenString(cfg["eos_token"]); err != nil {
		return fmt.Errorf("eos_token: %w", err)
	}
	if ct, ok := cfg["chat_template"]; ok && string(ct) != "null" {
		var s string
		if json.Unmarshal(ct, &s) == nil {
			v.ChatTemplate = s
			return nil
		}
		var named []struct {
			Name     string `json:"name"`
			Template string `json:"template"`
		}
		if err := json.Unmarshal(ct, &named); err != nil {
			return fmt.Errorf("chat_template: want a string or a list of {name, template}: %w", err)
		}
		for _, n := range named {
			if n.Name == "default" || v.ChatTemplate == "" {
				v.ChatTemplate = n.Template
			}
		}
	}
	return nil
}

// tokenString reads a tokenizer_config token: a string, an AddedToken object
// with "content", or null.
func tokenString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("want a string or {\"content\": …}: %w", err)
	}
	return obj.Content, nil
}

func (v *Vocab) index() {
	sort.SliceStable(v.Specials, func(i, j int) bool { return len(v.Specials[i].Content) > len(v.Specials[j].Content) })
	v.byFirst = [256][]int{}
	for i, s := range v.Specials {
		v.byFirst[s.Content[0]] = append(v.byFirst[s.Content[0]], i)
	}
}

// SpecialAt returns the longest special token that starts at s[i:], if any.
func (v *Vocab) SpecialAt(s string, i int) (AddedToken, bool) {
	for _, k := range v.byFirst[s[i]] {
		if strings.HasPrefix(s[i:], v.Specials[k].Content) {
			return v.Specials[k], true
		}
	}
	return AddedToken{}, false
}

// IsSpecial reports whether tok is one of the tokenizer's special tokens.
func (v *Vocab) IsSpecial(tok string) bool {
	if tok == "" {
		return false
	}
	t, ok := v.SpecialAt(tok, 0)
	return ok && t.Content == tok
}

// require looks up the control tokens a format needs.
func (v *Vocab) require(format string, toks ...string) error {
	var missing []string
	for _, t := range toks {
		if _, ok := v.Tok.TokenToID(t); !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("chat format %s needs the tokens %s, which this tokenizer does not have; pick a format that matches the tokenizer", format, strings.Join(missing, ", "))
	}
	return nil
}

// pick returns configured when the tokenizer has it, else the first of the
// guesses that is one of its special tokens (a guess must be special: Qwen's
// vocabulary has "<s>" as plain text), else "".
func (v *Vocab) pick(configured string, guesses ...string) string {
	if configured != "" {
		if _, ok := v.Tok.TokenToID(configured); ok {
			return configured
		}
	}
	for _, g := range guesses {
		if v.IsSpecial(g) {
			return g
		}
	}
	return ""
}

// splitLiteral cuts text written by a format into text and special tokens,
// honouring lstrip/rstrip; text and special are called in order.
func (v *Vocab) splitLiteral(s string, text func(string), special func(AddedToken)) {
	start := 0 // start of the pending text
	for i := 0; i < len(s); {
		tok, ok := v.SpecialAt(s, i)
		if !ok {
			i++
			continue
		}
		pending := s[start:i]
		if tok.LStrip {
			pending = strings.TrimRightFunc(pending, unicode.IsSpace)
		}
		if pending != "" {
			text(pending)
		}
		special(tok)
		i += len(tok.Content)
		if tok.RStrip {
			i = skipSpace(s, i)
		}
		start = i
	}
	if start < len(s) {
		text(s[start:])
	}
}

// skipSpace returns the index of the first non-space rune of s at or after i.
func skipSpace(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += n
	}
	return i
}
