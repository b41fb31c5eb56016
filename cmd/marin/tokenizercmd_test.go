package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/plugins/hfhub/hubtest"
)

// tinyTokenizer is a WordPiece tokenizer.json small enough to read.
const tinyTokenizer = `{"version":"1.0","added_tokens":[
 {"id":0,"content":"[UNK]","special":true,"normalized":false,"lstrip":false,"rstrip":false,"single_word":false},
 {"id":1,"content":"[CLS]","special":true,"normalized":false,"lstrip":false,"rstrip":false,"single_word":false},
 {"id":2,"content":"[SEP]","special":true,"normalized":false,"lstrip":false,"rstrip":false,"single_word":false}],
 "normalizer":{"type":"BertNormalizer","lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},
 "post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}],
  "special_tokens":{"[CLS]":{"id":"[CLS]","ids":[1],"tokens":["[CLS]"]},"[SEP]":{"id":"[SEP]","ids":[2],"tokens":["[SEP]"]}}},
 "decoder":{"type":"WordPiece","prefix":"##","cleanup":true},
 "model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,
  "vocab":{"[UNK]":0,"[CLS]":1,"[SEP]":2,"hello":3,"world":4,"!":5,"tok":6,"##en":7}}}`

func runTokenizerCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newTokenizerCmd(&out, &errb)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestTokenizerCmd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, []byte(tinyTokenizer), 0o644); err != nil {
		t.Fatal(err)
	}
	in := `{"text": "Hello world!"}` + "\n" + `{"text": "token [SEP]"}` + "\n" + `{"text": ""}` + "\n"
	out, _, err := runTokenizerCmd(t, in, "encode", "--tokenizer", path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ids":[1,3,4,5,2]}` + "\n" + `{"ids":[1,6,7,2,2]}` + "\n" + `{"ids":[1,2]}` + "\n"
	if out != want {
		t.Errorf("encode:\n%s\nwant\n%s", out, want)
	}
	out, _, err = runTokenizerCmd(t, in, "encode", "--tokenizer", path, "--no-special", "--batch", "1")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ids":[3,4,5]}` + "\n" + `{"ids":[6,7,2]}` + "\n" + `{"ids":[]}` + "\n"; out != want {
		t.Errorf("encode --no-special:\n%s\nwant\n%s", out, want)
	}
	out, _, err = runTokenizerCmd(t, `{"ids":[1,3,4,5,2]}`+"\n"+`{"ids":[6,7]}`+"\n", "decode", "--tokenizer", path, "--skip-special")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"text":"hello world!"}` + "\n" + `{"text":"token"}` + "\n"; out != want {
		t.Errorf("decode:\n%s\nwant\n%s", out, want)
	}
	out, _, err = runTokenizerCmd(t, "", "info", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"WordPiece (8 tokens", "vocab size:     8", "BertNormalizer", "BertPreTokenizer", "TemplateProcessing([CLS] $A [SEP])"} {
		if !strings.Contains(out, w) {
			t.Errorf("info output lacks %q:\n%s", w, out)
		}
	}
	if _, _, err := runTokenizerCmd(t, "not json\n", "encode", "--tokenizer", path); err == nil || !strings.Contains(err.Error(), "stdin line 1") {
		t.Errorf("bad input: err = %v", err)
	}
	if _, _, err := runTokenizerCmd(t, "", "info", filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestTokenizerCmdHub(t *testing.T) {
	hub := hubtest.New(&hubtest.Repo{Type: "model", ID: "acme/tiny", Commit: strings.Repeat("ab", 20),
		Files: map[string][]byte{"tokenizer.json": []byte(tinyTokenizer), "config.json": []byte("{}")}, Branches: []string{"main"}})
	defer hub.Close()
	t.Setenv("HF_ENDPOINT", hub.URL())
	t.Setenv("HF_TOKEN", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	out, _, err := runTokenizerCmd(t, `{"text":"hello"}`+"\n", "encode", "--tokenizer", "acme/tiny")
	if err != nil {
		t.Fatal(err)
	}
	if out != `{"ids":[1,3,2]}`+"\n" {
		t.Errorf("encode from hub: %q", out)
	}
	if _, _, err := runTokenizerCmd(t, "", "info", "acme/missing"); err == nil {
		t.Error("missing hub repo: no error")
	}
}

// TestTokenizerCmdOrder: many small blocks on all cores come out in input
// order, and an error names its line however far into the input it is.
func TestTokenizerCmdOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, []byte(tinyTokenizer), 0o644); err != nil {
		t.Fatal(err)
	}
	words := []string{"hello", "world", "!", "token", "tok", "x"}
	var in, want strings.Builder
	ids := map[string]string{"hello": "3", "world": "4", "!": "5", "token": "6,7", "tok": "6", "x": "0"}
	for i := 0; i < 3000; i++ {
		w1, w2 := words[i%len(words)], words[(i/len(words))%len(words)]
		fmt.Fprintf(&in, "{\"text\": %q}\n", w1+" "+w2)
		fmt.Fprintf(&want, "{\"ids\":[%s,%s]}\n", ids[w1], ids[w2])
	}
	out, _, err := runTokenizerCmd(t, in.String(), "encode", "--tokenizer", path, "--no-special", "--batch", "7")
	if err != nil {
		t.Fatal(err)
	}
	if out != want.String() {
		t.Fatalf("encode out of order or wrong:\n%.300s\nwant\n%.300s", out, want.String())
	}
	// Decode the ids back, in order.
	dec, _, err := runTokenizerCmd(t, out, "decode", "--tokenizer", path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(dec, "\n"), "\n"); len(lines) != 3000 || lines[0] != `{"text":"hello hello"}` || lines[7] != `{"text":"world world"}` {
		t.Fatalf("decode: %d lines, first %q, eighth %q", len(lines), lines[0], lines[7])
	}
	bad := in.String() + "{\"text\": 5}\n" + in.String()
	if _, _, err := runTokenizerCmd(t, bad, "encode", "--tokenizer", path, "--batch", "5"); err == nil || !strings.Contains(err.Error(), "stdin line 3001") {
		t.Fatalf("bad line 3001: %v", err)
	}
	// No trailing newline, CRLF endings.
	out, _, err = runTokenizerCmd(t, "{\"text\": \"hello\"}\r\n{\"text\": \"world\"}", "encode", "--tokenizer", path, "--no-special")
	if err != nil || out != "{\"ids\":[3]}\n{\"ids\":[4]}\n" {
		t.Fatalf("CRLF/no final newline: %q %v", out, err)
	}
}
