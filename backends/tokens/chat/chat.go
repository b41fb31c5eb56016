// Package chat turns conversations into token ids and a loss mask.
//
// A Format renders a conversation (messages with a role and content) into
// segments: pieces of text and control tokens, each with a flag saying
// whether the model is trained on it. An Encoder then tokenizes the segments
// into ids and a mask (1 = the token is a training target).
//
// Two rules hold for every format:
//
//   - Message content is text. A user who types "<|eot_id|>" gets the tokens
//     of that text, never the control token: content is encoded with
//     SplitSpecial=false. Only the format itself emits control tokens, as
//     Special segments or as special-token strings in its own Literal text.
//   - Token ids are those of Hugging Face `tokenizers` encoding the rendered
//     string. Text between two control tokens is encoded in one call, as
//     Hugging Face does after splitting out added tokens, and the mask is cut
//     from that encoding: a token that holds any trainable character is
//     trainable (what transformers' return_assistant_tokens_mask does with
//     character offsets).
//
// The formats (Options.Name): llama3_instruct (Marin's Llama 3 template,
// training the <|eot_id|> that ends each assistant turn), chatml (Qwen),
// llama2 ([INST]), mistral, alpaca, and hf_template: any Hugging Face chat
// template (Jinja, from tokenizer_config.json or Options.Template) whose
// {% generation %} … {% endgeneration %} blocks mark the trainable text.
// Format plugins (name "plugin") are rendered by another process; the
// tokenize op wraps them as a Format (see backends/tokens/tokenize).
//
// A Prompter renders a conversation up to where the assistant's reply
// begins (the generation prompt) and knows the tokens that end that reply:
// what marin generate and chat and the evaluations sample with.
package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/plugins/schema"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Conversation is one document to render.
type Conversation struct {
	ID       string    // the document id, for messages and skip examples
	Messages []Message // in order
}

// Segment is a piece of a rendered conversation: either text or one control
// token (Special), never both.
type Segment struct {
	// Text is tokenized as text: it never yields a control token unless
	// Literal is set.
	Text string
	// Special is a control token by its string, e.g. "<|eot_id|>"; the
	// tokenizer must know it.
	Special string
	// Literal marks text written by the format itself (never message
	// content): special-token strings inside it become control tokens, as
	// they would in a Hugging Face template's output.
	Literal bool
	// Trainable: the tokens of this segment are training targets.
	Trainable bool
}

// Rendered is a conversation rendered by a Format, or the reason it was
// skipped.
type Rendered struct {
	Segments []Segment
	// Skip, when set, is a short reason code (e.g. "render_error",
	// "no_messages"); the conversation is counted as skipped with it.
	Skip string
	// SkipDetail explains one skip for a person, e.g. the template's
	// raise_exception message.
	SkipDetail string
}

// Format renders conversations. Implementations are safe for concurrent use.
type Format interface {
	// Name identifies the format in manifests and messages.
	Name() string
	// Render renders each conversation. A conversation the format cannot
	// render comes back with Skip set; an error fails the whole job (a broken
	// template or plugin, a cancelled context).
	Render(ctx context.Context, convs []Conversation) ([]Rendered, error)
}

// Tokenizer is what formats and the Encoder need from a tokenizer;
// *tokenizer.Tokenizer implements it.
type Tokenizer interface {
	Encode(text string, o tokenizer.EncodeOptions) []uint32
	TokenToID(tok string) (uint32, bool)
}

// Names of the built-in formats, as ChatFormat(name=…) writes them.
const (
	NameLlama3Instruct = "llama3_instruct"
	NameChatML         = "chatml"
	NameLlama2         = "llama2"
	NameMistral        = "mistral"
	NameAlpaca         = "alpaca"
	NameHFTemplate     = "hf_template"
	NamePlugin         = "plugin"
)

// Options is the step config's "format" object (starlib's ChatFormat).
type Options struct {
	Name           string `json:"name" schema:"default=hf_template" doc:"a built-in format, hf_template (the tokenizer's chat template) or plugin"`
	Template       string `json:"template,omitempty" doc:"a Jinja chat template overriding the tokenizer's (with hf_template)"`
	Plugin         string `json:"plugin,omitempty" doc:"with name \"plugin\": the format plugin that renders"`
	MessagesField  string `json:"messages_field" schema:"nonempty,default=messages" doc:"the documents' field holding the conversation"`
	MaskUserTurns  bool   `json:"mask_user_turns" schema:"default=true" doc:"train only on assistant turns"`
	TrainEndOfTurn bool   `json:"train_end_of_turn" schema:"default=true" doc:"train the token that ends each assistant turn"`
	Pack           bool   `json:"pack" schema:"default=true" doc:"pack documents into sequences (false pads); read by the data loader"`
	SystemPrompt   string `json:"system_prompt,omitempty" doc:"a default system prompt for conversations without one"`
}

// Names lists the formats: the built-ins, hf_template and plugin.
var Names = []string{NameLlama3Instruct, NameChatML, NameLlama2, NameMistral, NameAlpaca, NameHFTemplate, NamePlugin}

