package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

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

// BenchmarkEncodeCommand times the whole `marin tokenizer encode` (load
// Llama 3's tokenizer.json, read and parse JSON lines, encode on all cores,
// write the ids in order) on 48 MB of {"text": ...} lines, against the npm
// oracle's encodeBatch alone (Hugging Face tokenizers, Rust, all cores; its
// load and JSON parsing not counted) on the same documents, and reports
// both rates and their ratio, with the tokenizer cache cold (first load)
// and warm. Needs the oracle (backends/tokens/tokenizer/oracle/README.md):
//
//	go test -run '^$' -bench EncodeCommand -benchtime 1x ./cmd/marin/
func BenchmarkEncodeCommand(b *testing.B) {
	oracleDir := filepath.Join("..", "..", "backends", "tokens", "tokenizer", "oracle")
	if _, err := exec.LookPath("node"); err != nil {
		b.Skip("node not installed")
	}
	if _, err := os.Stat(filepath.Join(oracleDir, "node_modules", "tokenizers")); err != nil {
		b.Skip("oracle not installed")
	}
	modDir, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		b.Skip(err)
	}
	tokFile := filepath.Join(strings.TrimSpace(string(modDir)), "github.com", "daulet", "tokenizers@v1.24.0", "test", "data", "Meta-Llama-3-8B-Instruct.json")
	if _, err := os.Stat(tokFile); err != nil {
		b.Skip("Llama 3 tokenizer.json not installed (go mod download github.com/daulet/tokenizers@v1.24.0)")
	}
	dir := b.TempDir()
	docsFile := filepath.Join(dir, "docs.jsonl")
	size, lines := writeBenchDocs(b, docsFile, 48<<20)
	b.Setenv("MARIN_TOKENIZER_CACHE", filepath.Join(dir, "cache"))

	out, err := exec.Command("node", filepath.Join(oracleDir, "bench.js"), docsFile, tokFile).Output()
	if err != nil {
		b.Fatalf("oracle bench: %v", err)
	}
	var oracle struct {
		MBps    float64 `json:"mbps"`
		Seconds float64 `json:"seconds"`
		Tokens  int     `json:"tokens"`
	}
	if err := json.Unmarshal(out, &oracle); err != nil {
		b.Fatalf("oracle bench output %q: %v", out, err)
	}
	run := func() (time.Duration, int) {
		in, err := os.Open(docsFile)
		if err != nil {
			b.Fatal(err)
		}
		defer in.Close()
		outFile := filepath.Join(dir, "ids.jsonl")
		o, err := os.Create(outFile)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		cmd := newTokenizerCmd(o, io.Discard)
		cmd.SetIn(in)
		cmd.SetArgs([]string{"encode", "--tokenizer", tokFile, "--no-special"})
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := o.Close(); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		data, err := os.ReadFile(outFile)
		if err != nil {
			b.Fatal(err)
		}
		return el, bytes.Count(data, []byte(",")) + bytes.Count(data, []byte("\n"))
	}
	cold, tokens := run()
	if tokens != oracle.Tokens {
		b.Errorf("token counts differ: ours %d, oracle %d", tokens, oracle.Tokens)
	}
	b.ResetTimer()
	var warm time.Duration
	for i := 0; i < b.N; i++ {
		warm, _ = run()
	}
	mb := float64(size) / 1e6
	b.ReportMetric(mb/warm.Seconds(), "cmd_MB/s")
	b.ReportMetric(mb/cold.Seconds(), "cmd_cold_MB/s")
	b.ReportMetric(oracle.MBps, "oracle_encodeBatch_MB/s")
	b.ReportMetric(mb/warm.Seconds()/oracle.MBps, "x_oracle")
	b.Logf("%.1f MB of text in %d lines (%d tokens), %d cores: marin tokenizer encode %.2fs (%.1f MB/s; cold cache %.2fs, %.1f MB/s), oracle encodeBatch %.2fs (%.1f MB/s): %.1fx (cold %.1fx)",
		mb, lines, tokens, runtime.GOMAXPROCS(0), warm.Seconds(), mb/warm.Seconds(), cold.Seconds(), mb/cold.Seconds(),
		oracle.Seconds, oracle.MBps, oracle.Seconds/warm.Seconds(), oracle.Seconds/cold.Seconds())
}

// writeBenchDocs writes about size bytes of text as {"text": ...} lines:
// English-like prose interleaved with the tokenizer parity corpus (many
// scripts, emoji, code, whitespace runs), documents of 1–8 KB, from a fixed
// seed. It returns the text bytes and the line count.
func writeBenchDocs(b *testing.B, path string, size int) (int, int) {
	var corpus []string
	if f, err := os.Open(filepath.Join("..", "..", "backends", "tokens", "tokenizer", "testdata", "corpus.jsonl.gz")); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			var s string
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				corpus = append(corpus, s)
			}
		}
	}
	prose := strings.Fields(`the of and to in a is that for it as was with be by on not he I this are or his from at
		which but have an they you were her she there been one all we their has would when if will more no out do so can
		who about up said what its into than them only some could new time these two may first then any like my now over
		such our man me even most made after also did many before must through back years where much your way well down
		model tokens training data language learning Marin dataset loss step gradient layer attention`)
	rng := rand.New(rand.NewPCG(1, 2))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	total, lines := 0, 0
	for total < size {
		var sb strings.Builder
		n := 1024 + rng.IntN(7*1024)
		for sb.Len() < n {
			if len(corpus) > 0 && rng.IntN(4) == 0 {
				sb.WriteString(corpus[rng.IntN(len(corpus))])
				sb.WriteByte(' ')
				continue
			}
			words := 8 + rng.IntN(20)
			for i := 0; i < words; i++ {
				sb.WriteString(prose[rng.IntN(len(prose))])
				if i+1 < words {
					sb.WriteByte(' ')
				}
			}
			sb.WriteString([]string{". ", ".\n", ", ", ".\n\n", "? "}[rng.IntN(5)])
		}
		line, _ := json.Marshal(map[string]string{"text": sb.String()})
		w.Write(line)
		w.WriteByte('\n')
		total += sb.Len()
		lines++
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return total, lines
}
