package sample

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// Model is a model ready to sample from: its parameters and tokenizer.
type Model struct {
	Dir    string
	Params *llama.Params
	Tok    *tokenizer.Tokenizer
	Vocab  *chat.Vocab
	// Info is marin.json, or nil when the directory has none.
	Info *weights.MarinInfo
}

// Load resolves name (see weights.Resolve: a directory, a training step's
// output or a hub id) and reads the model and the tokenizer beside it. A
// LoRA adapter directory gives its base model with the adapter merged
// (weights.Load), and the base's tokenizer when the adapter has none.
// tokenizerDir, when not empty, overrides where the tokenizer files are.
func Load(ctx context.Context, name, tokenizerDir string, logf weights.Logf) (*Model, error) {
	dir, err := weights.Resolve(ctx, name, logf)
	if err != nil {
		return nil, err
	}
	params, info, err := weights.Load(ctx, dir, logf)
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Params: params}
	td := dir
	if tokenizerDir != "" {
		if td, err = weights.ResolveTokenizer(ctx, tokenizerDir, logf); err != nil {
			return nil, err
		}
	} else if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil && info.Base != "" {
		td = info.Base
	}
	tokJSON, err := os.ReadFile(filepath.Join(td, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("model %s: no tokenizer beside it (give one with --tokenizer): %w", dir, err)
	}
	m.Tok, err = tokenizer.FromBytes(tokJSON)
	if err != nil {
		return nil, fmt.Errorf("model %s: tokenizer.json: %w", dir, err)
	}
	if m.Tok.VocabSize() > params.Config.VocabSize {
		return nil, fmt.Errorf("model %s: the tokenizer has %d tokens, the model's vocab_size is %d", dir, m.Tok.VocabSize(), params.Config.VocabSize)
	}
	cfgJSON, err := os.ReadFile(filepath.Join(td, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	m.Vocab, err = chat.NewVocab(m.Tok, tokJSON, cfgJSON)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	if m.Info, err = weights.ReadMarinInfo(dir); err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	return m, nil
}

// ChatOptions returns the chat format to use: the named built-in format
// when name is not empty ("hf_template" uses the tokenizer's chat
// template), else the one the model was trained with (marin.json), else the
// tokenizer's chat template.
func (m *Model) ChatOptions(name string) (chat.Options, error) {
	if name != "" {
		o := chat.DefaultOptions()
		o.Name = name
		return o, o.Validate()
	}
	if m.Info != nil && len(m.Info.ChatFormat) > 0 {
		return chat.ParseOptions(m.Info.ChatFormat)
	}
	if m.Vocab.ChatTemplate != "" {
		return chat.DefaultOptions(), nil
	}
	return chat.Options{}, fmt.Errorf("model %s: no chat format given, none recorded in %s and the tokenizer has no chat template; pass --format NAME", m.Dir, weights.MarinInfoName)
}

// EOS returns the tokenizer's end-of-sequence id, if it names one.
func (m *Model) EOS() (uint32, bool) {
	if m.Vocab.EOS == "" {
		return 0, false
	}
	return m.Tok.TokenToID(m.Vocab.EOS)
}

// Decode turns generated ids into text, dropping special tokens.
func (m *Model) Decode(ids []uint32) string { return m.Tok.Decode(ids, true) }
