// Command marin-plugin-vicuna is an example third-party chat format plugin:
// it renders conversations in the Vicuna v1.1 layout,
//
//	<s>{system} USER: {user} ASSISTANT: {assistant}</s> USER: …
//
// for tokenizers that have <s> and </s> (Llama 2, Mistral). A script uses it
// with ChatFormat(name="plugin", plugin="vicuna") in default_tokenize; the
// tokenize op starts this executable and sends it batches of conversations.
//
// Install it where marin looks for plugins:
//
//	go build -o ~/.marin/plugins/marin-plugin-vicuna .
package main

import (
	"context"
	"fmt"

	"github.com/marin-go/marin/plugins/sdk"
)

// DefaultSystem is Vicuna's system prompt, used when neither the
// conversation nor the format gives one.
const DefaultSystem = "A chat between a curious user and an artificial intelligence assistant. " +
	"The assistant gives helpful, detailed, and polite answers to the user's questions."

func main() {
	sdk.Serve(&sdk.Plugin{Name: "vicuna", Kind: sdk.KindFormat, Version: "0.1.0", Format: render})
}

func render(ctx context.Context, o sdk.ChatFormatOptions, convs []sdk.Conversation) ([]sdk.Rendered, error) {
	out := make([]sdk.Rendered, len(convs))
	for i, c := range convs {
		out[i] = renderOne(o, c.Messages)
	}
	return out, ctx.Err()
}

// renderOne lays out one conversation. Message content goes in Text
// segments, which are always tokenized as text; only the Special segments
// are control tokens. Assistant replies are trained, and so is the </s>
// that ends them when the step asks for it (train_end_of_turn, the default).
func renderOne(o sdk.ChatFormatOptions, msgs []sdk.ChatMessage) sdk.Rendered {
	all := !o.MaskUserTurns // mask_user_turns=False trains every token
	system := DefaultSystem
	if o.SystemPrompt != "" {
		system = o.SystemPrompt
	}
	if len(msgs) > 0 && msgs[0].Role == "system" {
		system, msgs = msgs[0].Content, msgs[1:]
	}
	segs := []sdk.Segment{sdk.Special("<s>", all), sdk.Text(system, all)}
	for _, m := range msgs {
		switch m.Role {
		case "user":
			segs = append(segs, sdk.Text(" USER: "+m.Content, all))
		case "assistant":
			segs = append(segs, sdk.Text(" ASSISTANT:", all), sdk.Text(" "+m.Content, true), sdk.Special("</s>", o.TrainEndOfTurn || all))
		default:
			return sdk.Rendered{Skip: "unsupported_role", SkipDetail: fmt.Sprintf("vicuna has no role %q", m.Role)}
		}
	}
	return sdk.Rendered{Segments: segs}
}
