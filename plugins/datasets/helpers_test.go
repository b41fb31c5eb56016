package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/golden"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/starlib"
)

// reporter records what an op reports.
type reporter struct {
	mu       sync.Mutex
	progress []string
	logs     []string
}

func (r *reporter) Progress(done, total float64, unit, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress = append(r.progress, fmt.Sprintf("%v/%v %s %s", done, total, unit, msg))
}

func (r *reporter) Log(level, msg string, kv ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, level+" "+msg+" "+strings.Join(kv, " "))
}

// request builds an sdk.Request as the host would send it.
func request(t testing.TB, op string, cfg map[string]any, out string) *sdk.Request {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return &sdk.Request{Op: op, StepName: "test", Config: m, ConfigJSON: raw, OutputPath: out, Attempt: 1, LogLevel: "info"}
}

// registrySteps evaluates get_instruction_dataset(expr) in a script and
// returns the planned download and transform configs, exactly as the host
// would send them.
func registrySteps(t testing.TB, call string) (download, transform map[string]any) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "s.star")
	writeFile(t, script, []byte("ds = "+call+"\nexecutor_main(steps=[ds])\n"))
	return registryStepsFile(t, script)
}

// registryStepsFile is registrySteps for a script file.
func registryStepsFile(t testing.TB, script string) (download, transform map[string]any) {
	t.Helper()
	res, err := starlib.ExecFile(script, nil)
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	plan, err := graph.Build("file://"+filepath.Dir(script)+"/out", res.Roots)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Steps {
		switch p.Step.Op {
		case "dataset/download":
			download = p.Config
		case "dataset/transform":
			transform = p.Config
		}
	}
	return download, transform
}

// readOutput lists a documents output: each shard decompressed, then
// stats.json, as one text for golden comparison.
func readOutput(t testing.TB, out string) string {
	t.Helper()
	var paths []string
	err := filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		rel, _ := filepath.Rel(out, p)
		fmt.Fprintf(&b, "== %s ==\n", filepath.ToSlash(rel))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		}
		b.Write(data)
	}
	return b.String()
}

// checkGolden compares got with testdata/golden/name (-update rewrites it).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Compare(t, filepath.Join("testdata", "golden", name), []byte(got))
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeParquet[T any](t testing.TB, path string, rows []T) {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes())
}

func jsonLines(t testing.TB, rows ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func newBuf(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

func gz(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// runTransform runs dataset/transform with cfg over input into a fresh output.
func runTransform(t testing.TB, cfg map[string]any, input string) (string, *reporter, error) {
	t.Helper()
	c := map[string]any{}
	for k, v := range cfg {
		c[k] = v
	}
	c["input"] = input
	out := filepath.Join(t.TempDir(), "documents")
	rep := &reporter{}
	err := transform(context.Background(), request(t, "dataset/transform", c, "file://"+out), rep)
	return out, rep, err
}
