package datasets

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/marin-go/marin/plugins/documents"
)

// Reasons a row is dropped; stats.json counts rows by these names.
const (
	reasonInvalidUTF8       = "invalid_utf8"       // a string in the row is not valid UTF-8
	reasonWrongType         = "wrong_type"         // a column or message has the wrong JSON type
	reasonMissingField      = "missing_field"      // a column the adapter needs is absent or null
	reasonMissingRole       = "missing_role"       // a message has no role
	reasonUnknownRole       = "unknown_role"       // a role the role map does not know
	reasonMissingContent    = "missing_content"    // a message has no content
	reasonEmptyContent      = "empty_content"      // a turn's text is empty or only white space
	reasonEmptyConversation = "empty_conversation" // no messages at all
	reasonEndsOnUser        = "ends_on_user_turn"  // the last turn is the user's: nothing to learn
	reasonNoAssistant       = "no_assistant_turn"  // no assistant turn at all
	reasonNotOneMessage     = "instruction_not_one_message"
	reasonNoResponses       = "empty_response_list"
)

// Adapter names, as get_instruction_dataset and the registry use them.
const (
	adapterMessages               = "messages"
	adapterShareGPT               = "sharegpt"
	adapterInstructionResponse    = "instruction_response"
	adapterInstructColumnResponse = "instruct_column_response"
	adapterInstructMsgResponse    = "instruct_msg_response"
	adapterOrca                   = "orca"
	adapterAlpaca                 = "alpaca"
	adapterDolly                  = "dolly"
)

// adapterNames lists the adapters, for error messages.
var adapterNames = []string{adapterMessages, adapterShareGPT, adapterInstructionResponse, adapterInstructColumnResponse,
	adapterInstructMsgResponse, adapterOrca, adapterAlpaca, adapterDolly}

// adapter turns a source row into a conversation.
type adapter struct {
	name string
	f    fields
}

// fields are an adapter's column names (the transform's "fields" config).
type fields struct {
	Messages    string            // multi-turn column
	Role        string            // key of the role inside a message
	Content     string            // key of the text inside a message / a response dict
	Instruction string            // the user's prompt
	Input       string            // alpaca: extra input appended to the instruction
	Context     string            // dolly: context appended to the instruction
	System      string            // a system prompt column
	Response    string            // the answer
	FilterOn    string            // pick the response dict with the highest value of this key
	Metadata    []string          // columns copied into each row's metadata
	RoleMap     map[string]string // source role value → system|user|assistant
}

// defaults are each adapter's column names when the config leaves them out.
var defaults = map[string]fields{
	adapterMessages: {Messages: "messages", Role: "role", Content: "content"},
	adapterShareGPT: {Messages: "conversations", Role: "from", Content: "value",
		RoleMap: map[string]string{"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}},
	adapterInstructionResponse:    {Instruction: "instruction", Response: "response"},
	adapterInstructColumnResponse: {Instruction: "instruction", Response: "responses", Content: "response"},
	adapterInstructMsgResponse:    {Instruction: "messages", Response: "answer", Role: "role", Content: "content"},
	adapterOrca:                   {System: "system_prompt", Instruction: "question", Response: "response"},
	adapterAlpaca:                 {Instruction: "instruction", Input: "input", Response: "output"},
	adapterDolly:                  {Instruction: "instruction", Context: "context", Response: "response"},
}

// newAdapter builds the adapter name with cfg (the "fields" config) over
// the adapter's defaults.
func newAdapter(name string, cfg map[string]any) (*adapter, error) {
	f, ok := defaults[name]
	if !ok {
		return nil, fmt.Errorf("unknown adapter %q (adapters: %s)", name, strings.Join(adapterNames, ", "))
	}
	if f.RoleMap != nil {
		m := map[string]string{}
		for k, v := range f.RoleMap {
			m[k] = v
		}
		f.RoleMap = m
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := cfg[k]
		dst := map[string]*string{
			"messages": &f.Messages, "role": &f.Role, "content": &f.Content, "instruction": &f.Instruction,
			"input": &f.Input, "context": &f.Context, "system": &f.System, "response": &f.Response, "filter_on": &f.FilterOn,
		}[k]
		switch {
		case dst != nil:
			s, ok := v.(string)
			if !ok && v != nil {
				return nil, fmt.Errorf("fields.%s: want a column name, got %T", k, v)
			}
			*dst = s
		case k == "metadata":
			cols, err := stringList(v)
			if err != nil {
				return nil, fmt.Errorf("fields.metadata: %w", err)
			}
			f.Metadata = cols
		case k == "role_map":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("fields.role_map: want a dict of source role → chat role, got %T", v)
			}
			f.RoleMap = map[string]string{}
			for src, dst := range m {
				s, ok := dst.(string)
				if !ok || (s != documents.RoleSystem && s != documents.RoleUser && s != documents.RoleAssistant) {
					return nil, fmt.Errorf("fields.role_map[%q]: want \"system\", \"user\" or \"assistant\", got %v", src, dst)
				}
				f.RoleMap[src] = s
			}
		default:
			return nil, fmt.Errorf("fields: unknown key %q (known: messages, role, content, instruction, input, context, system, response, filter_on, metadata, role_map)", k)
		}
	}
	need := map[string]string{}
	switch name {
	case adapterMessages, adapterShareGPT:
		need = map[string]string{"messages": f.Messages, "role": f.Role, "content": f.Content}
	case adapterInstructionResponse:
		need = map[string]string{"instruction": f.Instruction, "response": f.Response}
		if f.FilterOn != "" {
			need["content"] = f.Content
		}
	case adapterInstructColumnResponse:
		need = map[string]string{"instruction": f.Instruction, "response": f.Response, "content": f.Content}
	case adapterInstructMsgResponse:
		need = map[string]string{"instruction": f.Instruction, "response": f.Response, "role": f.Role, "content": f.Content}
	case adapterOrca, adapterAlpaca, adapterDolly:
		need = map[string]string{"instruction": f.Instruction, "response": f.Response}
	}
	for k, v := range need {
		if v == "" {
			return nil, fmt.Errorf("adapter %s needs fields.%s", name, k)
		}
	}
	return &adapter{name: name, f: f}, nil
}

// stringList accepts "a,b" or ["a", "b"].
func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		var out []string
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want column names, got %T", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a comma-separated string or a list of column names, got %T", v)
}

