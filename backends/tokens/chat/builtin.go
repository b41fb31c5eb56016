package chat

import (
	"context"
	"fmt"
	"strings"
	"unicode"
)

// builder collects the segments of one conversation.
type builder struct{ segs []Segment }

func (b *builder) special(tok string, train bool) {
	b.segs = append(b.segs, Segment{Special: tok, Trainable: train})
}

// lit adds the format's own words; special-token strings in them count.
func (b *builder) lit(s string, train bool) {
	if s != "" {
		b.segs = append(b.segs, Segment{Text: s, Literal: true, Trainable: train})
	}
}

// text adds message content: always text.
func (b *builder) text(s string, train bool) {
	if s != "" {
		b.segs = append(b.segs, Segment{Text: s, Trainable: train})
	}
}

// parts adds a run of content and format words.
func (b *builder) parts(ps []part, train bool) {
	for _, p := range ps {
		if p.lit {
			b.lit(p.s, train)
		} else {
			b.text(p.s, train)
		}
	}
}

// part is content (lit false) or format words (lit true), for formats that
// strip whitespace around a mix of both, as Jinja's str.strip() does.
type part struct {
	s   string
	lit bool
}

// stripParts is Python's str.strip() of the concatenation, cutting the
// parts where the stripped string begins and ends.
func stripParts(ps []part) []part {
	var all strings.Builder
	for _, p := range ps {
		all.WriteString(p.s)
	}
	s := all.String()
	start := len(s) - len(strings.TrimLeftFunc(s, isPySpace))
	end := len(strings.TrimRightFunc(s, isPySpace))
	if start >= end {
		return nil
	}
	var out []part
	off := 0
	for _, p := range ps {
		a, b := off, off+len(p.s)
		off = b
		if a < start {
			a = start
		}
		if b > end {
			b = end
		}
		if a < b {
			out = append(out, part{s: s[a:b], lit: p.lit})
		}
	}
	return out
}

// isPySpace is Python's str.isspace for one rune: Go's unicode.IsSpace plus
// the four information separators U+001C–U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStrip is Python's str.strip() (and Jinja's trim filter) with no argument.
func pyStrip(s string) string { return strings.TrimFunc(s, isPySpace) }

// splitSystem takes a leading system message off msgs.
func splitSystem(msgs []Message) (sys string, hasSys bool, rest []Message) {
	if len(msgs) > 0 && msgs[0].Role == "system" {
		return msgs[0].Content, true, msgs[1:]
	}
	return "", false, msgs
}

// alternate is the check of the Llama 2 and Mistral templates.
func alternate(i int, m Message) error {
	if (m.Role == "user") != (i%2 == 0) {
		return fmt.Errorf("conversation roles must alternate user/assistant/user/assistant/… (message %d is %q)", i+1, m.Role)
	}
	return nil
}

// Llama 3 control tokens.
const (
	l3Begin = "<|begin_of_text|>"
	l3Start = "<|start_header_id|>"
	l3End   = "<|end_header_id|>"
	l3EOT   = "<|eot_id|>"
)

// Llama3SystemHeader is the text Marin's Llama 3 template puts before the
// system prompt.
const Llama3SystemHeader = "\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"

// llama3 is Marin's llama3_instruct_chat_format: always a system turn (with
// the knowledge-date header, the system prompt trimmed, empty when there is
// none), then one header-delimited turn per message with trimmed content.
// Tool messages render under an "ipython" header, untrimmed, as in Marin's
// template. Unlike Marin, the <|eot_id|> that ends an assistant turn is
// trained when TrainEndOfTurn is set.
type llama3 struct {
	o Options
}

func newLlama3(o Options, v *Vocab) (Format, error) {
	if err := v.require(NameLlama3Instruct, l3Begin, l3Start, l3End, l3EOT); err != nil {
		return nil, err
	}
	return &llama3{o: o}, nil
}

func (f *llama3) Name() string { return NameLlama3Instruct }

func (f *llama3) Render(ctx context.Context, convs []Conversation) ([]Rendered, error) {
	return renderEach(ctx, convs, f.render)
}

