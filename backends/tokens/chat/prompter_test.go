package chat_test

import (
	"testing"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/plugins/tasks"
)

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
	p, err := chat.NewPrompter(o, v)
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
	q, err := chat.NewPrompter(chat.DefaultOptions(), v)
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
