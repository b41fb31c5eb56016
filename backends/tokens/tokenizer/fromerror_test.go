package tokenizer

import (
	"strings"
	"testing"
)

// TestFromBytesErrors checks that malformed files name the field at fault.
func TestFromBytesErrors(t *testing.T) {
	cases := []struct{ json, want string }{
		{`{`, "parse tokenizer.json"},
		{`{"model":null}`, "model: missing"},
		{`{"model":{"type":"Nope","vocab":[]}}`, "model.type: unsupported model \"Nope\""},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, "model.merges[0]: token \"b\" is not in the vocabulary"},
		{`{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}}`, "model.merges[0]: merged token \"ab\""},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["ab"]}}`, "model.merges[0]: \"ab\" is not \"left right\""},
		{`{"model":{"type":"BPE","vocab":{"a":"x"},"merges":[]}}`, "model.vocab: expected an object"},
		{`{"model":{"type":"WordLevel","vocab":{}},"normalizer":{"type":"Nope"}}`, "normalizer.type: unsupported normalizer \"Nope\""},
		{`{"model":{"type":"WordLevel","vocab":{}},"normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Replace","pattern":{"Regex":"("},"content":""}]}}`, "normalizer.normalizers[1].pattern.Regex: compile"},
		{`{"model":{"type":"WordLevel","vocab":{}},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"String":"x"},"behavior":"Sideways"}]}}`, "pre_tokenizer.pretokenizers[0].behavior: unknown behavior \"Sideways\""},
		{`{"model":{"type":"WordLevel","vocab":{}},"decoder":{"type":"Strip","content":"ab","start":1,"stop":0}}`, "decoder.content: must be one character"},
		{`{"model":{"type":"WordLevel","vocab":{}},"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}},{"Sequence":{"id":"A"}}],"special_tokens":{}}}`, "post_processor.single[0].SpecialToken.id: \"<s>\" is not in special_tokens"},
		{`{"model":{"type":"WordLevel","vocab":{}},"added_tokens":[{"id":1}]}`, "added_tokens[0].content: missing"},
		{`{"model":{"type":"WordLevel","vocab":{}},"added_tokens":[{"id":1,"content":5}]}`, "added_tokens[0].content"},
		{`{"model":{"type":"WordLevel","vocab":{}},"padding":{"strategy":"Sometimes"}}`, "padding.strategy: unknown strategy"},
	}
	for _, c := range cases {
		_, err := FromBytes([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FromBytes(%s) = %v, want error containing %q", c.json, err, c.want)
		}
	}
}

// TestFuzzSeedsLoad makes sure the well-formed fuzz seeds parse and run.
func TestFuzzSeedsLoad(t *testing.T) {
	for i, s := range fuzzSeeds[:5] {
		tk, err := FromBytes([]byte(s))
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		ids := tk.Encode("Hello world 12 ab <s> a", EncodeOptions{AddSpecialTokens: true, SplitSpecial: true})
		if len(ids) == 0 {
			t.Errorf("seed %d: no ids", i)
		}
		t.Logf("seed %d: %v %q\n%s", i, ids, tk.Decode(ids, false), tk.Describe())
	}
}
