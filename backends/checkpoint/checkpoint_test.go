package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/marin-go/marin/backends/optim"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "checkpoints", "step-3")
	cfg := []byte(`{"model_type": "qwen2", "vocab_size": 4, "hidden_size": 2, "rope_theta": 1000000.0}`)
	ts := []Tensor{{Name: "model.embed_tokens.weight", Shape: []int64{4, 2}, Data: []float32{1, 2, 3, 4, 5, 6, 7, 8}},
		{Name: "model.norm.weight", Shape: []int64{2}, Data: []float32{1, -1}}}
	st := &optim.State{Step: 3, Names: []string{"model.embed_tokens.weight", "model.norm.weight"},
		M: [][]float32{make([]float32, 8), {0.5, 0.25}}, V: [][]float32{make([]float32, 8), {1, 2}}}
	meta := Metadata{Step: 3, Extra: json.RawMessage(`{"loader":{"seq":384}}`)}
	if err := Save(dir, cfg, ts, st, meta); err != nil {
		t.Fatal(err)
	}
	// Saving again replaces the directory whole.
	if err := Save(dir, cfg, ts, st, meta); err != nil {
		t.Fatal(err)
	}
	m, gotSt, gotMeta, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Weights["model.norm.weight"], []float32{1, -1}) || !reflect.DeepEqual(m.Shapes["model.embed_tokens.weight"], []int{4, 2}) {
		t.Errorf("weights %v shapes %v", m.Weights, m.Shapes)
	}
	if !reflect.DeepEqual(gotSt, st) {
		t.Errorf("optimizer state %+v, want %+v", gotSt, st)
	}
	var extra map[string]map[string]int
	if err := json.Unmarshal(gotMeta.Extra, &extra); err != nil || gotMeta.Step != 3 || extra["loader"]["seq"] != 384 {
		t.Errorf("metadata %+v", gotMeta)
	}
	var c map[string]any
	if err := json.Unmarshal(m.ConfigJSON, &c); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c["architectures"], []any{"Qwen2ForCausalLM"}) || c["rope_theta"] != 1e6 {
		t.Errorf("config %v", c)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("temporary directories left behind: %v", entries)
	}
}

func TestLoadWithoutOptimizerAndErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Save(filepath.Join(dir, "a"), []byte(`{"vocab_size": 1}`), []Tensor{{Name: "x", Shape: []int64{1}, Data: []float32{2}}}, nil, Metadata{}); err != nil {
		t.Fatal(err)
	}
	if _, st, _, err := Load(filepath.Join(dir, "a")); err != nil || st != nil {
		t.Fatalf("got %v, %v", st, err)
	}
	if _, _, _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("loading a missing checkpoint succeeded")
	}
	if err := os.WriteFile(filepath.Join(dir, "a", OptimizerFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(filepath.Join(dir, "a")); err == nil {
		t.Error("a corrupt optimizer state loaded")
	}
	if err := WriteHF(filepath.Join(dir, "b"), []byte(`not json`), nil); err == nil {
		t.Error("a malformed config was exported")
	}
}
