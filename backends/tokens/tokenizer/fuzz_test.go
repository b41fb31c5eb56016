package tokenizer

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEncode checks that no input makes any family panic, that EncodeBatch
// agrees with Encode, and that byte-level families round-trip.
//
//	go test -run '^$' -fuzz FuzzEncode -fuzztime 60s ./backends/tokens/tokenizer/
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", " ", "hello world", "<|eot_id|>x<s>", "'S  \n\n\t 123 😀👨‍👩‍👧", "\xff\xfe<unk>", "[INST] marinword\u00a0\u3000",
		strings.Repeat(" ", 300), "e\u0301\u0301 ٣ ۱۲۳ [CLS] ##"} {
		f.Add(s)
	}
	var toks []*Tokenizer
	var fams []family
	for _, fam := range loadFamilies(f) {
		if _, err := familyFileIfPresent(fam); err != nil {
			continue
		}
		toks = append(toks, loadFamily(f, fam))
		fams = append(fams, fam)
	}
	if len(toks) == 0 {
		f.Skip("no tokenizer files installed")
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, tk := range toks {
			for _, o := range []EncodeOptions{{}, {AddSpecialTokens: true, SplitSpecial: true}} {
				ids := tk.Encode(s, o)
				batch := tk.EncodeBatch([]string{s, s}, o)
				if !fams[i].Padded && (len(batch[0]) != len(ids) || len(batch[1]) != len(ids)) {
					t.Fatalf("%s: EncodeBatch disagrees with Encode on %q", fams[i].Name, s)
				}
				out := tk.Decode(ids, false)
				tk.Decode(ids, true)
				if fams[i].Lossless && !o.AddSpecialTokens && utf8.ValidString(s) && out != s {
					t.Fatalf("%s: round trip of %q gave %q", fams[i].Name, s, out)
				}
			}
		}
	})
}

func familyFileIfPresent(f family) (string, error) {
	p := f.file()
	_, err := osStat(p)
	return p, err
}

// FuzzFromBytes checks that no tokenizer.json makes FromBytes panic, that
// errors name a field, and that whatever loads can encode and decode.
//
//	go test -run '^$' -fuzz FuzzFromBytes -fuzztime 60s ./backends/tokens/tokenizer/
func FuzzFromBytes(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := FromBytes(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			var fe *fieldError
			if !errors.As(err, &fe) && !strings.Contains(err.Error(), "tokenizer.json") && !strings.Contains(err.Error(), ": ") {
				t.Fatalf("error names no field: %v", err)
			}
			return
		}
		for _, s := range []string{"", "hello world", " <s>[CLS]\n\n  12345 😀 ab", "\xff"} {
			ids := tk.Encode(s, EncodeOptions{AddSpecialTokens: true, SplitSpecial: true})
			tk.Decode(ids, false)
			tk.Decode(append(ids, 0, 1, 1<<31), true)
		}
		tk.Describe()
	})
}

// fuzzSeeds are small complete files exercising every component.
var fuzzSeeds = []string{
	`{"version":"1.0","added_tokens":[{"id":5,"content":"<s>","special":true,"normalized":false,"lstrip":true,"rstrip":true,"single_word":false}],
	 "normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
	 "pre_tokenizer":null,
	 "post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[5],"tokens":["<s>"]}}},
	 "decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
	 "model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":true,"vocab":{"<unk>":0,"▁":1,"a":2,"▁a":3,"<0x41>":4},"merges":["▁ a"]}}`,
	`{"added_tokens":[],"normalizer":{"type":"BertNormalizer","lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},
	 "post_processor":{"type":"BertProcessing","sep":["[SEP]",3],"cls":["[CLS]",2]},"decoder":{"type":"WordPiece","prefix":"##"},
	 "model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"hello":1,"[CLS]":2,"[SEP]":3,"##lo":4,"hel":5}}}`,
	`{"added_tokens":[{"id":3,"content":"<|e|>","special":true}],"pre_tokenizer":{"type":"Sequence","pretokenizers":[
	 {"type":"Split","pattern":{"Regex":"(?i:'s)|\\p{L}+|\\p{N}{1,3}|\\s+(?!\\S)|\\s+|."},"behavior":"Isolated","invert":false},
	 {"type":"Digits","individual_digits":true},{"type":"Punctuation","behavior":"Contiguous"},{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true},
	 {"type":"ByteLevel","add_prefix_space":true,"use_regex":true}]},
	 "post_processor":{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"RobertaProcessing","sep":["b",1],"cls":["a",0]}]},
	 "decoder":{"type":"ByteLevel"},"truncation":{"max_length":4,"direction":"Left"},"padding":{"strategy":{"Fixed":6},"pad_id":0},
	 "model":{"type":"BPE","ignore_merges":true,"continuing_subword_prefix":"##","end_of_word_suffix":"</w>","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]}}`,
	`{"added_tokens":[],"normalizer":{"type":"Lowercase"},"pre_tokenizer":{"type":"WhitespaceSplit"},"decoder":{"type":"BPEDecoder","suffix":"</w>"},
	 "model":{"type":"WordLevel","unk_token":"x","vocab":{"x":0,"hello":1}}}`,
	`{"added_tokens":[{"id":0,"content":"<pad>","special":true,"normalized":false},{"id":1,"content":"</s>","special":true,"normalized":false}],
	 "normalizer":{"type":"Sequence","normalizers":[{"type":"Precompiled","precompiled_charsmap":"vAMAAAAEAAAAAAAAAAAAAAAAAIAAAAAAAAAAAAIAAIAAAAAABQAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIEJAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKCFAgAAAAAAAAAAAAAAAAChuQIAAAAAAKy0AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAC8/AIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMIEAwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADvqAMAIABmaQBBAA=="},
	 {"type":"Strip","strip_left":false,"strip_right":true},{"type":"Replace","pattern":{"Regex":" {2,}"},"content":"▁"}]},
	 "pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},
	 "post_processor":{"type":"TemplateProcessing","single":[{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}],"special_tokens":{"</s>":{"id":"</s>","ids":[1],"tokens":["</s>"]}}},
	 "decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},
	 "model":{"type":"Unigram","unk_id":2,"byte_fallback":false,"vocab":[["<pad>",0.0],["</s>",0.0],["<unk>",0.0],["▁",-2.5],["▁Hello",-8.25],["▁world",-7.5],["A",-5.0],["fi",-6.0],["▁a",-4.0],["a",-3.0],["b",-3.5],["▁ab",-4.5]]}}`,
	`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`,
	`{"model":{"type":"Unigram","vocab":[["a",0.0]]}}`,
	`{"normalizer":{"type":"Nope"},"model":{"type":"WordLevel","vocab":{}}}`,
	`{"pre_tokenizer":{"type":"Whitespace"},"model":{"type":"WordLevel","vocab":{"a":0},"unk_token":"a"}}`,
	`[]`, `{`, `{"model":7}`,
}
