package chat

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

// Hugging Face chat templates run on github.com/ardanlabs/jinja (v1.8.0), a
// pure-Go Jinja engine written for LLM chat templates: it applies the
// trim_blocks/lstrip_blocks settings transformers uses, knows the Python
// string methods templates call (strip, split, startswith, …), tojson,
// namespace(), raise_exception and loop controls, parses
// {% generation %} blocks, and renders the Llama 3/3.1/3.2, Qwen3, Gemma 3
// and Mistral templates exactly as Python's jinja2 does (testdata goldens
// made by jinja2 check it). gonja/v2 was tried and fails to parse Gemma 3's,
// Mistral's and any template with {% generation %}.
//
// How the template's output is cut into segments. Before rendering, every
// special-token string inside message content (and roles) is escaped: each
// of its runes gets escRune in front, and so do the marker runes themselves.
// {% generation %} and {% endgeneration %} keep their block semantics (the
// engine's whitespace handling of block tags stays exact) and get a marker
// printed just inside them. The output is then scanned: escaped runes are
// text, markers switch trainable on and off, and any other special-token
// string (which can only have come from the template itself) is a control
// token. Message content therefore never yields a control token, while the
// template's own "<|eot_id|>" does.
const (
	escRune  = '\U0010FFF0' // the next rune is content text
	genStart = '\U0010FFF1' // {% generation %}
	genEnd   = '\U0010FFF2' // {% endgeneration %}
)

var generationTag = regexp.MustCompile(`\{%[-+]?\s*(end)?generation\s*[-+]?%\}`)

// endOfTurnTokens are the tokens that end a turn in the common templates;
// with TrainEndOfTurn, one of them right after a generation block is trained.
var endOfTurnTokens = []string{"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "</s>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<eos>"}

// ReferenceDate is what strftime_now() returns in templates: the fixed date
// Llama 3.1's template falls back to, so a cache never depends on the day it
// was made.
var ReferenceDate = [3]int{2024, 7, 26}

// templateFormat renders a Hugging Face chat template.
type templateFormat struct {
	o             Options
	v             *Vocab
	tmpl          *jinja.Template
	hasGeneration bool
	vars          map[string]jinja.Value
	eot           map[string]bool
}

// NewTemplate compiles a Hugging Face chat template. Loss targets are the
// text inside {% generation %} blocks; with o.TrainEndOfTurn an end-of-turn
// token right after a block is trained too. A template without generation
// blocks is an error unless o.MaskUserTurns is off (then every token is
// trained): it would train nothing (Marin #7237).
func NewTemplate(src string, o Options, v *Vocab) (Format, error) {
	has := generationTag.MatchString(src)
	if !has && o.MaskUserTurns {
		return nil, fmt.Errorf("chat template has no {%% generation %%} … {%% endgeneration %%} block, so no token would be trained " +
			"(Hugging Face templates mark assistant text this way; Marin #7237): give ChatFormat(template=…) with generation blocks, " +
			"use a built-in format such as llama3_instruct or chatml, or set mask_user_turns=False to train on every token")
	}
	marked := generationTag.ReplaceAllStringFunc(src, func(tag string) string {
		if generationTag.FindStringSubmatch(tag)[1] == "end" {
			return `{{ "` + string(genEnd) + `" }}` + tag
		}
		return tag + `{{ "` + string(genStart) + `" }}`
	})
	tmpl, err := compileTemplate(marked)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	f := &templateFormat{o: o, v: v, tmpl: tmpl, hasGeneration: has, eot: map[string]bool{}}
	f.vars = map[string]jinja.Value{
		"bos_token":             jinja.NewString(v.BOS),
		"eos_token":             jinja.NewString(v.EOS),
		"add_generation_prompt": jinja.NewBool(false),
		"strftime_now":          jinja.NewCallable("strftime_now", strftimeNow),
	}
	for _, t := range append([]string{v.EOS}, endOfTurnTokens...) {
		if t != "" && v.IsSpecial(t) {
			f.eot[t] = true
		}
	}
	return f, nil
}

// compileTemplate compiles, turning an engine panic into an error.
func compileTemplate(src string) (t *jinja.Template, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("template engine failed: %v", p)
		}
	}()
	return jinja.Compile(src)
}

func (f *templateFormat) Name() string { return NameHFTemplate }