// text reads a string column: absent or null is missing_field, another
// type wrong_type.
func text(row map[string]any, col string) (string, string) {
	v, ok := row[col]
	if !ok || v == nil {
		return "", reasonMissingField
	}
	s, ok := v.(string)
	if !ok {
		return "", reasonWrongType
	}
	return s, ""
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }

// convert returns the conversation of row, or the reason it has none.
func (a *adapter) convert(row map[string]any) ([]documents.Message, string) {
	var (
		msgs   []documents.Message
		reason string
	)
	switch a.name {
	case adapterMessages, adapterShareGPT:
		msgs, reason = a.multiTurn(row)
	case adapterInstructMsgResponse:
		msgs, reason = a.instructMsg(row)
	default:
		msgs, reason = a.singleTurn(row)
	}
	if reason != "" {
		return nil, reason
	}
	return msgs, check(msgs)
}

// check applies the rules every conversation must meet.
func check(msgs []documents.Message) string {
	if len(msgs) == 0 {
		return reasonEmptyConversation
	}
	hasAssistant := false
	for _, m := range msgs {
		if blank(m.Content) {
			return reasonEmptyContent
		}
		hasAssistant = hasAssistant || m.Role == documents.RoleAssistant
	}
	if !hasAssistant {
		if msgs[len(msgs)-1].Role == documents.RoleUser {
			return reasonEndsOnUser
		}
		return reasonNoAssistant
	}
	if msgs[len(msgs)-1].Role == documents.RoleUser {
		return reasonEndsOnUser
	}
	return ""
}

// role maps a source role to a chat role.
func (a *adapter) role(src string) (string, bool) {
	if a.f.RoleMap == nil {
		switch src {
		case documents.RoleSystem, documents.RoleUser, documents.RoleAssistant:
			return src, true
		}
		return "", false
	}
	r, ok := a.f.RoleMap[src]
	return r, ok
}

// message reads one {role, content} dict.
func (a *adapter) message(v any) (documents.Message, string) {
	m, ok := v.(map[string]any)
	if !ok {
		return documents.Message{}, reasonWrongType
	}
	rv, ok := m[a.f.Role]
	if !ok || rv == nil {
		return documents.Message{}, reasonMissingRole
	}
	rs, ok := rv.(string)
	if !ok {
		return documents.Message{}, reasonWrongType
	}
	role, ok := a.role(rs)
	if !ok {
		return documents.Message{}, reasonUnknownRole
	}
	cv, ok := m[a.f.Content]
	if !ok || cv == nil {
		return documents.Message{}, reasonMissingContent
	}
	content, ok := cv.(string)
	if !ok {
		return documents.Message{}, reasonWrongType
	}
	return documents.Message{Role: role, Content: content}, ""
}