func (f *llama3) render(msgs []Message) ([]Segment, error) {
	sys, _, rest := splitSystem(withSystemPrompt(msgs, f.o.SystemPrompt))
	var b builder
	b.special(l3Begin, false)
	b.special(l3Start, false)
	b.lit("system", false)
	b.special(l3End, false)
	b.lit(Llama3SystemHeader, false)
	b.text(pyStrip(sys), false)
	b.special(l3EOT, false)
	for _, m := range rest {
		role, content := m.Role, pyStrip(m.Content)
		if role == "tool" || role == "ipython" {
			role, content = "ipython", m.Content
		}
		asst := role == "assistant"
		b.special(l3Start, false)
		b.text(role, false)
		b.special(l3End, false)
		b.lit("\n\n", false)
		b.text(content, asst)
		b.special(l3EOT, asst && f.o.TrainEndOfTurn)
	}
	return finish(f.o, b.segs), nil
}

// ChatML control tokens.
const (
	imStart = "<|im_start|>"
	imEnd   = "<|im_end|>"
)

// chatML is the ChatML layout of Qwen models:
// <|im_start|>{role}\n{content}<|im_end|>\n per message, content untouched,
// no default system prompt. The assistant content and its <|im_end|> are
// trained; the newline after it is not.
type chatML struct{ o Options }

func newChatML(o Options, v *Vocab) (Format, error) {
	if err := v.require(NameChatML, imStart, imEnd); err != nil {
		return nil, err
	}
	return &chatML{o: o}, nil
}

func (f *chatML) Name() string { return NameChatML }

func (f *chatML) Render(ctx context.Context, convs []Conversation) ([]Rendered, error) {
	return renderEach(ctx, convs, f.render)
}

func (f *chatML) render(msgs []Message) ([]Segment, error) {
	var b builder
	for _, m := range withSystemPrompt(msgs, f.o.SystemPrompt) {
		asst := m.Role == "assistant"
		b.special(imStart, false)
		b.text(m.Role, false)
		b.lit("\n", false)
		b.text(m.Content, asst)
		b.special(imEnd, asst && f.o.TrainEndOfTurn)
		b.lit("\n", false)
	}
	return finish(f.o, b.segs), nil
}

// llama2 is Hugging Face's Llama 2 chat template:
// <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>
// with roles alternating user/assistant and str.strip() where the template
// strips. The assistant text (with the spaces around it) and </s> are
// trained.
type llama2 struct {
	o        Options
	bos, eos string
}

func newLlama2(o Options, v *Vocab) (Format, error) {
	bos, eos := v.pick(v.BOS, "<s>"), v.pick(v.EOS, "</s>")
	if bos == "" || eos == "" {
		return nil, v.require(NameLlama2, "<s>", "</s>")
	}
	return &llama2{o: o, bos: bos, eos: eos}, nil
}

func (f *llama2) Name() string { return NameLlama2 }

func (f *llama2) Render(ctx context.Context, convs []Conversation) ([]Rendered, error) {
	return renderEach(ctx, convs, f.render)
}

func (f *llama2) render(msgs []Message) ([]Segment, error) {
	sys, hasSys, loop := splitSystem(withSystemPrompt(msgs, f.o.SystemPrompt))
	var b builder
	for i, m := range loop {
		if err := alternate(i, m); err != nil {
			return nil, err
		}
		content := []part{{s: m.Content}}
		if i == 0 && hasSys {
			content = []part{{s: "<<SYS>>\n", lit: true}, {s: sys}, {s: "\n<</SYS>>\n\n", lit: true}, {s: m.Content}}
		}
		switch m.Role {
		case "user":
			b.special(f.bos, false)
			b.lit("[INST] ", false)
			b.parts(stripParts(content), false)
			b.lit(" [/INST]", false)
		case "system":
			b.lit("<<SYS>>\n", false)
			b.parts(stripParts(content), false)
			b.lit("\n<</SYS>>\n\n", false)
		case "assistant":
			b.text(" ", true)
			b.parts(stripParts(content), true)
			b.text(" ", true)
			b.special(f.eos, f.o.TrainEndOfTurn)
		default:
			return nil, fmt.Errorf("llama2 format: message %d has role %q; the template knows system, user and assistant", i+1, m.Role)
		}
	}
	return finish(f.o, b.segs), nil
}

