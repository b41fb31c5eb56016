package chat

import (
	"context"
	"strings"
	"testing"
)

const llama3Head = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"

func TestLlama3Instruct(t *testing.T) {
	v, tok := fakeVocab(t)
	f := mustFormat(t, opts(NameLlama3Instruct), v)
	cases := []struct {
		name string
		msgs []Message
		want string
	}{
		{"no system prompt", []Message{{"user", "Hi"}, {"assistant", "Hello there."}},
			llama3Head + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n«Hello there.<|eot_id|>»"},
		{"system prompt, two turns, trimmed content", []Message{{"system", " Be brief. "}, {"user", " a \n"}, {"assistant", "\nb\n"}, {"user", "c"}, {"assistant", "d"}},
			llama3Head + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n«b<|eot_id|>»" +
				"<|start_header_id|>user<|end_header_id|>\n\nc<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n«d<|eot_id|>»"},
		{"tool turn renders under ipython, untrimmed", []Message{{"user", "x"}, {"tool", " 42 "}, {"assistant", "y"}},
			llama3Head + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>" +
				"<|start_header_id|>ipython<|end_header_id|>\n\n 42 <|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n«y<|eot_id|>»"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids, mask := encodeOne(t, v, f, c.msgs)
			if got := annotate(ids, mask, tok.token); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", quote(got), quote(c.want))
			}
		})
	}
}

// TestTrainEndOfTurn: with the option on, the <|eot_id|> that ends an
// assistant turn is a training target (models must learn to stop); off, only
// the content is, as in Python Marin.
func TestTrainEndOfTurn(t *testing.T) {
	v, tok := fakeVocab(t)
	eot, _ := tok.TokenToID("<|eot_id|>")
	msgs := []Message{{"user", "Hi"}, {"assistant", "Yo"}, {"user", "Again"}, {"assistant", "Yo yo"}}
	for _, on := range []bool{true, false} {
		o := opts(NameLlama3Instruct)
		o.TrainEndOfTurn = on
		ids, mask := encodeOne(t, v, mustFormat(t, o, v), msgs)
		var trainedEOT, allEOT int
		for i, id := range ids {
			if id == eot {
				allEOT++
				if mask[i] == 1 {
					trainedEOT++
				}
			}
		}
		want := 0
		if on {
			want = 2
		}
		if allEOT != 5 || trainedEOT != want {
			t.Errorf("train_end_of_turn=%v: %d <|eot_id|> of which %d trained; want 5 and %d\n%s", on, allEOT, trainedEOT, want, annotate(ids, mask, tok.token))
		}
		// The last token is the final assistant <|eot_id|>.
		if last := len(ids) - 1; ids[last] != eot || (mask[last] == 1) != on {
			t.Errorf("train_end_of_turn=%v: last token %q mask %d", on, tok.token(ids[last]), mask[last])
		}
	}
}

// TestTypedSpecialTokensStayText: a user who types a control token's text
// gets that text, never the control token, in every format.
func TestTypedSpecialTokensStayText(t *testing.T) {
	v, tok := fakeVocab(t)
	typed := "<|eot_id|><|im_end|></s><s><|start_header_id|>"
	msgs := []Message{{"system", typed}, {"user", "a " + typed}, {"assistant", typed + " b"}}
	tmpl, err := NewTemplate(readTemplate(t, "llama3_generation"), opts(NameHFTemplate), v)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{
		mustFormat(t, opts(NameLlama3Instruct), v), mustFormat(t, opts(NameChatML), v),
		mustFormat(t, opts(NameLlama2), v), mustFormat(t, opts(NameMistral), v), mustFormat(t, opts(NameAlpaca), v), tmpl,
	} {
		t.Run(f.Name(), func(t *testing.T) {
			r := renderOne(t, f, msgs)
			// Count control tokens the format emits for an empty conversation
			// of the same shape: typed text must add none.
			ids, mask, err := NewEncoder(v).Encode(r.Segments)
			if err != nil {
				t.Fatal(err)
			}
			plain := renderOne(t, f, []Message{{"system", "x"}, {"user", "a x"}, {"assistant", "x b"}})
			pids, _, err := NewEncoder(v).Encode(plain.Segments)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := countSpecials(ids, tok), countSpecials(pids, tok); got != want {
				t.Errorf("%d control tokens with typed specials, %d without: content became control tokens\n%s", got, want, annotate(ids, mask, tok.token))
			}
			if !strings.Contains(annotate(ids, mask, tok.token), "<|eot_id|><|im_end|></s><s><|start_header_id|>") {
				t.Errorf("typed text lost:\n%s", annotate(ids, mask, tok.token))
			}
		})
	}
}

func countSpecials(ids []uint32, tok *fakeTok) int {
	n := 0
	for _, id := range ids {
		if int(id) < tok.nspec {
			n++
		}
	}
	return n
}

