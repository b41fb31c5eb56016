package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// fakeTok is a small deterministic tokenizer for tests that must not depend
// on a real tokenizer.json: a token is a run of letters or digits with at
// most one space in front, or any other single rune. Its ids are assigned on
// first sight; specials come first.
type fakeTok struct {
	mu    sync.Mutex
	ids   map[string]uint32
	toks  []string
	nspec int
}

func newFakeTok(specials ...string) *fakeTok {
	f := &fakeTok{ids: map[string]uint32{}}
	for _, s := range specials {
		f.id(s)
	}
	f.nspec = len(specials)
	return f
}

func (f *fakeTok) id(s string) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.ids[s]; ok {
		return id
	}
	id := uint32(len(f.toks))
	f.ids[s] = id
	f.toks = append(f.toks, s)
	return id
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func (f *fakeTok) Encode(text string, o tokenizer.EncodeOptions) []uint32 {
	if o.SplitSpecial {
		panic("chat must never encode with SplitSpecial")
	}
	var out []uint32
	for i := 0; i < len(text); {
		j := i
		if text[j] == ' ' {
			j++
		}
		k := j
		for k < len(text) {
			r, n := utf8.DecodeRuneInString(text[k:])
			if !isWord(r) {
				break
			}
			k += n
		}
		if k == j { // not a word: one rune
			_, n := utf8.DecodeRuneInString(text[i:])
			k = i + n
		}
		out = append(out, f.id(text[i:k]))
		i = k
	}
	return out
}

func (f *fakeTok) TokenToID(tok string) (uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.ids[tok]
	return id, ok
}

func (f *fakeTok) token(id uint32) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.toks[id]
}

// commonSpecials are the control tokens of the families the tests use.
var commonSpecials = []string{
	"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
	"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>",
}

// tokenizerJSON makes the added_tokens part of a tokenizer.json.
func tokenizerJSON(tok *fakeTok, specials []string) []byte {
	var added []map[string]any
	for _, s := range specials {
		id, _ := tok.TokenToID(s)
		added = append(added, map[string]any{"id": id, "content": s, "special": true, "lstrip": false, "rstrip": false})
	}
	b, _ := json.Marshal(map[string]any{"added_tokens": added})
	return b
}

// fakeVocab is a Vocab over a fakeTok with commonSpecials, BOS
// <|begin_of_text|> and EOS <|eot_id|> (as the render oracle uses).
func fakeVocab(t testing.TB) (*Vocab, *fakeTok) {
	t.Helper()
	tok := newFakeTok(commonSpecials...)
	v, err := NewVocab(tok, tokenizerJSON(tok, commonSpecials), []byte(`{"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"}}`))
	if err != nil {
		t.Fatal(err)
	}
	return v, tok
}

type testConv struct {
	ID       string    `json:"id"`
	Messages []Message `json:"messages"`
}

func loadConversations(t testing.TB) []testConv {
	t.Helper()
	raw, err := os.ReadFile("testdata/conversations.json")
	if err != nil {
		t.Fatal(err)
	}
	var convs []testConv
	if err := json.Unmarshal(raw, &convs); err != nil {
		t.Fatal(err)
	}
	return convs
}

func conversations(tcs []testConv) []Conversation {
	out := make([]Conversation, len(tcs))
	for i, c := range tcs {
		out[i] = Conversation{ID: c.ID, Messages: c.Messages}
	}
	return out
}

// renderOne renders one conversation and fails the test on a job error.
func renderOne(t testing.TB, f Format, msgs []Message) Rendered {
	t.Helper()
	r, err := f.Render(context.Background(), []Conversation{{ID: "t", Messages: msgs}})
	if err != nil {
		t.Fatal(err)
	}
	return r[0]
}

// annotate shows a token sequence as text with the trained tokens inside
// «…», using tokenOf to spell each id.
func annotate(ids []uint32, mask []uint8, tokenOf func(uint32) string) string {
	var b strings.Builder
	in := false
	for i, id := range ids {
		on := mask[i] == 1
		if on != in {
			if on {
				b.WriteString("«")
			} else {
				b.WriteString("»")
			}
			in = on
		}
		b.WriteString(tokenOf(id))
	}
	if in {
		b.WriteString("»")
	}
	return b.String()
}

// annotateSegments shows segments the same way, specials in ⟨…⟩ when they
// came as Special segments.
func annotateSegments(segs []Segment) string {
	var b strings.Builder
	in := false
	for _, s := range segs {
		if s.Trainable != in {
			if s.Trainable {
				b.WriteString("«")
			} else {
				b.WriteString("»")
			}
			in = s.Trainable
		}
		if s.Special != "" {
			b.WriteString("⟨" + s.Special + "⟩")
		} else {
			b.WriteString(s.Text)
		}
	}
	if in {
		b.WriteString("»")
	}
	return b.String()
}

func mustFormat(t testing.TB, o Options, v *Vocab) Format {
	t.Helper()
	f, err := New(o, v)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func opts(name string) Options {
	o := DefaultOptions()
	o.Name = name
	return o
}

func encodeOne(t testing.TB, v *Vocab, f Format, msgs []Message) ([]uint32, []uint8) {
	t.Helper()
	r := renderOne(t, f, msgs)
	if r.Skip != "" {
		t.Fatalf("skipped: %s: %s", r.Skip, r.SkipDetail)
	}
	ids, mask, err := NewEncoder(v).Encode(r.Segments)
	if err != nil {
		t.Fatal(err)
	}
	return ids, mask
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
