// Package tasks makes small synthetic instruction datasets with held-out
// questions, so a model trained from scratch on a laptop CPU in minutes
// can show what fine-tuning does (experiments/quickstart.star):
//
//   - add:     "23+58"         → "81"     (two numbers below 100)
//   - reverse: "reverse stone" → "enots"  (3–6 lowercase letters)
//   - upper:   "upper stone"   → "STONE"
//
// A pretraining document is several questions and answers in their text
// form, stored as user/assistant messages that a text template renders as
// plain lines ("23+58=81\nreverse(stone)=enots\n"); a fine-tuning
// conversation is one question ("reverse stone") and its answer, rendered
// with a chat format. Test questions never appear in either training set.
//
// The op "tasks/generate" writes them in the documents format
// (plugins/documents):
//
//	{out}/pretrain/train/shard_00000.jsonl.gz   documents of several questions and answers
//	{out}/sft/train/shard_00000.jsonl.gz        [user question, assistant answer]
//	{out}/sft/test/shard_00000.jsonl.gz         held-out questions, same shape
//	{out}/stats.json                            rows by split (the documents format's)
//
// TokenizerFiles is the byte-level tokenizer the quickstart ships.
package tasks

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// Names of the tasks.
const (
	Add     = "add"
	Reverse = "reverse"
	Upper   = "upper"
)

// AllTasks lists the task names.
var AllTasks = []string{Add, Reverse, Upper}

// Example is one question and its answer.
type Example struct {
	Task     string
	Question string // the user's message
	Answer   string // the assistant's exact answer
	key      string // identifies the question across surface forms
}

// TextQuestion is the question as pretraining text writes it: "23+58",
// "reverse(stone)".
func (e Example) TextQuestion() string {
	if e.Task == Add {
		return e.key
	}
	return e.Task + "(" + e.key + ")"
}

// Text is the example as a line of pretraining text ("23+58=81",
// "reverse(stone)=enots").
func (e Example) Text() string { return e.TextQuestion() + "=" + e.Answer }

// Spec says what to generate.
type Spec struct {
	Seed  uint64
	Tasks []string
	// Pretrain is the number of pretraining documents, each LinesPerDoc
	// lines of text.
	Pretrain    int
	LinesPerDoc int
	Train       int // fine-tuning conversations
	Test        int // held-out conversations
}

// Validate checks the spec.
func (s Spec) Validate() error {
	if len(s.Tasks) == 0 {
		return fmt.Errorf("tasks: no tasks named (known: %s)", strings.Join(AllTasks, ", "))
	}
	for _, t := range s.Tasks {
		switch t {
		case Add, Reverse, Upper:
		default:
			return fmt.Errorf("tasks: unknown task %q (known: %s)", t, strings.Join(AllTasks, ", "))
		}
	}
	if s.Pretrain < 0 || s.Train < 0 || s.Test <= 0 || s.LinesPerDoc < 0 || (s.Pretrain > 0 && s.LinesPerDoc == 0) {
		return fmt.Errorf("tasks: counts must be non-negative, test positive and lines_per_document positive with pretraining (got %+v)", s)
	}
	if s.Test > 2000 {
		return fmt.Errorf("tasks: %d test questions; at most 2000 are held out", s.Test)
	}
	return nil
}

// Sets are the generated data.
type Sets struct {
	Pretrain [][]Example // documents of LinesPerDoc examples
	Train    []Example
	Test     []Example
}

func draw(r *rand.Rand, task string) Example {
	switch task {
	case Add:
		a, b := r.IntN(100), r.IntN(100)
		k := fmt.Sprintf("%d+%d", a, b)
		return Example{Task: Add, Question: k, Answer: fmt.Sprint(a + b), key: k}
	default:
		n := 3 + r.IntN(4)
		w := make([]byte, n)
		for i := range w {
			w[i] = byte('a' + r.IntN(26))
		}
		word := string(w)
		ans := ""
		if task == Reverse {
			rv := make([]byte, n)
			for i := range w {
				rv[n-1-i] = w[i]
			}
			ans = string(rv)
		} else {
			ans = strings.ToUpper(word)
		}
		return Example{Task: task, Question: task + " " + word, Answer: ans, key: word}
	}
}

// Generate makes the sets, deterministically from the seed. Test questions
// come first, balanced over the tasks, and are excluded from both training
// sets.
func Generate(s Spec) (*Sets, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(s.Seed, 0x7461736b73))
	tasks := append([]string(nil), s.Tasks...)
	sort.Strings(tasks)
	held := map[string]bool{}
	id := func(e Example) string { return e.Task + "\x00" + e.key }
	out := &Sets{}
	for i := 0; len(out.Test) < s.Test; i++ {
		e := draw(r, tasks[len(out.Test)%len(tasks)])
		if held[id(e)] {
			continue
		}
		held[id(e)] = true
		out.Test = append(out.Test, e)
	}
	fresh := func() Example {
		for {
			e := draw(r, tasks[r.IntN(len(tasks))])
			if !held[id(e)] {
				return e
			}
		}
	}
	for i := 0; i < s.Train; i++ {
		out.Train = append(out.Train, fresh())
	}
	for i := 0; i < s.Pretrain; i++ {
		doc := make([]Example, s.LinesPerDoc)
		for j := range doc {
			doc[j] = fresh()
		}
		out.Pretrain = append(out.Pretrain, doc)
	}
	return out, nil
}
