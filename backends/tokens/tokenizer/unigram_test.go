package tokenizer

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// unigramFile is a tokenizer.json with only a Unigram model.
func unigramFile(t *testing.T, unkID string, byteFallback bool, pieces ...string) *Tokenizer {
	t.Helper()
	js := fmt.Sprintf(`{"model":{"type":"Unigram","unk_id":%s,"byte_fallback":%v,"vocab":[%s]}}`, unkID, byteFallback, strings.Join(pieces, ","))
	tk, err := FromBytes([]byte(js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return tk
}

func bytePieces(n int) []string {
	var out []string
	for b := 0; b < n; b++ {
		out = append(out, fmt.Sprintf(`["<0x%02X>",-10]`, b))
	}
	return out
}

// TestUnigramEncode checks the model against answers of the oracle
// (tokenizers@0.23.2) for the same vocabularies.
func TestUnigramEncode(t *testing.T) {
	cases := []struct {
		name string
		tk   *Tokenizer
		in   string
		want []uint32
	}{
		// Hugging Face's documentation example: abcd, a, cd, then xx fused into one unknown piece.
		{"viterbi", unigramFile(t, "0", false, `["<unk>",0]`, `["a",0]`, `["b",0]`, `["c",0]`, `["d",0]`, `["cd",1]`, `["ab",2]`, `["abc",5]`, `["abcd",10]`),
			"abcdacdxx", []uint32{8, 1, 5, 0}},
		// Equal scores: the path found first (the longer piece at the earlier start) stays.
		{"tie", unigramFile(t, "0", false, `["<unk>",0]`, `["a",0]`, `["b",0]`, `["ab",0]`), "ab", []uint32{3}},
		// The unknown piece's own text matches the vocabulary and is an unknown node too, fused with neighbours.
		{"unk text", unigramFile(t, "0", false, `["<unk>",0]`, `["a",-5]`, `["<",-1]`, `["u",-1]`, `["n",-1]`, `["k",-1]`, `[">",-1]`), "<unk>z", []uint32{0}},
		{"unk text apart", unigramFile(t, "0", false, `["<unk>",0]`, `["a",-5]`, `["<",-1]`, `["u",-1]`, `["n",-1]`, `["k",-1]`, `[">",-1]`), "za<unk>", []uint32{0, 1, 0}},
		// A repeated piece resolves to its last id.
		{"repeated", unigramFile(t, "0", false, `["<unk>",0]`, `["a",-1]`, `["a",-2]`, `["b",-1]`), "ab", []uint32{2, 3}},
		// Unknown nodes score min - 10; with positive scores two of them beat "xy", and the fused text is looked up.
		{"fused lookup", unigramFile(t, "0", false, `["<unk>",100]`, `["xy",30]`, `["q",100]`), "xyq", []uint32{1, 2}},
		{"byte fallback", unigramFile(t, "0", true, append([]string{`["<unk>",0]`, `["a",-1]`}, bytePieces(256)...)...), "aéa", []uint32{1, 197, 171, 1}},
		{"byte fallback fused", unigramFile(t, "0", true, append([]string{`["<unk>",0]`, `["a",-1]`}, bytePieces(256)...)...), "zé", []uint32{124, 197, 171}},
		// Without every byte piece, byte_fallback gives the unknown id.
		{"byte fallback partial", unigramFile(t, "0", true, append([]string{`["<unk>",0]`, `["a",-1]`}, bytePieces(98)...)...), "aéa", []uint32{1, 0, 1}},
		// serde_json reads -4.919759277833500200 as -4.919759277833501, so "a" + "b" beats "ab".
		{"serde float", unigramFile(t, "0", false, `["<unk>",0.0]`, `["a",-4.9197592778335]`, `["b",0.0]`, `["ab",-4.919759277833500200]`), "ab", []uint32{1, 2}},
		// No unk_id: Hugging Face fails the encode of "azb"; the unknown character is dropped here.
		{"no unk", unigramFile(t, "null", false, `["a",-1]`, `["b",-1]`), "azb", []uint32{0, 1}},
	}
	for _, c := range cases {
		if got := c.tk.Encode(c.in, EncodeOptions{SplitSpecial: true}); !slices.Equal(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.name, c.in, got, c.want)
		}
	}
	dup := cases[4].tk
	if n := dup.VocabSize(); n != 4 {
		t.Errorf("VocabSize with a repeated piece = %d, want 4 (as the oracle)", n)
	}
	if id, _ := dup.TokenToID("a"); id != 2 {
		t.Errorf("TokenToID(a) = %d, want 2", id)
	}
	if tok, _ := dup.IDToToken(1); tok != "a" {
		t.Errorf("IDToToken(1) = %q, want a", tok)
	}
	if d := cases[len(cases)-1].tk.Describe(); !strings.Contains(d, "no unk_id") {
		t.Errorf("Describe of a model without unk_id does not say so:\n%s", d)
	}
}

func TestUnigramLoadErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"model":{"type":"Unigram","vocab":[],"unk_id":0}}`, "model.vocab: is empty but unk_id is set"},
		{`{"model":{"type":"Unigram","vocab":[["a",0]],"unk_id":1}}`, "model.unk_id: 1 is not below the vocabulary size 1"},
		{`{"model":{"type":"Unigram","vocab":[["a",0]],"unk_id":"a"}}`, "model.unk_id: expected a vocabulary index"},
		{`{"model":{"type":"Unigram","vocab":[["a"]]}}`, "model.vocab[0]: expected [piece, score]"},
		{`{"model":{"type":"Unigram","vocab":[["a","x"]]}}`, "model.vocab[0][1]: expected a number"},
		{`{"model":{"type":"Unigram","vocab":[[1,0]]}}`, "model.vocab[0][0]: expected a string"},
		{`{"model":{"type":"Unigram","vocab":[["a",1e999]]}}`, "model.vocab[0][1]: expected a number"},
		{`{"model":{"type":"Unigram"}}`, "model.vocab: missing"},
		{`{"model":{"type":"Unigram","vocab":[]},"normalizer":{"type":"Precompiled"}}`, "normalizer.precompiled_charsmap: missing"},
		{`{"model":{"type":"Unigram","vocab":[]},"normalizer":{"type":"Precompiled","precompiled_charsmap":""}}`, "normalizer.precompiled_charsmap: precompiled_charsmap has 0 bytes"},
	} {
		_, err := FromBytes([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FromBytes(%s) = %v, want error containing %q", c.json, err, c.want)
		}
	}
}

func TestParseSerdeFloat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", math.Copysign(0, -1), true},
		{"0.0", 0, true},
		{"-100", -100, true},
		{"-2.1889710426330566", -2.1889710426330566, true},
		{"-13.291200637817383", -13.291200637817385, true}, // rounded twice: one ulp off
		{"-4.919759277833500200", -4.919759277833501, true},
		{"1.5e3", 1500, true},
		{"1E-2", 0.01, true},
		{"25e-1", 2.5, true},
		{"123456789012345678901234", float64(uint64(12345678901234567890)) * 1e4, true}, // digits past u64 only scale
		{"1e-400", 0, true},
		{"1e400", 0, false},
		{"1e99999999999", 0, false},
		{"0e99999999999", 0, true},
		{"-", 0, false}, {"01", 0, false}, {"1.", 0, false}, {"1e", 0, false}, {".5", 0, false}, {"1x", 0, false},
	} {
		got, ok := parseSerdeFloat([]byte(c.in))
		if ok != c.ok || (ok && (got != c.want || math.Signbit(got) != math.Signbit(c.want))) {
			t.Errorf("parseSerdeFloat(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
