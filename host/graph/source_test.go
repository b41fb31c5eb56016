package graph

import "testing"

func TestSourceOfFindsTheNearestRecordedParent(t *testing.T) {
	s := &Step{Pos: "exp.star:30:12", Sources: map[string]Source{
		"":                            {Pos: "exp.star:30:12", Attr: "ExecutorStep.config"},
		"learning_rate":               {Pos: "exp.star:12:7", Attr: "SimpleSFTConfig.learning_rate"},
		"resources":                   {Pos: "exp.star:20:5", Attr: "ResourceConfig"},
		"data.components.tulu":        {Pos: "exp.star:8:18", Attr: `lm_mixture_data_config.components["tulu"]`},
		"data.components.tulu.weight": {Pos: "exp.star:9:15", Attr: `lm_mixture_data_config.weights["tulu"]`},
	}}
	cases := map[string]Source{
		"learning_rate":               {"exp.star:12:7", "SimpleSFTConfig.learning_rate"},
		"resources.device":            {"exp.star:20:5", "ResourceConfig.device"},
		"data.components.tulu.weight": {"exp.star:9:15", `lm_mixture_data_config.weights["tulu"]`},
		"data.components.tulu.cache":  {"exp.star:8:18", `lm_mixture_data_config.components["tulu"].cache`},
		"tokeniser":                   {"exp.star:30:12", "ExecutorStep.config.tokeniser"},
		"tags[2]":                     {"exp.star:30:12", "ExecutorStep.config.tags[2]"},
	}
	for path, want := range cases {
		if got := s.SourceOf(path); got != want {
			t.Errorf("SourceOf(%q) = %+v, want %+v", path, got, want)
		}
	}
	bare := &Step{Pos: "x.star:1:1"}
	if got := bare.SourceOf("a.b"); got != (Source{"x.star:1:1", "a.b"}) {
		t.Errorf("no sources: %+v", got)
	}
}
