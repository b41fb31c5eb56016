package pluginhost

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/executor"
)

// TestWordcountExample builds the example third-party plugin (its own Go
// module) and drives it the way a user's install would be: found on
// $MARIN_PLUGIN_PATH, described, resolved and run.
func TestWordcountExample(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build the example plugin")
	}
	pluginDir := t.TempDir()
	build := exec.Command(goTool, "build", "-o", filepath.Join(pluginDir, "marin-plugin-wordcount"), ".")
	build.Dir = filepath.Join("..", "..", "plugins", "examples", "wordcount")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the example plugin in %s (if go.mod is stale after a root go.mod change, run `go mod tidy` there): %v\n%s", build.Dir, err, out)
	}

	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "a.txt"), []byte("The cat sat.\nThe cat's hat!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "b.txt"), []byte("the END, the end"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv(PluginPathEnv, pluginDir)
	var logs syncBuffer
	m, err := New(Config{Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}

	list := m.List()
	if len(list) != 1 || list[0].Err != nil || list[0].Name != "wordcount" || list[0].Kind != "generic" || list[0].Version != "0.1.0" ||
		list[0].ProtocolVersion != 1 || len(list[0].Ops) != 1 || list[0].Ops[0].Name != "wordcount/count" {
		t.Fatalf("List: %+v", list)
	}
	ref, err := m.Resolve("wordcount/count")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Path != filepath.Join(pluginDir, "marin-plugin-wordcount") {
		t.Errorf("Resolve: %+v", ref)
	}

	out := filepath.Join(t.TempDir(), "wc-abc123")
	var ev events
	err = m.Run(context.Background(), executor.RunRequest{
		StepName: "wc", Op: "wordcount/count", OutputPath: "file://" + out, Attempt: 1,
		Config: map[string]any{"input": []any{"file://" + filepath.Join(data, "a.txt"), filepath.Join(data, "b.txt")}},
	}, ev.report)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "counts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var counts struct {
		Words    map[string]int `json:"words"`
		Total    int            `json:"total_words"`
		Distinct int            `json:"distinct_words"`
		Files    int            `json:"files"`
	}
	if err := json.Unmarshal(raw, &counts); err != nil {
		t.Fatalf("counts.json: %v\n%s", err, raw)
	}
	want := map[string]int{"the": 4, "cat": 1, "cat's": 1, "sat": 1, "hat": 1, "end": 2}
	if len(counts.Words) != len(want) || counts.Total != 10 || counts.Distinct != 6 || counts.Files != 2 {
		t.Errorf("counts.json: %s", raw)
	}
	for w, n := range want {
		if counts.Words[w] != n {
			t.Errorf("count of %q: got %d, want %d", w, counts.Words[w], n)
		}
	}
	if len(ev.all) != 3 || ev.all[1].Kind != executor.EventProgress || ev.all[1].Done != 2 || ev.all[1].Total != 2 ||
		ev.all[2].Kind != executor.EventLog || ev.all[2].Fields["total"] != "10" {
		t.Errorf("events: %+v", ev.all)
	}
	if !strings.Contains(logs.String(), `"step":"wc","plugin":"wordcount","distinct":"6","total":"10","message":"counted words"`) {
		t.Errorf("plugin log line missing:\n%s", logs.String())
	}

	// A missing input is the plugin's own diagnostic, naming the file.
	err = m.Run(context.Background(), executor.RunRequest{StepName: "wc2", Op: "wordcount/count", OutputPath: "file://" + out,
		Config: map[string]any{"input": filepath.Join(data, "missing.txt")}}, nil)
	if re := runErr(t, err); re.Kind != OpFailed || !strings.Contains(re.Summary, "read input: open "+filepath.Join(data, "missing.txt")) {
		t.Errorf("missing input: %v", err)
	}
}
