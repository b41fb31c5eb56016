package eval

import (
	"encoding/json"
	"fmt"

	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/tokens/chat"
)

// chatFormat returns the chat format to apply for m: the given format
// object when set, else the one the model was trained with (marin.json),
// else the tokenizer's chat template.
func chatFormat(m *sample.Model, given json.RawMessage) (chat.Format, error) {
	var o chat.Options
	var err error
	if len(given) > 0 && string(given) != "null" {
		o, err = chat.ParseOptions(given)
	} else {
		o, err = m.ChatOptions("")
	}
	if err != nil {
		return nil, fmt.Errorf("apply_chat_template: %w", err)
	}
	if o.Name == chat.NamePlugin {
		return nil, fmt.Errorf("chat format plugins are not supported in evaluation; use a built-in format or a template")
	}
	return chat.New(o, m.Vocab)
}
