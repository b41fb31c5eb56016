package gomlx

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/conformance"
	"github.com/marin-go/marin/backends/model/sample"
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
	params := f.Params(t)
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
	// The op's tokens are the shared generation loop's on this engine's
	// decoder (greedy), prompt by prompt.
	d, err := DecoderFactory(Options{})(params, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i, p := range [][]uint32{{3, 17, 5}, {1}} {
		d.Reset()
		res, err := sample.Generate(context.Background(), d, [][]uint32{p}, sample.Options{MaxNewTokens: 8}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var want []int32
		for _, id := range res[0].Tokens {
			want = append(want, int32(id))
		}
		if !slices.Equal(rows[i].IDs, want) {
			t.Errorf("prompt %d: plugin generated %v, the decoder %v", i, rows[i].IDs, want)
		}
	}
	// A stop token ends a prompt's generation and stays in the op's output.
	stop := rows[0].IDs[2]
	if err := run(`{"model": "` + model + `", "prompts": [[3, 17, 5]], "max_new_tokens": 8, "stop_token_ids": [` + fmt.Sprint(stop) + `]}`); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(out, "generations.jsonl"))
	var g generation
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if want := rows[0].IDs[:slices.Index(rows[0].IDs, stop)+1]; !slices.Equal(g.IDs, want) {
		t.Errorf("with stop %d: %v, want %v", stop, g.IDs, want)
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
