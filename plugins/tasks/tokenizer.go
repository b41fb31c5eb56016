package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// marshal indents v without escaping <, > and & (the special tokens read
// as they are).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Special tokens of the byte-level tokenizer, after the 256 byte tokens:
// the end of text, ChatML's two, and the compact chat format's.
const (
	EndOfText = "<|endoftext|>" // 256
	IMStart   = "<|im_start|>"  // 257
	IMEnd     = "<|im_end|>"    // 258
	User      = "<|user|>"      // 259
	Assistant = "<|assistant|>" // 260
	System    = "<|system|>"    // 261
	End       = "<|end|>"       // 262
)

var specialTokens = []string{EndOfText, IMStart, IMEnd, User, Assistant, System, End}

// ChatTemplate is the tokenizer's chat_template: a compact format with one
// control token per role and no role names spelled out in bytes,
//
//	<|system|>{system}<|user|>{question}<|assistant|>{answer}<|end|>
//
// so a byte-level model of a million parameters, pretrained on
// "question=answer" text, has little to relearn to answer in it. The
// answer and its <|end|> are inside {% generation %} blocks, which the
// hf_template format (and transformers' return_assistant_tokens_mask)
// train on.
const ChatTemplate = "{% for message in messages %}" +
	"{% if message['role'] == 'system' %}{{ '<|system|>' + message['content'] }}" +
	"{% elif message['role'] == 'user' %}{{ '<|user|>' + message['content'] }}" +
	"{% else %}{{ '<|assistant|>' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{% endif %}" +
	"{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"

// bytesToUnicode is GPT-2's map from bytes to printable characters, the
// alphabet of byte-level BPE vocabularies.
func bytesToUnicode() [256]rune {
	var out [256]rune
	var bs []int
	for b := int('!'); b <= int('~'); b++ {
		bs = append(bs, b)
	}
	for b := 0xA1; b <= 0xAC; b++ {
		bs = append(bs, b)
	}
	for b := 0xAE; b <= 0xFF; b++ {
		bs = append(bs, b)
	}
	in := map[int]bool{}
	for _, b := range bs {
		in[b] = true
		out[b] = rune(b)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !in[b] {
			out[b] = rune(256 + n)
			n++
		}
	}
	return out
}

// TokenizerFiles returns tokenizer.json, tokenizer_config.json and
// special_tokens_map.json of a byte-level tokenizer with no merges: every
// byte is its own token (ids 0–255 by byte value), then the special tokens
// (256–262: <|endoftext|>, <|im_start|>, <|im_end|>, <|user|>,
// <|assistant|>, <|system|>, <|end|>), with ChatTemplate as its chat
// template. A model over it needs no
// vocabulary to learn, which suits small synthetic tasks; its files are the
// Hugging Face format, so transformers and marin load it like any other.
// experiments/quickstart/tokenizer holds the committed copy
// (go run ./plugins/tasks/gentokenizer writes it).
func TokenizerFiles() (tokenizerJSON, configJSON, specialMapJSON []byte, err error) {
	alphabet := bytesToUnicode()
	vocab := map[string]int{}
	for b, r := range alphabet {
		vocab[string(r)] = b
	}
	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	var addedTokens []added
	decoder := map[string]any{}
	for i, s := range specialTokens {
		addedTokens = append(addedTokens, added{ID: 256 + i, Content: s, Special: true})
		decoder[fmt.Sprint(256+i)] = map[string]any{"content": s, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true}
	}
	byteLevel := func(prefix bool) map[string]any {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": true, "use_regex": true}
	}
	post := byteLevel(false)
	post["trim_offsets"] = false
	tok := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   addedTokens,
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel(false),
		"post_processor": post,
		"decoder":        byteLevel(true),
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []string{},
		},
	}
	if tokenizerJSON, err = marshal(tok); err != nil {
		return nil, nil, nil, err
	}
	cfg := map[string]any{
		"added_tokens_decoder":         decoder,
		"additional_special_tokens":    specialTokens[1:],
		"bos_token":                    nil,
		"eos_token":                    EndOfText,
		"pad_token":                    EndOfText,
		"unk_token":                    nil,
		"chat_template":                ChatTemplate,
		"clean_up_tokenization_spaces": false,
		"model_max_length":             1024,
		"tokenizer_class":              "PreTrainedTokenizerFast",
	}
	if configJSON, err = marshal(cfg); err != nil {
		return nil, nil, nil, err
	}
	sm := map[string]any{"additional_special_tokens": specialTokens[1:], "eos_token": EndOfText, "pad_token": EndOfText}
	if specialMapJSON, err = marshal(sm); err != nil {
		return nil, nil, nil, err
	}
	return tokenizerJSON, configJSON, specialMapJSON, nil
}
