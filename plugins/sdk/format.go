package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginpb "github.com/marin-go/marin/plugins/proto"
)

// A format plugin renders conversations for the chat format a script names
// with ChatFormat(name="plugin", plugin="NAME"): Kind KindFormat, Name NAME,
// and a Format function. It needs no ops. The tokenize op starts it and
// sends it batches of conversations; each comes back as segments, pieces of
// text or single control tokens, each trained on or not:
//
//	sdk.Serve(&sdk.Plugin{
//		Name: "vicuna", Kind: sdk.KindFormat, Version: "0.1.0",
//		Format: func(ctx context.Context, o sdk.ChatFormatOptions, convs []sdk.Conversation) ([]sdk.Rendered, error) {
//			out := make([]sdk.Rendered, len(convs))
//			for i, c := range convs {
//				for _, m := range c.Messages {
//					asst := m.Role == "assistant"
//					out[i].Segments = append(out[i].Segments,
//						sdk.Text(m.Role+": ", false), sdk.Text(m.Content, asst), sdk.Special("</s>", asst && o.TrainEndOfTurn))
//				}
//			}
//			return out, nil
//		},
//	})
//
// Text segments are always tokenized as text: a message that spells a
// control token yields that text, never the token. Only Special segments
// are control tokens. plugins/examples/chatformat is a complete example.

// FormatFunc renders a batch of conversations, one Rendered per
// conversation in order. Put a conversation the format cannot render in its
// Rendered's Skip (a short reason) rather than failing: an error fails the
// whole step.
type FormatFunc func(ctx context.Context, o ChatFormatOptions, convs []Conversation) ([]Rendered, error)

// ChatFormatOptions is the step's ChatFormat.
type ChatFormatOptions struct {
	Name           string `json:"name"`   // "plugin"
	Plugin         string `json:"plugin"` // this plugin's name
	MessagesField  string `json:"messages_field"`
	MaskUserTurns  bool   `json:"mask_user_turns"`   // train only assistant turns
	TrainEndOfTurn bool   `json:"train_end_of_turn"` // train the token that ends an assistant turn
	Pack           bool   `json:"pack"`
	SystemPrompt   string `json:"system_prompt"` // default system prompt, "" for none
	Template       string `json:"template"`
	// Raw is the whole object as the step gave it, for fields added later.
	Raw json.RawMessage `json:"-"`
}

// ChatMessage is one turn.
type ChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Conversation is one document to render.
type Conversation struct {
	ID       string
	Messages []ChatMessage
}

// Segment is text or one control token (Special), trained on or not.
type Segment struct {
	Text      string
	Special   string
	Trainable bool
}

// Text is a text segment.
func Text(s string, trainable bool) Segment { return Segment{Text: s, Trainable: trainable} }

// Special is a control-token segment, e.g. Special("<|eot_id|>", true).
func Special(tok string, trainable bool) Segment { return Segment{Special: tok, Trainable: trainable} }

// Rendered is one conversation's segments, or the reason it is skipped.
type Rendered struct {
	Segments   []Segment
	Skip       string // short reason code; non-empty skips the conversation
	SkipDetail string // for a person
}

// decodeChatOptions reads ChatFormatOptions from JSON, nulls as unset.
func decodeChatOptions(raw []byte) (ChatFormatOptions, error) {
	o := ChatFormatOptions{MessagesField: "messages", MaskUserTurns: true, TrainEndOfTurn: true, Pack: true}
	if len(raw) == 0 {
		return o, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return o, fmt.Errorf("chat format options: %w", err)
	}
	for k, v := range m {
		if string(v) == "null" {
			delete(m, k)
		}
	}
	clean, _ := json.Marshal(m)
	if err := json.Unmarshal(clean, &o); err != nil {
		return o, fmt.Errorf("chat format options: %w", err)
	}
	o.Raw = append(json.RawMessage(nil), raw...)
	return o, nil
}

// RenderChat serves a format plugin's Format.
func (s *server) RenderChat(ctx context.Context, req *pluginpb.RenderChatRequest) (resp *pluginpb.RenderChatResponse, err error) {
	if s.beforeCall != nil {
		s.beforeCall()
	}
	if s.p.Format == nil {
		return nil, status.Errorf(codes.Unimplemented, "plugin %q (kind %s) renders no chat format", s.p.Name, s.p.Kind)
	}
	fail := func(summary, detail string) *pluginpb.RenderChatResponse {
		return &pluginpb.RenderChatResponse{Error: &pluginpb.Diagnostic{Summary: summary, Detail: detail}}
	}
	o, err := decodeChatOptions(req.GetOptionsJson())
	if err != nil {
		return fail(err.Error(), ""), nil
	}
	convs := make([]Conversation, len(req.GetConversations()))
	for i, c := range req.GetConversations() {
		convs[i] = Conversation{ID: c.GetId(), Messages: make([]ChatMessage, len(c.GetMessages()))}
		for j, m := range c.GetMessages() {
			convs[i].Messages[j] = ChatMessage{Role: m.GetRole(), Content: m.GetContent()}
		}
	}
	defer func() {
		if p := recover(); p != nil {
			resp, err = fail(fmt.Sprintf("format plugin %q panicked: %v", s.p.Name, p), string(debug.Stack())), nil
		}
	}()
	out, err := s.p.Format(ctx, o, convs)
	if err != nil {
		d := toDiagnostic(err)
		return &pluginpb.RenderChatResponse{Error: d}, nil
	}
	if len(out) != len(convs) {
		return fail(fmt.Sprintf("format plugin %q returned %d results for %d conversations", s.p.Name, len(out), len(convs)), ""), nil
	}
	resp = &pluginpb.RenderChatResponse{Conversations: make([]*pluginpb.RenderedConversation, len(out))}
	for i, r := range out {
		rc := &pluginpb.RenderedConversation{SkipReason: r.Skip, SkipDetail: r.SkipDetail}
		for j, seg := range r.Segments {
			if (seg.Text != "") == (seg.Special != "") && seg.Special != "" {
				return fail(fmt.Sprintf("format plugin %q: conversation %q segment %d has both text and a special token", s.p.Name, convs[i].ID, j), ""), nil
			}
			ps := &pluginpb.Segment{Trainable: seg.Trainable}
			if seg.Special != "" {
				ps.Piece = &pluginpb.Segment_SpecialToken{SpecialToken: seg.Special}
			} else {
				ps.Piece = &pluginpb.Segment_Text{Text: seg.Text}
			}
			rc.Segments = append(rc.Segments, ps)
		}
		resp.Conversations[i] = rc
	}
	return resp, nil
}