// OptionsSchema is the config schema of a format object (ChatFormat), for
// the schemas of the ops that take one. Each call returns a new copy.
func OptionsSchema() *schema.Field {
	s := schema.MustFromStruct(Options{})
	s.Lookup("name").Enum = append([]string(nil), Names...)
	for _, f := range s.Fields {
		if f.Type == schema.String {
			f.Nullable = true // ChatFormat leaves unset fields None
		}
	}
	// The combinations (plugin= only with name "plugin", template= only with
	// hf_template) are Options.Validate's, which the tokenize op's Plan runs.
	return s
}

// DefaultOptions are ChatFormat()'s defaults.
func DefaultOptions() Options {
	return Options{Name: NameHFTemplate, MessagesField: "messages", MaskUserTurns: true, TrainEndOfTurn: true, Pack: true}
}

// ParseOptions decodes a format config object over the defaults; JSON nulls
// (unset optional fields) keep the defaults.
func ParseOptions(raw []byte) (Options, error) {
	o := DefaultOptions()
	if len(strings.TrimSpace(string(raw))) == 0 || string(raw) == "null" {
		return o, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return o, fmt.Errorf("chat format: %w", err)
	}
	known := map[string]bool{"name": true, "template": true, "plugin": true, "messages_field": true,
		"mask_user_turns": true, "train_end_of_turn": true, "pack": true, "system_prompt": true}
	for k, v := range m {
		if !known[k] {
			return o, fmt.Errorf("chat format: unknown field %q", k)
		}
		if string(v) == "null" {
			delete(m, k)
		}
	}
	clean, _ := json.Marshal(m)
	if err := json.Unmarshal(clean, &o); err != nil {
		return o, fmt.Errorf("chat format: %w", err)
	}
	return o, o.Validate()
}

// Validate checks the combination of fields.
func (o Options) Validate() error {
	switch o.Name {
	case NameLlama3Instruct, NameChatML, NameLlama2, NameMistral, NameAlpaca, NameHFTemplate:
		if o.Plugin != "" {
			return fmt.Errorf("chat format %q: plugin=%q is only used with name=\"plugin\"", o.Name, o.Plugin)
		}
	case NamePlugin:
		if o.Plugin == "" {
			return fmt.Errorf("chat format name=\"plugin\" needs plugin=\"NAME\"")
		}
	default:
		return fmt.Errorf("unknown chat format %q (known: %s)", o.Name, strings.Join(Names, ", "))
	}
	if o.Template != "" && o.Name != NameHFTemplate {
		return fmt.Errorf("chat format %q: template= is only used with name=\"hf_template\"", o.Name)
	}
	if o.MessagesField == "" {
		return fmt.Errorf("chat format: messages_field is empty")
	}
	return nil
}

// New builds a built-in format or an hf_template format for the tokenizer
// described by v. Plugin formats are built by their caller.
func New(o Options, v *Vocab) (Format, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	switch o.Name {
	case NameLlama3Instruct:
		return newLlama3(o, v)
	case NameChatML:
		return newChatML(o, v)
	case NameLlama2:
		return newLlama2(o, v)
	case NameMistral:
		return newMistral(o, v)
	case NameAlpaca:
		return newAlpaca(o, v)
	case NameHFTemplate:
		src := o.Template
		if src == "" {
			src = v.ChatTemplate
		}
		if src == "" {
			return nil, fmt.Errorf("chat format hf_template: the tokenizer has no chat_template in tokenizer_config.json and the format gives no template=")
		}
		return NewTemplate(src, o, v)
	case NamePlugin:
		return nil, fmt.Errorf("chat format plugin %q: plugin formats are rendered by the plugin, not built here", o.Plugin)
	}
	return nil, fmt.Errorf("unknown chat format %q", o.Name)
}

// withSystemPrompt prepends the default system prompt to a conversation
// that has none.
func withSystemPrompt(msgs []Message, prompt string) []Message {
	if prompt == "" || (len(msgs) > 0 && msgs[0].Role == "system") {
		return msgs
	}
	out := make([]Message, 0, len(msgs)+1)
	out = append(out, Message{Role: "system", Content: prompt})
	return append(out, msgs...)
}

// finish applies the options every format shares to one rendered
// conversation: with mask_user_turns off every token is trained.
func finish(o Options, segs []Segment) []Segment {
	if !o.MaskUserTurns {
		for i := range segs {
			segs[i].Trainable = true
		}
	}
	return segs
}

// SkipReasons used by the built-in formats.
const (
	SkipNoMessages  = "no_messages"
	SkipRenderError = "render_error"
	// SkipNoTrainable is set by the tokenize op when a rendered conversation
	// has no trainable token.
	SkipNoTrainable = "no_trainable_tokens"
)

// renderEach renders conversations one by one with fn; an error of fn is a
// per-conversation skip, not a failure.
func renderEach(ctx context.Context, convs []Conversation, fn func(msgs []Message) ([]Segment, error)) ([]Rendered, error) {
	out := make([]Rendered, len(convs))
	for i, c := range convs {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if len(c.Messages) == 0 {
			out[i] = Rendered{Skip: SkipNoMessages, SkipDetail: "the conversation has no messages"}
			continue
		}
		segs, err := fn(c.Messages)
		if err != nil {
			out[i] = Rendered{Skip: SkipRenderError, SkipDetail: err.Error()}
			continue
		}
		out[i] = Rendered{Segments: segs}
	}
	return out, nil
}
