package tokenize

import (
	"context"
	"encoding/json"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/plugins/sdk"
)

// pluginFormat renders through a format plugin process that this op starts
// from the endpoint the host passed in the request (the host is not in the
// data path). Its text segments are plain text: only its Special segments
// are control tokens.
type pluginFormat struct {
	fc   *sdk.FormatClient
	opts []byte
}

func startPluginFormat(ctx context.Context, o chat.Options, raw json.RawMessage, plugins []sdk.PluginEndpoint) (*pluginFormat, error) {
	req := &sdk.Request{Plugins: plugins}
	ep, err := req.Plugin(o.Plugin)
	if err != nil {
		return nil, err
	}
	fc, err := sdk.StartFormat(ctx, ep)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		raw, _ = json.Marshal(o)
	}
	return &pluginFormat{fc: fc, opts: raw}, nil
}

func (p *pluginFormat) Name() string { return "plugin " + p.fc.Endpoint.Name }

func (p *pluginFormat) Close() { p.fc.Close() }

func (p *pluginFormat) Render(ctx context.Context, convs []chat.Conversation) ([]chat.Rendered, error) {
	sc := make([]sdk.Conversation, len(convs))
	for i, c := range convs {
		msgs := make([]sdk.ChatMessage, len(c.Messages))
		for k, m := range c.Messages {
			msgs[k] = sdk.ChatMessage{Role: m.Role, Content: m.Content}
		}
		sc[i] = sdk.Conversation{ID: c.ID, Messages: msgs}
	}
	res, err := p.fc.Render(ctx, p.opts, sc)
	if err != nil {
		return nil, err
	}
	out := make([]chat.Rendered, len(res))
	for i, r := range res {
		out[i] = chat.Rendered{Skip: r.Skip, SkipDetail: r.SkipDetail}
		if r.Skip == "" && len(r.Segments) == 0 {
			out[i].Skip, out[i].SkipDetail = chat.SkipRenderError, "the format plugin rendered nothing"
		}
		for _, s := range r.Segments {
			out[i].Segments = append(out[i].Segments, chat.Segment{Text: s.Text, Special: s.Special, Trainable: s.Trainable})
		}
	}
	return out, nil
}
