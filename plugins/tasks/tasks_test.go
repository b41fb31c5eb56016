package tasks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

func TestHeldOutQuestionsNeverAppearInTraining(t *testing.T) {
	s := Spec{Seed: 3, Tasks: AllTasks, Pretrain: 300, LinesPerDoc: 8, Train: 2000, Test: 150}
	sets, err := Generate(s)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Generate(s)
	if len(sets.Test) != 150 || len(sets.Train) != 2000 || len(sets.Pretrain) != 300 {
		t.Fatalf("sizes %d %d %d", len(sets.Test), len(sets.Train), len(sets.Pretrain))
	}
	byTask := map[string]int{}
	held := map[string]bool{}
	for i, e := range sets.Test {
		byTask[e.Task]++
		held[e.Question] = true
		if again.Test[i] != e {
			t.Fatal("not deterministic")
		}
	}
	if byTask[Add] != 50 || byTask[Reverse] != 50 || byTask[Upper] != 50 {
		t.Errorf("test questions by task %v", byTask)
	}
	for _, e := range sets.Train {
		if held[e.Question] {
			t.Errorf("held-out question %q is in the training conversations", e.Question)
		}
	}
	for _, d := range sets.Pretrain {
		if len(d) != 8 {
			t.Fatalf("pretraining document of %d examples", len(d))
		}
		for _, e := range d {
			if held[e.Question] {
				t.Errorf("held-out question %q is in the pretraining text", e.Question)
			}
		}
	}
	for _, e := range sets.Test {
		switch e.Task {
		case Add:
			if e.Text() != e.Question+"="+e.Answer || e.TextQuestion() != e.Question {
				t.Errorf("%+v", e)
			}
		case Reverse:
			w := strings.TrimPrefix(e.Question, "reverse ")
			if len(w) != len(e.Answer) || w[0] != e.Answer[len(w)-1] || e.Text() != "reverse("+w+")="+e.Answer {
				t.Errorf("%+v", e)
			}
		case Upper:
			if strings.ToUpper(strings.TrimPrefix(e.Question, "upper ")) != e.Answer {
				t.Errorf("%+v", e)
			}
		}
	}
	if _, err := Generate(Spec{Tasks: []string{"divide"}, Test: 1}); err == nil {
		t.Error("unknown task accepted")
	}
}

func TestWriteDocuments(t *testing.T) {
	sets, _ := Generate(Spec{Seed: 1, Tasks: AllTasks, Pretrain: 5, LinesPerDoc: 2, Train: 7, Test: 3})
	out := t.TempDir()
	if err := Write(context.Background(), "file://"+out, sets, nopReporter{}); err != nil {
		t.Fatal(err)
	}
	for split, n := range map[string]int{"pretrain/train": 5, "sft/train": 7, "sft/test": 3} {
		f, err := os.Open(filepath.Join(out, split, "shard_00000.jsonl.gz"))
		if err != nil {
			t.Fatal(err)
		}
		gz, _ := gzip.NewReader(f)
		raw, _ := io.ReadAll(gz)
		f.Close()
		lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
		if len(lines) != n {
			t.Errorf("%s: %d rows, want %d", split, len(lines), n)
		}
		var row struct {
			ID       string `json:"id"`
			Messages []struct{ Role, Content string }
		}
		if err := json.Unmarshal(lines[0], &row); err != nil || row.ID == "" || len(row.Messages) == 0 {
			t.Errorf("%s: row %s: %v", split, lines[0], err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "stats.json")); err != nil {
		t.Error(err)
	}
}

type nopReporter struct{}

func (nopReporter) Progress(done, total float64, unit, msg string) {}
func (nopReporter) Log(level, msg string, kv ...string)            {}

// The committed quickstart tokenizer is what TokenizerFiles makes, and it
// encodes every byte as itself.
func TestCommittedTokenizerIsUpToDate(t *testing.T) {
	tj, cj, sm, err := TokenizerFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "experiments", "quickstart", "tokenizer")
	for name, want := range map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": cj, "special_tokens_map.json": sm} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale or missing (%v): go run ./plugins/tasks/gentokenizer experiments/quickstart/tokenizer", name, err)
		}
	}
	tok, err := tokenizer.FromBytes(tj)
	if err != nil {
		t.Fatal(err)
	}
	text := "23+58=81\nreverse(stone)=enots Ünïcode\t!"
	ids := tok.Encode(text, tokenizer.EncodeOptions{AddSpecialTokens: true, SplitSpecial: true})
	if len(ids) != len(text) {
		t.Fatalf("%d ids for %d bytes", len(ids), len(text))
	}
	for i, id := range ids {
		if id != uint32(text[i]) {
			t.Fatalf("byte %d (%q) → id %d", i, text[i], id)
		}
	}
	if got := tok.Decode(ids, false); got != text {
		t.Errorf("decode %q", got)
	}
	ids = tok.Encode("<|im_start|>x<|im_end|><|endoftext|>", tokenizer.EncodeOptions{SplitSpecial: true})
	if len(ids) != 4 || ids[0] != 257 || ids[2] != 258 || ids[3] != 256 {
		t.Errorf("special tokens: %v", ids)
	}
}
