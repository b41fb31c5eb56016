package chat

import (
	"context"
	"fmt"
	"strings"
)

// sentinel stands in for the assistant's reply when a conversation is
// rendered to find where the reply starts and what ends it.
const sentinel = "MARINREPLYSENTINEL"

// Prompter renders conversations into prompt ids with a chat format:
// everything up to where the assistant's reply begins (the generation
// prompt), and knows the tokens that end the reply.
type Prompter struct {
	format Format
	vocab  *Vocab
	enc    *Encoder
	stop   []uint32
}

// NewPrompter builds a format for the tokenizer described by v. Format
// plugins (name "plugin") render in another process and are not supported
// here.
func NewPrompter(o Options, v *Vocab) (*Prompter, error) {
	f, err := New(o, v)
	if err != nil {
		return nil, err
	}
	p := &Prompter{format: f, vocab: v, enc: NewEncoder(v)}
	_, tail, err := p.split([]Message{{Role: "user", Content: "x"}})
	if err != nil {
		return nil, err
	}
	ids, _, err := p.enc.Encode(tail)
	if err != nil {
		return nil, fmt.Errorf("chat format %s: %w", f.Name(), err)
	}
	seen := map[uint32]bool{}
	for _, id := range ids {
		if p.isSpecial(id) && !seen[id] {
			p.stop = append(p.stop, id)
			seen[id] = true
		}
	}
	if v.EOS != "" {
		if id, ok := v.Tok.TokenToID(v.EOS); ok && !seen[id] {
			p.stop = append(p.stop, id)
		}
	}
	if len(p.stop) == 0 {
		return nil, fmt.Errorf("chat format %s: an assistant turn ends in no special token and the tokenizer names no eos_token: generation would never stop", f.Name())
	}
	return p, nil
}

func (p *Prompter) isSpecial(id uint32) bool {
	for _, s := range p.vocab.Specials {
		if s.ID == id {
			return true
		}
	}
	return false
}

// Name is the format's name.
func (p *Prompter) Name() string { return p.format.Name() }

// Stop returns the tokens that end an assistant turn (the format's end of
// turn first, then the tokenizer's eos).
func (p *Prompter) Stop() []uint32 { return append([]uint32(nil), p.stop...) }

// EndOfTurn is the format's end-of-turn token (the first stop token).
func (p *Prompter) EndOfTurn() uint32 { return p.stop[0] }

// split renders msgs followed by an assistant turn and cuts the segments
// where that turn's content begins.
func (p *Prompter) split(msgs []Message) (prompt, tail []Segment, err error) {
	conv := append(append([]Message(nil), msgs...), Message{Role: "assistant", Content: sentinel})
	out, err := p.format.Render(context.Background(), []Conversation{{ID: "prompt", Messages: conv}})
	if err != nil {
		return nil, nil, fmt.Errorf("chat format %s: %w", p.format.Name(), err)
	}
	if len(out) != 1 || out[0].Skip != "" {
		detail := ""
		if len(out) == 1 {
			detail = ": " + out[0].Skip + " " + out[0].SkipDetail
		}
		return nil, nil, fmt.Errorf("chat format %s cannot render this conversation%s", p.format.Name(), detail)
	}
	segs := out[0].Segments
	for i, s := range segs {
		if s.Special != "" {
			continue
		}
		j := strings.LastIndex(s.Text, sentinel)
		if j < 0 {
			continue
		}
		prompt = append(prompt, segs[:i]...)
		if before := s.Text[:j]; before != "" {
			b := s
			b.Text = before
			prompt = append(prompt, b)
		}
		if after := s.Text[j+len(sentinel):]; after != "" {
			a := s
			a.Text = after
			tail = append(tail, a)
		}
		tail = append(tail, segs[i+1:]...)
		return prompt, tail, nil
	}
	return nil, nil, fmt.Errorf("chat format %s: could not find where the assistant's reply goes", p.format.Name())
}

// Encode renders msgs (a conversation whose next turn is the assistant's)
// and returns the ids of the generation prompt.
func (p *Prompter) Encode(msgs []Message) ([]uint32, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("empty conversation")
	}
	prompt, _, err := p.split(msgs)
	if err != nil {
		return nil, err
	}
	ids, _, err := p.enc.Encode(prompt)
	if err != nil {
		return nil, fmt.Errorf("chat format %s: %w", p.format.Name(), err)
	}
	return ids, nil
}