func TestMaskUserTurnsOff(t *testing.T) {
	v, _ := fakeVocab(t)
	for _, name := range []string{NameLlama3Instruct, NameChatML, NameLlama2, NameMistral, NameAlpaca} {
		o := opts(name)
		o.MaskUserTurns = false
		_, mask := encodeOne(t, v, mustFormat(t, o, v), []Message{{"user", "q"}, {"assistant", "a"}})
		for i, m := range mask {
			if m != 1 {
				t.Errorf("%s: token %d not trained with mask_user_turns=False", name, i)
			}
		}
	}
}

func TestSystemPromptOption(t *testing.T) {
	v, tok := fakeVocab(t)
	o := opts(NameLlama3Instruct)
	o.SystemPrompt = "Default."
	f := mustFormat(t, o, v)
	ids, mask := encodeOne(t, v, f, []Message{{"user", "q"}, {"assistant", "a"}})
	if got := annotate(ids, mask, tok.token); !strings.HasPrefix(got, llama3Head+"Default.<|eot_id|>") {
		t.Errorf("default system prompt not used: %q", got)
	}
	ids, mask = encodeOne(t, v, f, []Message{{"system", "Own."}, {"user", "q"}, {"assistant", "a"}})
	if got := annotate(ids, mask, tok.token); !strings.HasPrefix(got, llama3Head+"Own.<|eot_id|><|start_header_id|>user") {
		t.Errorf("a conversation's own system prompt must win: %q", got)
	}
}

func TestLayouts(t *testing.T) {
	v, tok := fakeVocab(t)
	msgs := []Message{{"system", "Sys."}, {"user", "Q1 "}, {"assistant", " A1"}, {"user", "Q2"}, {"assistant", "A2"}}
	cases := map[string]string{
		NameChatML: "<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nQ1 <|im_end|>\n" +
			"<|im_start|>assistant\n« A1<|im_end|>»\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n«A2<|im_end|>»\n",
		// llama2 takes bos/eos from tokenizer_config.json (here <|begin_of_text|>, <|eot_id|>).
		NameLlama2: "<|begin_of_text|>[INST] <<SYS>>\nSys.\n<</SYS>>\n\nQ1 [/INST]« A1 <|eot_id|>»" +
			"<|begin_of_text|>[INST] Q2 [/INST]« A2 <|eot_id|>»",
		NameMistral: "<|begin_of_text|>[INST] Sys.\n\nQ1  [/INST]« A1<|eot_id|>»[INST] Q2 [/INST]«A2<|eot_id|>»",
		NameAlpaca: "<|begin_of_text|>Sys.\n\n### Instruction:\nQ1 \n\n### Response:\n« A1<|eot_id|>»" +
			"\n\n### Instruction:\nQ2\n\n### Response:\n«A2<|eot_id|>»",
	}
	for name, want := range cases {
		ids, mask := encodeOne(t, v, mustFormat(t, opts(name), v), msgs)
		if got := annotate(ids, mask, tok.token); got != want {
			t.Errorf("%s: got\n%s\nwant\n%s", name, quote(got), quote(want))
		}
	}
	ids, mask := encodeOne(t, v, mustFormat(t, opts(NameAlpaca), v), msgs[1:3])
	if got, want := annotate(ids, mask, tok.token), "<|begin_of_text|>"+AlpacaPreamble+"\n\n### Instruction:\nQ1 \n\n### Response:\n« A1<|eot_id|>»"; got != want {
		t.Errorf("alpaca without system: got %q want %q", got, want)
	}
}

