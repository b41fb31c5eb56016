package tokenize

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/tokens/chat"
)

// llama3Tokenizer is Meta-Llama-3-8B-Instruct's tokenizer.json, shipped in
// the Go module github.com/daulet/tokenizers@v1.24.0 (go mod download it).
func llama3Tokenizer(tb testing.TB) string {
	tb.Helper()
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			tb.Skipf("go env GOMODCACHE: %v", err)
		}
		cache = strings.TrimSpace(string(out))
	}
	p := filepath.Join(cache, "github.com", "daulet", "tokenizers@v1.24.0", "test", "data", "Meta-Llama-3-8B-Instruct.json")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MARIN_REQUIRE_ORACLE_FILES") == "1" {
			tb.Fatalf("Llama 3 tokenizer: %v", err)
		}
		tb.Skipf("Llama 3 tokenizer not in the module cache (go mod download github.com/daulet/tokenizers@v1.24.0): %v", err)
	}
	return p
}

// BenchmarkTokenize measures the tokenize op end to end (read gzip JSON
// lines, render, tokenize with Llama 3's tokenizer, write and checksum the
// cache) on generated conversations: 4 shards of 1,000, about 3M tokens of
// text made to defeat the tokenizer's word cache (millions of distinct
// made-up words, numbers, punctuation, some accents and CJK).
//
//	go test ./backends/tokens/tokenize -run '^$' -bench Tokenize -benchtime 3x
func BenchmarkTokenize(b *testing.B) {
	tok := llama3Tokenizer(b)
	in := b.TempDir()
	r := newRand()
	for s := range 4 {
		writeShard(b, in, fmt.Sprintf("default/train/shard_%05d.jsonl.gz", s), rowsOf(variedDocs(r, fmt.Sprint(s), 1000)))
	}
	tmpl, err := os.ReadFile("../chat/testdata/templates/llama3_generation.jinja")
	if err != nil {
		b.Fatal(err)
	}
	hf := chat.DefaultOptions()
	hf.Template = string(tmpl)
	cases := []struct {
		name    string
		format  chat.Options
		workers int
	}{
		{"llama3_instruct/all_cores", llama3Options(), 0},
		{"llama3_instruct/1_core", llama3Options(), 1},
		{"hf_template/all_cores", hf, 0},
	}
	for _, c := range cases {
		raw, _ := json.Marshal(c.format)
		b.Run(c.name, func(b *testing.B) {
			var tokens int64
			var secs float64
			for b.Loop() {
				j := &Job{Config: Config{Input: in, Tokenizer: tok, Format: raw}, Out: b.TempDir(), Workers: c.workers}
				if err := j.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				tokens += j.Stats.NewTokens
				secs += j.Stats.Elapsed.Seconds()
			}
			b.ReportMetric(float64(tokens)/secs, "tokens/s")
			b.ReportMetric(float64(tokens)/float64(b.N), "tokens/op")
		})
	}
}

var syllables = strings.Fields("ka ri to mo ne sa lu vi de po ra ten quo ste bra ny ol fi gu cha mer lin dor ex ab is un re pre con tra ment tion ly ing ous ble ful ize ward ish ace ich zu ber haus ço é 東 京 语 言")

// variedText writes n words: mostly made-up ones, some common, with
// numbers, punctuation, capitals and line breaks.
func variedText(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			if r.IntN(40) == 0 {
				b.WriteString("\n")
			} else {
				b.WriteByte(' ')
			}
		}
		switch k := r.IntN(20); {
		case k < 6:
			b.WriteString(words[r.IntN(len(words))])
		case k == 6:
			fmt.Fprintf(&b, "%d", r.IntN(100000))
		default:
			w := ""
			for range 1 + r.IntN(4) {
				w += syllables[r.IntN(len(syllables))]
			}
			if r.IntN(8) == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			b.WriteString(w)
		}
		if r.IntN(12) == 0 {
			b.WriteString([]string{".", ",", "?", "!", ":", ";", ")"}[r.IntN(7)])
		}
	}
	return b.String()
}

func variedDocs(r *rand.Rand, prefix string, n int) []doc {
	out := make([]doc, n)
	for i := range out {
		d := doc{ID: fmt.Sprintf("%s-%d", prefix, i)}
		if r.IntN(3) == 0 {
			d.Messages = append(d.Messages, chat.Message{Role: "system", Content: variedText(r, 20)})
		}
		for range 1 + r.IntN(3) {
			d.Messages = append(d.Messages, chat.Message{Role: "user", Content: variedText(r, 10+r.IntN(150))},
				chat.Message{Role: "assistant", Content: variedText(r, 20+r.IntN(400))})
		}
		out[i] = d
	}
	return out
}
