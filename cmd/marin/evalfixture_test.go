package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/marin-go/marin/plugins/evaltasks"
	"github.com/marin-go/marin/plugins/hfhub/hubtest"
)

// Fake hub repos for every shipped evaluation task: the files the registry
// names (or the Hugging Face layout finds), at the pinned revision, holding
// a few rows shaped like the real dataset's (columns and types from the
// dataset cards; the content is made up).

func parquetBytes[T any](t *testing.T, rows []T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jsonlBytes(t *testing.T, rows []map[string]any) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

type mmluRow struct {
	Question string   `parquet:"question"`
	Subject  string   `parquet:"subject"`
	Choices  []string `parquet:"choices,list"`
	Answer   int64    `parquet:"answer"`
}

type mmluProRow struct {
	QuestionID  int64    `parquet:"question_id"`
	Question    string   `parquet:"question"`
	Options     []string `parquet:"options,list"`
	Answer      string   `parquet:"answer"`
	AnswerIndex int64    `parquet:"answer_index"`
	CotContent  string   `parquet:"cot_content"`
	Category    string   `parquet:"category"`
	Src         string   `parquet:"src"`
}

type bbhRow struct {
	Input  string `parquet:"input"`
	Target string `parquet:"target"`
}

type gsm8kRow struct {
	Question string `parquet:"question"`
	Answer   string `parquet:"answer"`
}

type arcChoices struct {
	Text  []string `parquet:"text,list"`
	Label []string `parquet:"label,list"`
}

type arcRow struct {
	ID        string     `parquet:"id"`
	Question  string     `parquet:"question"`
	Choices   arcChoices `parquet:"choices"`
	AnswerKey string     `parquet:"answerKey"`
}

type obqaRow struct {
	ID           string     `parquet:"id"`
	QuestionStem string     `parquet:"question_stem"`
	Choices      arcChoices `parquet:"choices"`
	AnswerKey    string     `parquet:"answerKey"`
}

type hellaswagRow struct {
	Ind           int64    `parquet:"ind"`
	ActivityLabel string   `parquet:"activity_label"`
	CtxA          string   `parquet:"ctx_a"`
	CtxB          string   `parquet:"ctx_b"`
	Ctx           string   `parquet:"ctx"`
	Endings       []string `parquet:"endings,list"`
	SourceID      string   `parquet:"source_id"`
	Split         string   `parquet:"split"`
	SplitType     string   `parquet:"split_type"`
	Label         string   `parquet:"label"`
}

type piqaRow struct {
	Goal  string `parquet:"goal"`
	Sol1  string `parquet:"sol1"`
	Sol2  string `parquet:"sol2"`
	Label int64  `parquet:"label"`
}

type winograndeRow struct {
	Sentence string `parquet:"sentence"`
	Option1  string `parquet:"option1"`
	Option2  string `parquet:"option2"`
	Answer   string `parquet:"answer"`
}

type boolqRow struct {
	Question string `parquet:"question"`
	Passage  string `parquet:"passage"`
	Idx      int64  `parquet:"idx"`
	Label    int64  `parquet:"label"`
}

type humanevalRow struct {
	TaskID            string `parquet:"task_id"`
	Prompt            string `parquet:"prompt"`
	CanonicalSolution string `parquet:"canonical_solution"`
	Test              string `parquet:"test"`
	EntryPoint        string `parquet:"entry_point"`
}

type wikitextRow struct {
	Page string `parquet:"page"`
}

var words = strings.Fields("apple river stone cloud seven blue quick lamp north garden window silver table orange paper winter")

func word(i int) string { return words[i%len(words)] }

// fixtureRepos returns the fake hub's repos: one per (dataset, revision) of
// the registry, plus a wikitext-shaped one for a script's rolling task.
func fixtureRepos(t *testing.T) []*hubtest.Repo {
	t.Helper()
	c, err := evaltasks.Registry()
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ id, rev string }
	repos := map[key]*hubtest.Repo{}
	repo := func(id, rev string) *hubtest.Repo {
		k := key{id, rev}
		if r := repos[k]; r != nil {
			return r
		}
		commit := rev
		var branches []string
		if len(rev) != 40 {
			sum := sha1.Sum([]byte(id + rev))
			commit, branches = hex.EncodeToString(sum[:]), []string{rev}
		}
		r := &hubtest.Repo{Type: "dataset", ID: id, Commit: commit, Branches: branches, Date: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
			Files: map[string][]byte{}, LFS: map[string]bool{}}
		repos[k] = r
		return r
	}
	add := func(r *hubtest.Repo, path string, data []byte) {
		r.Files[path] = data
		if strings.HasSuffix(path, ".parquet") {
			r.LFS[path] = true
		}
	}
	for _, name := range c.TopLevel() {
		s, err := c.Suite(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range s.Tasks {
			r := repo(task.DatasetPath, task.Revision())
			file := func(split, fallback string) string {
				if task.DatasetKwargs != nil {
					if g, ok := task.DatasetKwargs.DataFiles[split]; ok {
						p := strings.ReplaceAll(g[0], "{dataset_name}", task.DatasetName)
						return strings.Replace(p, "*", "00000-of-00001", 1)
					}
				}
				return fallback
			}
			switch task.DatasetPath {
			case "cais/mmlu":
				for _, split := range []string{"test", "dev"} {
					var rows []mmluRow
					for i := 0; i < 5; i++ {
						rows = append(rows, mmluRow{Question: fmt.Sprintf("  Which %s is %s?  ", word(i), word(i+3)), Subject: task.DatasetName,
							Choices: []string{word(i), word(i + 1), word(i + 2), word(i + 5)}, Answer: int64(i % 4)})
					}
					add(r, file(split, ""), parquetBytes(t, rows))
				}
			case "TIGER-Lab/MMLU-Pro":
				for _, split := range []string{"test", "validation"} {
					var rows []mmluProRow
					for i := 0; i < 6; i++ {
						opts := []string{word(i), word(i + 1), word(i + 2), word(i + 3), word(i + 4), word(i + 6), word(i + 7)}
						rows = append(rows, mmluProRow{QuestionID: int64(i), Question: "What is " + word(i) + "?", Options: opts,
							Answer: string(rune('A' + i%7)), AnswerIndex: int64(i % 7), CotContent: "", Category: "math", Src: "made-up"})
					}
					add(r, file(split, ""), parquetBytes(t, rows))
				}
			case "SaylorTwift/bbh":
				// leaderboard_bbh (multiple choice) and bbh_cot_fewshot
				// (generation) read the same subsets: the first to come
				// writes a subset's rows, targets among its choices.
				path := task.DatasetName + "/test-00000-of-00001.parquet"
				if _, done := r.Files[path]; done {
					break
				}
				var rows []bbhRow
				choices, _ := task.DocToChoice.([]any)
				for i := 0; i < 3; i++ {
					target := word(i)
					if len(choices) > 0 {
						target = choices[i%len(choices)].(string)
					}
					rows = append(rows, bbhRow{Input: "Consider " + word(i) + " and " + word(i+2) + ". Options: ...", Target: target})
				}
				add(r, path, parquetBytes(t, rows))
			case "Idavidrein/gpqa":
				var b strings.Builder
				b.WriteString("Pre-Revision Question,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3,Record ID,High-level domain\n")
				for i := 0; i < 3; i++ {
					fmt.Fprintf(&b, "\"old %d\",\"What binds %s, and why?\",%s,%s [title] x,%s,%s,rec%d,Physics\n", i, word(i), word(i), word(i+1), word(i+2), word(i+3), i)
				}
				add(r, file("train", ""), []byte(b.String()))
			case "TAUR-Lab/MuSR":
				split := task.TestSplit
				var b strings.Builder
				b.WriteString("narrative,question,choices,answer_index,answer_choice\n")
				for i := 0; i < 3; i++ {
					fmt.Fprintf(&b, "\"A story about %s.\nIt ends.\",\"Who did it?\",\"['%s', '%s', \"\"%s's\"\"]\",%d,%s\n", word(i), word(i), word(i+1), word(i+2), i%2, word(i+i%2))
				}
				add(r, file(split, ""), []byte(b.String()))
			case "openai/gsm8k":
				var rows []gsm8kRow
				for i := 0; i < 3; i++ {
					rows = append(rows, gsm8kRow{Question: fmt.Sprintf("Ann has %d %ss and gets %d more. How many?", i+2, word(i), i+3),
						Answer: fmt.Sprintf("She has %d + %d = <<%d+%d=%d>>%d.\n#### %d", i+2, i+3, i+2, i+3, 2*i+5, 2*i+5, 2*i+5)})
				}
				add(r, file("test", ""), parquetBytes(t, rows))
			case "google/IFEval", "wis-k/instruction-following-eval":
				rows := []map[string]any{
					{"key": 1000, "prompt": "Write a haiku about " + word(1) + " without commas.", "instruction_id_list": []any{"punctuation:no_comma"}, "kwargs": []any{map[string]any{}}},
					{"key": 1001, "prompt": "Answer in at least 3 sentences and end with 'Is there anything else?'", "instruction_id_list": []any{"length_constraints:number_sentences", "startend:end_checker"},
						"kwargs": []any{map[string]any{"relation": "at least", "num_sentences": 3}, map[string]any{"end_phrase": "Is there anything else?"}}},
				}
				add(r, file("train", "ifeval_input_data.jsonl"), jsonlBytes(t, rows)) // wis-k: no split in the name
			case "allenai/ai2_arc":
				for _, split := range []string{"train", "validation", "test"} {
					var rows []arcRow
					for i := 0; i < 12; i++ {
						rows = append(rows, arcRow{ID: fmt.Sprintf("%s-%d", split, i), Question: "Which is " + word(i) + "?",
							Choices: arcChoices{Text: []string{word(i), word(i + 1), word(i + 2), word(i + 3)}, Label: []string{"A", "B", "C", "D"}}, AnswerKey: string(rune('A' + i%4))})
					}
					add(r, file(split, ""), parquetBytes(t, rows))
				}
			case "allenai/openbookqa":
				for _, split := range []string{"train", "validation", "test"} {
					var rows []obqaRow
					for i := 0; i < 4; i++ {
						rows = append(rows, obqaRow{ID: fmt.Sprint(i), QuestionStem: "A " + word(i) + " is used to",
							Choices: arcChoices{Text: []string{word(i), word(i + 1), word(i + 2), word(i + 3)}, Label: []string{"A", "B", "C", "D"}}, AnswerKey: " " + string(rune('A'+i%4))})
					}
					add(r, file(split, ""), parquetBytes(t, rows))
				}
			case "Rowan/hellaswag":
				for _, split := range []string{"train", "validation"} {
					var rows []hellaswagRow
					for i := 0; i < 12; i++ {
						rows = append(rows, hellaswagRow{Ind: int64(i), ActivityLabel: "Cleaning " + word(i), CtxA: "A man picks up a " + word(i) + ".",
							CtxB: "THEN he", Ctx: "", Endings: []string{"washes it [title] well.", "drops it.", "sings.", "leaves [step] now."},
							SourceID: "wikihow~1", Split: split, SplitType: "indomain", Label: fmt.Sprint(i % 4)})
					}
					add(r, file(split, ""), parquetBytes(t, rows))
				}
			case "baber/piqa":
				for _, split := range []string{"train", "validation"} {
					var rows []piqaRow
					for i := 0; i < 12; i++ {
						rows = append(rows, piqaRow{Goal: "To fix a " + word(i), Sol1: "use " + word(i+1), Sol2: "use " + word(i+2), Label: int64(i % 2)})
					}
					add(r, "piqa_"+split+".parquet", parquetBytes(t, rows))
				}
			case "allenai/winogrande":
				for _, split := range []string{"train", "validation"} {
					var rows []winograndeRow
					for i := 0; i < 4; i++ {
						rows = append(rows, winograndeRow{Sentence: "The " + word(i) + " did not fit in the " + word(i+1) + " because _ was too big.",
							Option1: word(i), Option2: word(i + 1), Answer: fmt.Sprint(1 + i%2)})
					}
					add(r, file(split, ""), parquetBytes(t, rows))
				}
			case "aps/super_glue":
				for _, split := range []string{"train", "validation"} {
					var rows []boolqRow
					for i := 0; i < 12; i++ {
						rows = append(rows, boolqRow{Question: "is the " + word(i) + " " + word(i+4), Passage: "The " + word(i) + " is " + word(i+4) + ".", Idx: int64(i), Label: int64(i % 2)})
					}
					add(r, file(split, ""), parquetBytes(t, rows))
				}
			case "EleutherAI/lambada_openai":
				var rows []map[string]any
				for i := 0; i < 3; i++ {
					rows = append(rows, map[string]any{"text": "She opened the " + word(i) + " and saw the " + word(i+5)})
				}
				add(r, file("test", ""), jsonlBytes(t, rows))
			case "openai/openai_humaneval":
				rows := []humanevalRow{
					{TaskID: "HumanEval/0", Prompt: "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", CanonicalSolution: "    return a + b\n",
						Test: "def check(candidate):\n    assert candidate(1, 2) == 3\n", EntryPoint: "add"},
				}
				add(r, file("test", ""), parquetBytes(t, rows))
			default:
				t.Fatalf("no fixture for dataset %s (task %s)", task.DatasetPath, task.Task)
			}
		}
	}
	wt := repo("EleutherAI/wikitext_document_level", "647234772b9554e208af6c826f23b99e3cac88c8")
	add(wt, "wikitext-2-raw-v1/test-00000-of-00001.parquet", parquetBytes(t, []wikitextRow{
		{Page: " = Stone = \n The " + strings.Repeat(word(3)+" ", 40) + ".\n"},
		{Page: " = River = \n A " + strings.Repeat(word(5)+" ", 10)},
	}))
	var out []*hubtest.Repo
	for _, r := range repos {
		out = append(out, r)
	}
	return out
}