func (f *templateFormat) Render(ctx context.Context, convs []Conversation) ([]Rendered, error) {
	return renderEach(ctx, convs, f.render)
}

// RenderText renders a conversation to the template's plain output, as
// transformers' apply_chat_template(tokenize=False) would, with the
// generation markers left in (as U+10FFF1 and U+10FFF2). For tests and
// debugging.
func (f *templateFormat) RenderText(msgs []Message) (string, error) {
	return f.execute(withSystemPrompt(msgs, f.o.SystemPrompt))
}

func (f *templateFormat) render(msgs []Message) ([]Segment, error) {
	out, err := f.execute(withSystemPrompt(msgs, f.o.SystemPrompt))
	if err != nil {
		return nil, err
	}
	segs, err := f.parse(out)
	if err != nil {
		return nil, err
	}
	return finish(f.o, segs), nil
}

func (f *templateFormat) execute(msgs []Message) (out string, err error) {
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(f.escape(m.Role)))
		d.AsDict().Set("content", jinja.NewString(f.escape(m.Content)))
		list[i] = d
	}
	data := make(map[string]jinja.Value, len(f.vars)+1)
	for k, v := range f.vars {
		data[k] = v
	}
	data["messages"] = jinja.NewList(list)
	defer func() {
		if p := recover(); p != nil {
			out, err = "", fmt.Errorf("chat template: engine failed: %v", p)
		}
	}()
	out, err = f.tmpl.RenderValues(data)
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return out, nil
}

// escape marks every rune of every special-token string in s, and the marker
// runes, as text (see the comment at escRune).
func (f *templateFormat) escape(s string) string {
	if !f.needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		if tok, ok := f.v.SpecialAt(s, i); ok {
			for _, r := range tok.Content {
				b.WriteRune(escRune)
				b.WriteRune(r)
			}
			i += len(tok.Content)
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == escRune || r == genStart || r == genEnd {
			b.WriteRune(escRune)
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// needsEscape is a fast check: could s hold a special token or a marker?
func (f *templateFormat) needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0xF4 { // lead byte of U+100000–U+10FFFF, where the markers are
			return true
		}
		if len(f.v.byFirst[c]) > 0 {
			if _, ok := f.v.SpecialAt(s, i); ok {
				return true
			}
		}
	}
	return false
}

// parse cuts a template's output into segments (see the comment at escRune).
func (f *templateFormat) parse(out string) ([]Segment, error) {
	var (
		segs     []Segment
		buf      strings.Builder
		inGen    bool
		afterGen bool // nothing yet since the last {% endgeneration %}
	)
	flush := func() {
		if buf.Len() > 0 {
			segs = append(segs, Segment{Text: buf.String(), Trainable: inGen})
			buf.Reset()
		}
	}
	for i := 0; i < len(out); {
		r, n := utf8.DecodeRuneInString(out[i:])
		switch r {
		case escRune:
			_, n2 := utf8.DecodeRuneInString(out[i+n:])
			buf.WriteString(out[i+n : i+n+n2])
			afterGen = false
			i += n + n2
			continue
		case genStart:
			if inGen {
				return nil, fmt.Errorf("chat template: {%% generation %%} inside another generation block")
			}
			flush()
			inGen, afterGen = true, false
			i += n
			continue
		case genEnd:
			if !inGen {
				return nil, fmt.Errorf("chat template: {%% endgeneration %%} without {%% generation %%}")
			}
			flush()
			inGen, afterGen = false, true
			i += n
			continue
		}
		if tok, ok := f.v.SpecialAt(out, i); ok {
			if tok.LStrip {
				pending := strings.TrimRightFunc(buf.String(), isPySpace)
				buf.Reset()
				buf.WriteString(pending)
			}
			flush()
			train := inGen || (afterGen && f.o.TrainEndOfTurn && f.eot[tok.Content])
			segs = append(segs, Segment{Special: tok.Content, Trainable: train})
			afterGen = false
			i += len(tok.Content)
			if tok.RStrip {
				i = skipSpace(out, i)
			}
			continue
		}
		buf.WriteString(out[i : i+n])
		afterGen = false
		i += n
	}
	if inGen {
		return nil, fmt.Errorf("chat template: a generation block is not closed")
	}
	flush()
	return segs, nil
}
