package schema

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

type res struct {
	Backend string `json:"backend" schema:"enum=cpu|gomlx"`
	Device  string `json:"device" schema:"enum=cpu,default=cpu" doc:"device kind"`
	Threads int    `json:"threads" schema:"min=0"`
}

type comp struct {
	Cache  string  `json:"cache" schema:"required,nonempty"`
	Weight float64 `json:"weight" schema:"min=0"`
}

type cfg struct {
	LR         float64         `json:"learning_rate" schema:"gt=0" doc:"peak learning rate"`
	Ratio      float64         `json:"min_lr_ratio" schema:"min=0,max=1"`
	Schedule   string          `json:"lr_schedule" schema:"enum=linear|cosine|constant,default=linear"`
	Batch      int             `json:"train_batch_size" schema:"gt=0,default=128"`
	Micro      int             `json:"micro_batch_size" schema:"min=0"`
	Steps      *int64          `json:"num_train_steps" schema:"gt=0"`
	Epochs     *float64        `json:"num_train_epochs" schema:"gt=0"`
	SeqLen     int             `json:"max_seq_len" schema:"gt=1"`
	Model      json.RawMessage `json:"model_config"`
	ModelPath  *string         `json:"model_name_or_path"`
	Components map[string]comp `json:"components" schema:"nonempty"`
	Tags       []string        `json:"tags"`
	Resources  res             `json:"resources" schema:"open"`
	Extra      map[string]any  `json:"extra"`
	Ignored    string          `json:"-"`
}

func (cfg) SchemaRules() []Rule {
	return []Rule{
		{Kind: ExactlyOneOf, Paths: []string{"model_config", "model_name_or_path"}},
		{Kind: AtMostOneOf, Paths: []string{"num_train_steps", "num_train_epochs"}},
		{Kind: NotGreater, Paths: []string{"max_seq_len", "model_config.max_position_embeddings"}},
		{Kind: Divides, Paths: []string{"micro_batch_size", "train_batch_size"}},
		{Kind: SomePositive, Paths: []string{"components.*.weight"}},
	}
}

func parse(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func issues(list []Issue) []string {
	out := make([]string, len(list))
	for i, is := range list {
		out[i] = is.String()
	}
	return out
}

const good = `{"learning_rate": 1e-4, "min_lr_ratio": 0.1, "train_batch_size": 8, "micro_batch_size": 4,
  "num_train_steps": 10, "max_seq_len": 64, "model_config": {"max_position_embeddings": 128},
  "components": {"a": {"cache": "/x", "weight": 1}, "v": {"cache": "/y", "weight": 0}},
  "tags": ["t"], "resources": {"backend": "cpu", "device": "cpu", "threads": 2, "partition": "gpu"},
  "extra": {"anything": [1, 2]}}`

func TestValidConfigPasses(t *testing.T) {
	s := MustFromStruct(cfg{})
	if got := s.Validate(parse(t, good)); len(got) != 0 {
		t.Fatalf("issues on a valid config: %v", issues(got))
	}
}

func TestEveryMistakeIsReportedWithItsPath(t *testing.T) {
	s := MustFromStruct(cfg{})
	cases := []struct {
		patch map[string]any
		want  string
	}{
		{map[string]any{"learning_rate": -1}, "learning_rate: must be positive, got -1"},
		{map[string]any{"learning_rate": "fast"}, `learning_rate: must be a number, got the string "fast"`},
		{map[string]any{"min_lr_ratio": 2}, "min_lr_ratio: must be in [0, 1], got 2"},
		{map[string]any{"lr_schedule": "cosin"}, `lr_schedule: must be one of "linear", "cosine", "constant", got "cosin" (did you mean "cosine"?)`},
		{map[string]any{"train_batch_size": 2.5}, "train_batch_size: must be a whole number, got 2.5"},
		{map[string]any{"learnig_rate": 1}, `learnig_rate: unknown key (did you mean "learning_rate"?)`},
		{map[string]any{"model_name_or_path": "m"}, "model_name_or_path: conflicts with model_config: give only one of model_config, model_name_or_path"},
		{map[string]any{"num_train_epochs": 2}, "num_train_epochs: conflicts with num_train_steps"},
		{map[string]any{"max_seq_len": 4096}, "max_seq_len: 4096 exceeds model_config.max_position_embeddings (128)"},
		{map[string]any{"micro_batch_size": 3}, "micro_batch_size: 3 does not divide train_batch_size (8)"},
		{map[string]any{"components": map[string]any{"v": map[string]any{"cache": "/y"}}}, "components: no entry has a positive weight"},
		{map[string]any{"components": map[string]any{"a": map[string]any{"weight": 1}}}, "components.a.cache: is required"},
		{map[string]any{"resources": map[string]any{"device": "cuda"}}, `resources.device: must be one of "cpu", got "cuda"`},
		{map[string]any{"tags": []any{"a", 3}}, "tags[1]: must be a string, got the number 3"},
	}
	for _, c := range cases {
		m := parse(t, good)
		for k, v := range c.patch {
			m[k] = v
		}
		got := issues(s.Validate(m))
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("patch %v: issues %q, want one starting %q", c.patch, got, c.want)
		}
	}
	m := parse(t, good)
	delete(m, "model_config")
	if got := issues(s.Validate(m)); len(got) != 1 || got[0] != "give one of model_config, model_name_or_path" {
		t.Errorf("no model: %q", got)
	}
}

