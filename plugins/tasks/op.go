package tasks

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/plugins/documents"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// OpName is the op that writes the datasets.
const OpName = "tasks/generate"

// Op is the op, for a plugin's op table. Config:
//
//	seed                 uint (default 0)
//	tasks                ["add", "reverse", "upper"] (default all)
//	pretrain_documents   documents of text (default 0)
//	lines_per_document   questions a pretraining document holds (default 8)
//	train                fine-tuning conversations
//	test                 held-out conversations
func Op() sdk.Op {
	return sdk.Op{
		Description: "write synthetic tasks (add, reverse, upper) with held-out questions as documents: pretrain text and chat train/test splits",
		Schema:      opSchema(),
		Run:         run,
	}
}

type opConfig struct {
	Seed        uint64   `json:"seed" schema:"min=0"`
	Tasks       []string `json:"tasks" doc:"which tasks (default all)"`
	Pretrain    int      `json:"pretrain_documents" schema:"min=0" doc:"documents of text"`
	LinesPerDoc *int     `json:"lines_per_document" schema:"gt=0" doc:"questions a pretraining document holds (default 8)"`
	Train       int      `json:"train" schema:"min=0" doc:"fine-tuning conversations"`
	Test        int      `json:"test" schema:"min=0" doc:"held-out conversations"`
}

func opSchema() *schema.Field {
	s := schema.MustFromStruct(opConfig{})
	s.Lookup("tasks").Elem.Enum = append([]string(nil), AllTasks...)
	return s
}

func run(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	var c opConfig
	if err := req.Decode(&c); err != nil {
		return err
	}
	spec := Spec{Seed: c.Seed, Tasks: c.Tasks, Pretrain: c.Pretrain, LinesPerDoc: 8, Train: c.Train, Test: c.Test}
	if len(spec.Tasks) == 0 {
		spec.Tasks = AllTasks
	}
	if c.LinesPerDoc != nil {
		spec.LinesPerDoc = *c.LinesPerDoc
	}
	sets, err := Generate(spec)
	if err != nil {
		return &sdk.Diagnostic{Summary: err.Error()}
	}
	return Write(ctx, req.OutputPath, sets, r)
}

// Write writes sets in the documents format under the URL out.
func Write(ctx context.Context, out string, sets *Sets, r sdk.Reporter) error {
	stats := documents.NewStats("marin synthetic tasks", "")
	write := func(sub, split string, docs []documents.Document) error {
		dir := storage.Join(storage.Join(out, sub), split)
		sp := stats.Split(sub, split)
		w := documents.NewWriter(ctx, dir, documents.WriterOptions{})
		for i := range docs {
			stats.Read(sp)
			if err := w.Write(&docs[i]); err != nil {
				w.Close()
				return fmt.Errorf("write %s: %w", dir, err)
			}
			stats.Written(sp)
		}
		res, err := w.Close()
		if err != nil {
			return fmt.Errorf("write %s: %w", dir, err)
		}
		sp.Shards = res.Shards
		return nil
	}
	conv := func(es []Example) []documents.Document {
		out := make([]documents.Document, len(es))
		for i, e := range es {
			msgs := []documents.Message{{Role: documents.RoleUser, Content: e.Question}, {Role: documents.RoleAssistant, Content: e.Answer}}
			out[i] = documents.Document{ID: documents.ID(msgs), Source: "tasks/" + e.Task, Messages: msgs, Metadata: map[string]any{"task": e.Task}}
		}
		return out
	}
	if len(sets.Pretrain) > 0 {
		docs := make([]documents.Document, len(sets.Pretrain))
		for i, doc := range sets.Pretrain {
			var msgs []documents.Message
			for _, e := range doc {
				msgs = append(msgs, documents.Message{Role: documents.RoleUser, Content: e.TextQuestion()}, documents.Message{Role: documents.RoleAssistant, Content: e.Answer})
			}
			docs[i] = documents.Document{ID: documents.ID(msgs), Source: "tasks/text", Messages: msgs, Metadata: map[string]any{}}
		}
		if err := write("pretrain", "train", docs); err != nil {
			return err
		}
	}
	if len(sets.Train) > 0 {
		if err := write("sft", "train", conv(sets.Train)); err != nil {
			return err
		}
	}
	if err := write("sft", "test", conv(sets.Test)); err != nil {
		return err
	}
	if err := stats.Write(ctx, out); err != nil {
		return err
	}
	r.Log("info", fmt.Sprintf("wrote %d pretraining documents, %d training and %d held-out conversations", len(sets.Pretrain), len(sets.Train), len(sets.Test)))
	return nil
}
