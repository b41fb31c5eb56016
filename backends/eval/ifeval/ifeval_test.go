package ifeval

import (
	"testing"
)

func doc(id string, kw map[string]any) map[string]any {
	return map[string]any{"prompt": "Tell me about rivers.", "instruction_id_list": []any{id}, "kwargs": []any{kw}}
}

// Each case follows the Python check_following of lm-eval's instructions.py.
func TestInstructions(t *testing.T) {
	cases := []struct {
		id     string
		kw     map[string]any
		resp   string
		strict bool
		loose  bool
	}{
		{"punctuation:no_comma", nil, "Rivers flow. Seas wait.", true, true},
		{"punctuation:no_comma", nil, "Rivers, seas.", false, false},
		{"keywords:existence", map[string]any{"keywords": []any{"delta", "Bank"}}, "The bank meets the DELTA.", true, true},
		{"keywords:existence", map[string]any{"keywords": []any{"delta"}}, "No such word.", false, false},
		{"keywords:frequency", map[string]any{"keyword": "flow", "frequency": 2, "relation": "at least"}, "flow and Flow", true, true},
		{"keywords:frequency", map[string]any{"keyword": "flow", "frequency": 2, "relation": "less than"}, "flow and Flow", false, false},
		{"keywords:forbidden_words", map[string]any{"forbidden_words": []any{"sea"}}, "the seal swims", true, true},
		{"keywords:forbidden_words", map[string]any{"forbidden_words": []any{"sea"}}, "the Sea swims", false, false},
		{"keywords:letter_frequency", map[string]any{"letter": "Z", "let_frequency": 2, "let_relation": "at least"}, "zebra zone", true, true},
		{"length_constraints:number_words", map[string]any{"num_words": 3, "relation": "less than"}, "two words", true, true},
		{"length_constraints:number_words", map[string]any{"num_words": 3, "relation": "at least"}, "two words", false, false},
		{"length_constraints:number_sentences", map[string]any{"num_sentences": 2, "relation": "at least"}, "Dr. Smith came. He left!", true, true},
		{"length_constraints:number_paragraphs", map[string]any{"num_paragraphs": 2}, "one\n***\ntwo", true, true},
		{"length_constraints:number_paragraphs", map[string]any{"num_paragraphs": 2}, "one\n***\n\n***\ntwo", false, false},
		{"length_constraints:nth_paragraph_first_word", map[string]any{"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Rivers"}, "Intro.\n\n\"rivers, then.", true, true},
		{"detectable_content:number_placeholders", map[string]any{"num_placeholders": 2}, "Go to [address] at [time].", true, true},
		{"detectable_content:postscript", map[string]any{"postscript_marker": "P.S."}, "Body.\np.s. bye", true, true},
		{"detectable_format:number_bullet_lists", map[string]any{"num_bullets": 2}, "* one\n* two", true, true},
		{"detectable_format:number_bullet_lists", map[string]any{"num_bullets": 2}, "* one\n- two\n* three", false, true}, // loose drops the first line
		{"detectable_format:constrained_response", nil, "My answer is maybe.", true, true},
		{"detectable_format:number_highlighted_sections", map[string]any{"num_highlights": 2}, "*a* and **b**", true, true},
		{"detectable_format:multiple_sections", map[string]any{"section_spliter": "Section", "num_sections": 2}, "Section 1\nx\nSection 2\ny", true, true},
		{"detectable_format:json_format", nil, "```json\n{\"a\": 1}\n```", true, true},
		{"detectable_format:json_format", nil, "{a: 1}", false, false},
		{"detectable_format:title", nil, "<<Rivers of Joy>>\ntext", true, true},
		{"combination:two_responses", nil, "one******two", true, true},
		{"combination:two_responses", nil, "same******same", false, false},
		{"combination:repeat_prompt", map[string]any{"prompt_to_repeat": "Tell me about rivers."}, "tell me about rivers. They flow.", true, true},
		{"startend:end_checker", map[string]any{"end_phrase": "Any other questions?"}, "Done. Any other questions?\"", true, true},
		{"startend:quotation", nil, "\"quoted\"", true, true},
		{"change_case:capital_word_frequency", map[string]any{"capital_frequency": 2, "capital_relation": "at least"}, "THE big RIVER", true, true},
		{"change_case:english_lowercase", nil, "the river runs to the sea and the fish swim in it every day of the year", true, true},
		{"change_case:english_capital", nil, "THE RIVER RUNS TO THE SEA AND THE FISH SWIM IN IT EVERY DAY OF THE YEAR", true, true},
		{"language:response_language", map[string]any{"language": "fr"}, "La rivière coule vers la mer et les poissons nagent dedans tous les jours de l'année.", true, true},
		{"language:response_language", map[string]any{"language": "fr"}, "The river runs to the sea and the fish swim in it every day of the year.", false, false},
		// Loose: the strict check fails, but without the first line or the
		// asterisks it passes.
		{"startend:quotation", nil, "Sure, here it is:\n\"quoted\"", false, true},
		{"detectable_format:title", nil, "", false, false},
	}
	for _, c := range cases {
		kw := c.kw
		if kw == nil {
			kw = map[string]any{}
		}
		r, err := Score(doc(c.id, kw), c.resp)
		if err != nil {
			t.Errorf("%s: %v", c.id, err)
			continue
		}
		if r.Strict.All != c.strict || r.Loose.All != c.loose {
			t.Errorf("%s on %q: strict %v loose %v, want %v %v", c.id, c.resp, r.Strict.All, r.Loose.All, c.strict, c.loose)
		}
	}
}

func TestNullKwargsAreDropped(t *testing.T) {
	// The parquet copy of IFEval has every kwarg key, null where unused.
	d := map[string]any{"prompt": "p", "instruction_id_list": []any{"punctuation:no_comma", "keywords:existence"},
		"kwargs": []any{map[string]any{"keywords": nil, "num_words": nil}, map[string]any{"keywords": []any{"x"}, "relation": nil}}}
	r, err := Score(d, "x marks it")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Strict.All || len(r.Strict.Each) != 2 {
		t.Errorf("%+v", r)
	}
	if _, err := Score(map[string]any{"prompt": "p", "instruction_id_list": []any{"nope:x"}, "kwargs": []any{map[string]any{}}}, "x"); err == nil {
		t.Error("unknown instruction accepted")
	}
}

func TestSplitIntoSentences(t *testing.T) {
	got := SplitIntoSentences("Mr. Smith went to Washington D.C. yesterday. He saw 3.5 dogs! Was it fun? Yes.")
	if len(got) != 4 {
		t.Errorf("%d sentences: %q", len(got), got)
	}
}