func TestDecodeIsStrictAndFillsDefaults(t *testing.T) {
	s := MustFromStruct(cfg{})
	m := parse(t, good)
	delete(m, "train_batch_size")
	m["micro_batch_size"] = 0
	delete(m, "lr_schedule")
	var c cfg
	if err := Decode(s, m, &c); err != nil {
		t.Fatal(err)
	}
	if c.Batch != 128 || c.Schedule != "linear" || c.Resources.Device != "cpu" || c.Resources.Threads != 2 {
		t.Errorf("defaults not applied: %+v", c)
	}
	m["bogus"] = 1
	err := Decode(s, m, &c)
	var se *Error
	if err == nil || !strings.Contains(err.Error(), "bogus: unknown key") || !asError(err, &se) {
		t.Fatalf("unknown key decoded: %v", err)
	}
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	*target = e
	return ok
}

func TestSchemaRoundTripsOverTheWire(t *testing.T) {
	s := MustFromStruct(cfg{})
	raw, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := parse(t, good)
	m["learning_rate"] = 0
	if !reflect.DeepEqual(issues(back.Validate(m)), issues(s.Validate(m))) {
		t.Errorf("schema changed over the wire: %q vs %q", issues(back.Validate(m)), issues(s.Validate(m)))
	}
	if f := back.Lookup("resources.device"); f == nil || f.Doc != "device kind" || f.Default != "cpu" {
		t.Errorf("lookup resources.device: %+v", f)
	}
	if f := back.Lookup("components.x.weight"); f == nil || f.Type != Number {
		t.Errorf("lookup through a map: %+v", f)
	}
	if f := back.Lookup("tags[3]"); f == nil || f.Type != String {
		t.Errorf("lookup through a list: %+v", f)
	}
	for _, bad := range []string{`{"type":"tensor"}`, `{"type":"object","fields":[{"type":"int"}]}`,
		`{"type":"object","rules":[{"kind":"exactly_one_of","paths":["a"]}]}`, `{`} {
		if _, err := Unmarshal([]byte(bad)); err == nil {
			t.Errorf("Unmarshal(%s) accepted a malformed schema", bad)
		}
	}
}

func TestFromStructRefusesBadDeclarations(t *testing.T) {
	type badTag struct {
		X int `json:"x" schema:"minimum=3"`
	}
	type badDefault struct {
		X int `json:"x" schema:"default=many"`
	}
	type badMap struct {
		X map[int]string `json:"x"`
	}
	for _, v := range []any{badTag{}, badDefault{}, badMap{}, 3} {
		if _, err := FromStruct(v); err == nil {
			t.Errorf("FromStruct(%T) accepted it", v)
		}
	}
}

func FuzzUnmarshalValidate(f *testing.F) {
	raw, _ := MustFromStruct(cfg{}).Marshal()
	f.Add(raw, []byte(good))
	f.Add([]byte(`{"type":"map","elem":{"type":"int","min":0}}`), []byte(`{"a":-1}`))
	f.Fuzz(func(t *testing.T, schemaJSON, config []byte) {
		s, err := Unmarshal(schemaJSON)
		if err != nil || s == nil {
			return
		}
		var v any
		dec := json.NewDecoder(strings.NewReader(string(config)))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		s.Validate(v) // must not panic
		if m, ok := v.(map[string]any); ok {
			s.ApplyDefaults(m)
		}
	})
}
