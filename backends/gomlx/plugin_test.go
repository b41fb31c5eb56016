package gomlx

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/plugins/sdk"
)

type nopReporter struct{}

func (nopReporter) Progress(done, total float64, unit, msg string) {}
func (nopReporter) Log(level, msg string, kv ...string)            {}

func TestPluginGenerate(t *testing.T) {
	if err := Plugin().Validate(); err != nil {
		t.Fatal(err)
	}
	f := conformance.Fixtures()[0]
	cfg, err := llama.ParseConfig([]byte(f.Config))
	if err != nil {
		t.Fatal(err)
	}
	params, _ := llama.NewParams(cfg)
	for _, tn := range params.Tensors() {
		copy(tn.Data, f.Weights[tn.Name])
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "hf")
	src, err := New(params, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.ExportHF(context.Background(), model); err != nil {
		t.Fatal(err)
	}
	src.Close()
	out := filepath.Join(dir, "out")
	run := func(config string) error {
		req := &sdk.Request{Op: OpGenerate, ConfigJSON: []byte(config), OutputPath: "file://" + out}
		return Plugin().Ops[OpGenerate].Run(context.Background(), req, nopReporter{})
	}
	if err := run(`{"model": "` + model + `", "prompts": [[3, 17, 5], [1]], "max_new_tokens": 8, "stop_token_ids": [999],
		"resources": {"backend": "gomlx", "device": "cpu"}}`); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(filepath.Join(out, "generations.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var rows []generation
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var g generation
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, g)
	}
	if len(rows) != 2 || len(rows[0].IDs) != 8 {
		t.Fatalf("generations: %+v", rows)
	}
	m, _ := New(params, Options{})
	defer m.Close()
	want, _ := m.Generate(context.Background(), []int32{3, 17, 5}, Sampling{MaxNewTokens: 8})
	if !equalInts(rows[0].IDs, want) {
		t.Errorf("plugin generated %v, model %v", rows[0].IDs, want)
	}

	for config, msg := range map[string]string{
		`{"prompts": [[1]]}`:                          "needs model",
		`{"model": "` + model + `"}`:                  "needs texts or prompts",
		`{"model": "` + model + `", "texts": ["hi"]}`: "need a tokenizer",
		`{"model": "` + model + `", "prompts": [[1]], "resources": {"device": "cuda"}}`: "PJRT plugin",
		`{"model": "` + model + `", "prompts": [[1]], "resources": {"backend": "cpu"}}`: "this is the gomlx backend",
	} {
		t.Setenv(PJRTPluginEnv, "")
		if err := run(config); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: got %v, want %q", config, err, msg)
		}
	}
}

func equalInts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