func TestFormatNeedsItsTokens(t *testing.T) {
	tok := newFakeTok("<s>", "</s>")
	v, err := NewVocab(tok, tokenizerJSON(tok, []string{"<s>", "</s>"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{NameLlama3Instruct, NameChatML} {
		if _, err := New(opts(name), v); err == nil || !strings.Contains(err.Error(), "does not have") {
			t.Errorf("%s on a Llama 2 vocabulary: err = %v", name, err)
		}
	}
	if _, err := New(opts(NameLlama2), v); err != nil {
		t.Errorf("llama2: %v", err)
	}
	if _, err := New(opts(NameHFTemplate), v); err == nil || !strings.Contains(err.Error(), "no chat_template") {
		t.Errorf("hf_template without a template: %v", err)
	}
}

func TestRenderSkips(t *testing.T) {
	v, _ := fakeVocab(t)
	f := mustFormat(t, opts(NameLlama2), v)
	r, err := f.Render(context.Background(), []Conversation{
		{ID: "empty"},
		{ID: "bad", Messages: []Message{{"user", "a"}, {"user", "b"}}},
		{ID: "tool", Messages: []Message{{"user", "a"}, {"tool", "b"}}},
		{ID: "ok", Messages: []Message{{"user", "a"}, {"assistant", "b"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r[0].Skip != SkipNoMessages || r[1].Skip != SkipRenderError || !strings.Contains(r[1].SkipDetail, "alternate") ||
		r[2].Skip != SkipRenderError || r[3].Skip != "" {
		t.Errorf("skips: %+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Render(ctx, []Conversation{{ID: "x"}}); err == nil {
		t.Error("a cancelled context must fail the render")
	}
}

// TestStraddlingToken: when a token crosses the edge of a trainable span it
// is trained, and the ids are those of the whole text.
func TestStraddlingToken(t *testing.T) {
	v, tok := fakeVocab(t)
	enc := NewEncoder(v)
	cases := []struct {
		segs []Segment
		want string
	}{
		{[]Segment{{Text: "Hello"}, {Text: " world", Trainable: true}}, "Hello« world»"},
		{[]Segment{{Text: "Hel"}, {Text: "lo world", Trainable: true}}, "«Hello world»"},
		{[]Segment{{Text: "say Hel"}, {Text: "lo", Trainable: true}, {Text: "p me"}}, "say« Hellop» me"},
		{[]Segment{{Text: "say Hel"}, {Text: "lo", Trainable: true}, {Text: ", me"}}, "say« Hello», me"},
		{[]Segment{{Text: "a", Trainable: true}, {Text: "b"}, {Text: "c", Trainable: true}}, "«abc»"},
		{[]Segment{{Text: "x "}, {Text: "y", Trainable: true}, {Special: "<|eot_id|>", Trainable: true}, {Text: "z"}}, "x« y<|eot_id|>»z"},
		{[]Segment{{Text: "", Trainable: true}, {Text: "q"}}, "q"},
	}
	for _, c := range cases {
		ids, mask, err := enc.Encode(c.segs)
		if err != nil {
			t.Fatal(err)
		}
		if got := annotate(ids, mask, tok.token); got != c.want {
			t.Errorf("%s: got %q want %q", annotateSegments(c.segs), got, c.want)
		}
	}
	if _, _, err := enc.Encode([]Segment{{Special: "<|nope|>"}}); err == nil || !strings.Contains(err.Error(), "<|nope|>") {
		t.Errorf("unknown special: %v", err)
	}
}

func TestLiteralStripFlags(t *testing.T) {
	tok := newFakeTok("<L>", "<R>")
	raw := []byte(`{"added_tokens": [{"id": 0, "content": "<L>", "special": true, "lstrip": true}, {"id": 1, "content": "<R>", "special": true, "rstrip": true}, {"id": 9, "content": "<n>", "special": false}]}`)
	v, err := NewVocab(tok, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids, mask, err := NewEncoder(v).Encode([]Segment{{Text: "a  <L> b <R>  c <n>", Literal: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := annotate(ids, mask, tok.token), "a<L> b <R>c <n>"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if v.IsSpecial("<n>") || !v.IsSpecial("<L>") || v.IsSpecial("") {
		t.Error("IsSpecial: only special added tokens count")
	}
}

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions([]byte(`{"name": "chatml", "template": null, "plugin": null, "messages_field": "messages",
		"mask_user_turns": true, "train_end_of_turn": false, "pack": false, "system_prompt": null}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != NameChatML || o.TrainEndOfTurn || o.Pack || !o.MaskUserTurns || o.MessagesField != "messages" {
		t.Errorf("%+v", o)
	}
	if o, err := ParseOptions(nil); err != nil || o != DefaultOptions() {
		t.Errorf("empty: %+v %v", o, err)
	}
	for raw, want := range map[string]string{
		`{"name": "chatml", "colour": 1}`:          `unknown field "colour"`,
		`{"name": "nope"}`:                         `unknown chat format "nope"`,
		`{"name": "plugin"}`:                       `needs plugin=`,
		`{"name": "chatml", "plugin": "x"}`:        `only used with name="plugin"`,
		`{"name": "chatml", "template": "x"}`:      `only used with name="hf_template"`,
		`{"name": "chatml", "pack": "yes"}`:        `pack`,
		`{"name": "chatml", "messages_field": ""}`: `messages_field`,
	} {
		if _, err := ParseOptions([]byte(raw)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", raw, err, want)
		}
	}
}

func TestPyStrip(t *testing.T) {
	if got := pyStrip("\x1c\u00a0 a b\u3000\x1f"); got != "a b" {
		t.Errorf("pyStrip = %q", got)
	}
	ps := stripParts([]part{{s: "  <<SYS>>", lit: true}, {s: " x "}, {s: "\n"}})
	if len(ps) != 2 || ps[0] != (part{s: "<<SYS>>", lit: true}) || ps[1] != (part{s: " x"}) {
		t.Errorf("stripParts = %+v", ps)
	}
	if stripParts([]part{{s: " \n"}}) != nil {
		t.Error("all-space parts must strip to nothing")
	}
}
