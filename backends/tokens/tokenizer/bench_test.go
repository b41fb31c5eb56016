package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchDocs builds about size bytes of documents, deterministically: the
// parity corpus (many scripts, emoji, code, whitespace runs) interleaved
// with English-like prose, cut into documents of 1–8 KB.
func benchDocs(t testing.TB, size int) []string {
	corpus := loadCorpus(t)
	prose := strings.Fields(`the of and to in a is that for it as was with be by on not he I this are or his from at
		which but have an they you were her she there been one all we their has would when if will more no out do so can
		who about up said what its into than them only some could new time these two may first then do any like my now
		over such our man me even most made after also did many before must through back years where much your way well
		down should because each just those people how too little state good very make world still own see men work long
		get here between both life being under never day same another know while last might us great old year off come
		since against go came right used take three model tokens training data language learning Marin dataset loss`)
	rng := rand.New(rand.NewPCG(1, 2))
	var docs []string
	total := 0
	for total < size {
		var b strings.Builder
		n := 1024 + rng.IntN(7*1024)
		for b.Len() < n {
			if rng.IntN(4) == 0 {
				b.WriteString(corpus[rng.IntN(len(corpus))])
				b.WriteByte(' ')
				continue
			}
			words := 8 + rng.IntN(20)
			for i := 0; i < words; i++ {
				w := prose[rng.IntN(len(prose))]
				if i == 0 {
					w = strings.ToUpper(w[:1]) + w[1:]
				}
				b.WriteString(w)
				if i+1 < words {
					b.WriteByte(' ')
				}
			}
			b.WriteString([]string{". ", ".\n", ", ", ".\n\n", "? ", "! "}[rng.IntN(6)])
		}
		docs = append(docs, b.String())
		total += b.Len()
	}
	return docs
}

func docBytes(docs []string) int {
	n := 0
	for _, d := range docs {
		n += len(d)
	}
	return n
}

var benchDocsOnce = sync.OnceValue(func() []string { return nil })

// BenchmarkEncode reports MB/s per family on one core (Encode in a loop)
// and on all cores (EncodeBatch).
//
//	go test -run '^$' -bench Encode -benchtime 3x ./backends/tokens/tokenizer/
func BenchmarkEncode(b *testing.B) {
	_ = benchDocsOnce
	docs := benchDocs(b, 4<<20)
	size := int64(docBytes(docs))
	for _, f := range loadFamilies(b) {
		if f.Padded {
			continue
		}
		b.Run(f.Name+"/1core", func(b *testing.B) {
			tk := loadFamily(b, f)
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, d := range docs {
					tk.Encode(d, EncodeOptions{SplitSpecial: true})
				}
			}
		})
		b.Run(f.Name+"/allcores", func(b *testing.B) {
			tk := loadFamily(b, f)
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tk.EncodeBatch(docs, EncodeOptions{SplitSpecial: true})
			}
		})
	}
}

// BenchmarkOracleComparison runs the npm oracle's encodeBatch (oracle/bench.js)
// and our EncodeBatch on the same 24 MB of documents (BPE and Unigram families) and reports both MB/s
// and their ratio. Needs node and the oracle installed (oracle/README.md).
//
//	go test -run '^$' -bench OracleComparison -benchtime 1x ./backends/tokens/tokenizer/
func BenchmarkOracleComparison(b *testing.B) {
	if _, err := exec.LookPath("node"); err != nil {
		b.Skip("node not installed")
	}
	if _, err := os.Stat(filepath.Join("oracle", "node_modules", "tokenizers")); err != nil {
		b.Skip("oracle not installed: (cd backends/tokens/tokenizer/oracle && npm ci)")
	}
	docs := benchDocs(b, 24<<20)
	size := docBytes(docs)
	dir := b.TempDir()
	docsFile := filepath.Join(dir, "docs.jsonl")
	var sb strings.Builder
	for _, d := range docs {
		line, _ := json.Marshal(d)
		sb.Write(line)
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(docsFile, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"llama3", "qwen3", "llama2", "gpt2", "albert", "t5_iso"} {
		var f family
		for _, x := range loadFamilies(b) {
			if x.Name == name {
				f = x
			}
		}
		b.Run(name, func(b *testing.B) {
			tk := loadFamily(b, f)
			out, err := exec.Command("node", filepath.Join("oracle", "bench.js"), docsFile, familyFile(b, f)).Output()
			if err != nil {
				b.Fatalf("oracle bench: %v", err)
			}
			var oracle struct {
				MBps   float64 `json:"mbps"`
				Tokens int     `json:"tokens"`
			}
			if err := json.Unmarshal(out, &oracle); err != nil {
				b.Fatalf("oracle bench output %q: %v", out, err)
			}
			tk.EncodeBatch(docs[:64], EncodeOptions{SplitSpecial: true}) // warm up like the oracle
			b.ResetTimer()
			var ours float64
			tokens := 0
			for i := 0; i < b.N; i++ {
				start := time.Now()
				ids := tk.EncodeBatch(docs, EncodeOptions{SplitSpecial: true})
				ours = float64(size) / 1e6 / time.Since(start).Seconds()
				tokens = 0
				for _, x := range ids {
					tokens += len(x)
				}
			}
			if tokens != oracle.Tokens {
				b.Errorf("token counts differ: ours %d, oracle %d", tokens, oracle.Tokens)
			}
			b.ReportMetric(ours, "ours_MB/s")
			b.ReportMetric(oracle.MBps, "oracle_MB/s")
			b.ReportMetric(ours/oracle.MBps, "x_oracle")
			b.Logf("%s: %.1f MB of text, %d tokens, %d cores: ours %.1f MB/s, oracle %.1f MB/s (%.1fx)",
				name, float64(size)/1e6, tokens, runtime.GOMAXPROCS(0), ours, oracle.MBps, ours/oracle.MBps)
		})
	}
}