func (a *adapter) multiTurn(row map[string]any) ([]documents.Message, string) {
	v, ok := row[a.f.Messages]
	if !ok || v == nil {
		return nil, reasonMissingField
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reasonWrongType
	}
	msgs := make([]documents.Message, 0, len(list)+1)
	if a.f.System != "" {
		if s, r := text(row, a.f.System); r == reasonWrongType {
			return nil, r
		} else if !blank(s) && (len(list) == 0 || !a.startsWithSystem(list)) {
			msgs = append(msgs, documents.Message{Role: documents.RoleSystem, Content: s})
		}
	}
	for _, e := range list {
		m, reason := a.message(e)
		if reason != "" {
			return nil, reason
		}
		msgs = append(msgs, m)
	}
	return msgs, ""
}

func (a *adapter) startsWithSystem(list []any) bool {
	m, _ := a.message(list[0])
	return m.Role == documents.RoleSystem
}

// instructMsg: the instruction column holds a list of exactly one message
// (its role is not used: it is the user's turn), the response a string.
func (a *adapter) instructMsg(row map[string]any) ([]documents.Message, string) {
	v, ok := row[a.f.Instruction]
	if !ok || v == nil {
		return nil, reasonMissingField
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reasonWrongType
	}
	if len(list) != 1 {
		return nil, reasonNotOneMessage
	}
	m, ok := list[0].(map[string]any)
	if !ok {
		return nil, reasonWrongType
	}
	if r, ok := m[a.f.Role]; !ok || r == nil {
		return nil, reasonMissingRole
	}
	cv, ok := m[a.f.Content]
	if !ok || cv == nil {
		return nil, reasonMissingContent
	}
	q, ok := cv.(string)
	if !ok {
		return nil, reasonWrongType
	}
	resp, reason := text(row, a.f.Response)
	if reason != "" {
		return nil, reason
	}
	return []documents.Message{{Role: documents.RoleUser, Content: q}, {Role: documents.RoleAssistant, Content: resp}}, ""
}

// singleTurn covers instruction_response, instruct_column_response, orca,
// alpaca and dolly: one user turn (with optional system prompt and extra
// input) and one answer.
func (a *adapter) singleTurn(row map[string]any) ([]documents.Message, string) {
	q, reason := text(row, a.f.Instruction)
	if reason != "" {
		return nil, reason
	}
	extraCol := a.f.Input
	if a.name == adapterDolly {
		extraCol = a.f.Context
	}
	if (a.name == adapterAlpaca || a.name == adapterDolly) && extraCol != "" {
		// Absent or empty extra input is common ("input": ""): just the instruction.
		if v, ok := row[extraCol]; ok && v != nil {
			extra, ok := v.(string)
			if !ok {
				return nil, reasonWrongType
			}
			if !blank(extra) {
				q = q + "\n\n" + extra
			}
		}
	}
	resp, reason := a.response(row)
	if reason != "" {
		return nil, reason
	}
	msgs := make([]documents.Message, 0, 3)
	if a.f.System != "" {
		if v, ok := row[a.f.System]; ok && v != nil {
			s, ok := v.(string)
			if !ok {
				return nil, reasonWrongType
			}
			if !blank(s) {
				msgs = append(msgs, documents.Message{Role: documents.RoleSystem, Content: s})
			}
		}
	}
	return append(msgs, documents.Message{Role: documents.RoleUser, Content: q}, documents.Message{Role: documents.RoleAssistant, Content: resp}), ""
}

// response reads the answer: a string column, the first dict of a list
// (instruct_column_response), or the best dict by filter_on.
func (a *adapter) response(row map[string]any) (string, string) {
	if a.name != adapterInstructColumnResponse && a.f.FilterOn == "" {
		return text(row, a.f.Response)
	}
	v, ok := row[a.f.Response]
	if !ok || v == nil {
		return "", reasonMissingField
	}
	list, ok := v.([]any)
	if !ok {
		return "", reasonWrongType
	}
	if len(list) == 0 {
		return "", reasonNoResponses
	}
	best := list[0]
	if a.f.FilterOn != "" {
		bestScore, found := 0.0, false
		for _, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				return "", reasonWrongType
			}
			score, ok := number(m[a.f.FilterOn])
			if !ok {
				return "", reasonWrongType
			}
			if !found || score > bestScore {
				best, bestScore, found = e, score, true
			}
		}
	}
	m, ok := best.(map[string]any)
	if !ok {
		return "", reasonWrongType
	}
	cv, ok := m[a.f.Content]
	if !ok || cv == nil {
		return "", reasonMissingContent
	}
	s, ok := cv.(string)
	if !ok {
		return "", reasonWrongType
	}
	return s, ""
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

// metadata copies the metadata columns of row; an absent column is ""
// (as in Marin).
func (a *adapter) metadata(row map[string]any) map[string]any {
	md := make(map[string]any, len(a.f.Metadata))
	for _, col := range a.f.Metadata {
		if v, ok := row[col]; ok {
			md[col] = v
		} else {
			md[col] = ""
		}
	}
	return md
}
