package eval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// Model is a model to evaluate: its parameters, tokenizer and the chat
// format it was trained with (marin.json), if any.
type Model struct {
	Dir    string
	Params *llama.Params
	Tok    *tokenizer.Tokenizer
	Vocab  *chat.Vocab
	// TrainedFormat is marin.json's chat_format, or nil.
	TrainedFormat json.RawMessage
}

// marinInfo is the part of an hf/ export's marin.json read here.
type marinInfo struct {
	ChatFormat json.RawMessage `json:"chat_format,omitempty"`
}

// LoadModel resolves name (a training step's output, an hf/ export, a
// checkpoint directory or a hub id; see weights.Resolve) and reads the
// weights and the tokenizer beside them (or in tokenizerDir).
func LoadModel(ctx context.Context, name, tokenizerDir string, logf weights.Logf) (*Model, error) {
	dir, err := weights.Resolve(ctx, name, logf)
	if err != nil {
		return nil, err
	}
	params, _, err := weights.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Params: params}
	td := dir
	if tokenizerDir != "" {
		if td, err = weights.ResolveTokenizer(ctx, tokenizerDir, logf); err != nil {
			return nil, err
		}
	}
	tokJSON, err := os.ReadFile(filepath.Join(td, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("model %s: no tokenizer.json beside it (give tokenizer=): %w", dir, err)
	}
	if m.Tok, err = tokenizer.FromBytes(tokJSON); err != nil {
		return nil, fmt.Errorf("model %s: tokenizer.json: %w", dir, err)
	}
	if m.Tok.VocabSize() > params.Config.VocabSize {
		return nil, fmt.Errorf("model %s: the tokenizer has %d tokens, the model's vocab_size is %d", dir, m.Tok.VocabSize(), params.Config.VocabSize)
	}
	cfgJSON, err := os.ReadFile(filepath.Join(td, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	if m.Vocab, err = chat.NewVocab(m.Tok, tokJSON, cfgJSON); err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "marin.json"))
	switch {
	case err == nil:
		var info marinInfo
		if err := json.Unmarshal(raw, &info); err != nil {
			return nil, fmt.Errorf("model %s: marin.json: %w", dir, err)
		}
		m.TrainedFormat = info.ChatFormat
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	return m, nil
}

// ChatFormat returns the chat format to apply: the given format object
// when set, else the one the model was trained with, else the tokenizer's
// chat template.
func (m *Model) ChatFormat(given json.RawMessage) (chat.Format, error) {
	var o chat.Options
	var err error
	switch {
	case len(given) > 0 && string(given) != "null":
		o, err = chat.ParseOptions(given)
	case len(m.TrainedFormat) > 0:
		o, err = chat.ParseOptions(m.TrainedFormat)
	case m.Vocab.ChatTemplate != "":
		o = chat.DefaultOptions()
	default:
		return nil, fmt.Errorf("model %s: apply_chat_template is set but no chat format was given, none is recorded in marin.json and the tokenizer has no chat template", m.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("chat format: %w", err)
	}
	if o.Name == chat.NamePlugin {
		return nil, fmt.Errorf("chat format plugins are not supported in evaluation; use a built-in format or a template")
	}
	return chat.New(o, m.Vocab)
}