// mistral is the Mistral Instruct (v0.1/v0.2) layout:
// <s>[INST] {user} [/INST]{assistant}</s>[INST] … with content untouched and
// roles alternating; a system prompt goes before the first user message,
// separated by a blank line. "[INST]" is written as the format's own text, so
// tokenizers that have it as a control token (v3) get that token. The
// assistant content and </s> are trained.
type mistral struct {
	o        Options
	bos, eos string
}

func newMistral(o Options, v *Vocab) (Format, error) {
	bos, eos := v.pick(v.BOS, "<s>"), v.pick(v.EOS, "</s>")
	if bos == "" || eos == "" {
		return nil, v.require(NameMistral, "<s>", "</s>")
	}
	return &mistral{o: o, bos: bos, eos: eos}, nil
}

func (f *mistral) Name() string { return NameMistral }

func (f *mistral) Render(ctx context.Context, convs []Conversation) ([]Rendered, error) {
	return renderEach(ctx, convs, f.render)
}

func (f *mistral) render(msgs []Message) ([]Segment, error) {
	sys, hasSys, loop := splitSystem(withSystemPrompt(msgs, f.o.SystemPrompt))
	var b builder
	b.special(f.bos, false)
	for i, m := range loop {
		if err := alternate(i, m); err != nil {
			return nil, err
		}
		switch m.Role {
		case "user":
			b.lit("[INST] ", false)
			if i == 0 && hasSys {
				b.text(sys, false)
				b.lit("\n\n", false)
			}
			b.text(m.Content, false)
			b.lit(" [/INST]", false)
		case "assistant":
			b.text(m.Content, true)
			b.special(f.eos, f.o.TrainEndOfTurn)
		default:
			return nil, fmt.Errorf("mistral format: message %d has role %q; it knows user and assistant, and a first system message", i+1, m.Role)
		}
	}
	return finish(f.o, b.segs), nil
}

// AlpacaPreamble is the Alpaca prompt's opening, used when a conversation
// has no system message and the format no system_prompt.
const AlpacaPreamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request."

// alpaca is the Stanford Alpaca prompt, one instruction/response pair per
// user/assistant turn:
// [BOS]{preamble}\n\n### Instruction:\n{user}\n\n### Response:\n{assistant}EOS
// The response and EOS are trained. BOS and EOS come from
// tokenizer_config.json, else the usual names the tokenizer has.
type alpaca struct {
	o        Options
	bos, eos string
}

func newAlpaca(o Options, v *Vocab) (Format, error) {
	eos := v.pick(v.EOS, "</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>")
	if eos == "" {
		return nil, fmt.Errorf("chat format alpaca: cannot tell the tokenizer's end-of-sequence token (no eos_token in tokenizer_config.json and none of </s>, <|end_of_text|>, <|endoftext|>, <eos>, <|im_end|>)")
	}
	return &alpaca{o: o, bos: v.pick(v.BOS, "<s>", "<|begin_of_text|>", "<bos>"), eos: eos}, nil
}

func (f *alpaca) Name() string { return NameAlpaca }

func (f *alpaca) Render(ctx context.Context, convs []Conversation) ([]Rendered, error) {
	return renderEach(ctx, convs, f.render)
}

func (f *alpaca) render(msgs []Message) ([]Segment, error) {
	sys, hasSys, loop := splitSystem(withSystemPrompt(msgs, f.o.SystemPrompt))
	var b builder
	if f.bos != "" {
		b.special(f.bos, false)
	}
	if hasSys {
		b.text(sys, false)
	} else {
		b.lit(AlpacaPreamble, false)
	}
	for i, m := range loop {
		if err := alternate(i, m); err != nil {
			return nil, err
		}
		switch m.Role {
		case "user":
			b.lit("\n\n### Instruction:\n", false)
			b.text(m.Content, false)
			b.lit("\n\n### Response:\n", false)
		case "assistant":
			b.text(m.Content, true)
			b.special(f.eos, f.o.TrainEndOfTurn)
		default:
			return nil, fmt.Errorf("alpaca format: message %d has role %q; it knows user and assistant, and a first system message", i+1, m.Role)
		}
	}
	return finish(f.o, b.segs), nil
}
