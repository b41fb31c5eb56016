package datasets

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/host/pluginhost"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/starlib"
)

// servePluginEnv makes the test binary serve the datasets plugin, as the
// marin binary does for `marin plugin serve datasets`.
const servePluginEnv = "MARIN_TEST_SERVE_DATASETS"

func TestMain(m *testing.M) {
	if os.Getenv(servePluginEnv) != "" {
		args := os.Args[1:]
		if len(args) != 3 || args[0] != "plugin" || args[1] != "serve" {
			fmt.Fprintf(os.Stderr, "want arguments `plugin serve NAME`, got %q\n", args)
			os.Exit(2)
		}
		if err := sdk.ServeNamed(args[2], Plugin()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestScriptWithBuiltinAndThirdPartyPlugins runs an experiment script whose
// steps are served by the built-in datasets plugin (a child process, as in
// the marin binary) and by the example third-party plugin csvpairs (its own
// Go module, built here and found on $MARIN_PLUGIN_PATH).
func TestScriptWithBuiltinAndThirdPartyPlugins(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build the example plugin")
	}
	pluginDir := t.TempDir()
	build := exec.Command(goTool, "build", "-o", filepath.Join(pluginDir, "marin-plugin-csvpairs"), ".")
	build.Dir = filepath.Join("..", "examples", "csvpairs")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the csvpairs example in %s: %v\n%s", build.Dir, err, out)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "faq.csv"), []byte("prompt,response,topic\n"+
		"How do I reset my password?,\"Click \"\"Forgot password\"\" on the login page.\",account\n"+
		"What are your hours?,9 to 5 on weekdays.,general\n"+
		"Empty answer?,,general\n"))
	writeFile(t, filepath.Join(dir, "data", "mine.jsonl"), jsonLines(t,
		map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}, map[string]any{"role": "assistant", "content": "hello"}}}))
	script := filepath.Join(dir, "exp.star")
	writeFile(t, script, []byte(fmt.Sprintf(`
faq = ExecutorStep(
    name = "documents/faq",
    fn = "csvpairs/convert",
    config = {"input": %q, "system": "You answer FAQs."},
)
mine = get_instruction_dataset(path = "data/mine.jsonl", adapter = "messages")
executor_main(steps = [faq, mine])
`, filepath.Join(dir, "data", "faq.csv"))))

	t.Setenv("HOME", t.TempDir())
	t.Setenv(pluginhost.PluginPathEnv, pluginDir)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m, err := pluginhost.New(pluginhost.Config{
		Builtins: []*sdk.Plugin{Plugin()},
		BuiltinCommand: func(name string) (*exec.Cmd, error) {
			cmd := exec.Command(exe, "plugin", "serve", name)
			cmd.Env = append(os.Environ(), servePluginEnv+"=1")
			return cmd, nil
		},
		Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, p := range m.List() {
		if p.Name == "csvpairs" && p.Kind == "dataset" && p.Err == nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("csvpairs not found on the plugin path: %+v", m.List())
	}

	res, err := starlib.ExecFile(script, nil)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "file://" + filepath.Join(dir, "out")
	plan, err := graph.Build(prefix, res.Roots)
	if err != nil {
		t.Fatal(err)
	}
	report, err := executor.Run(context.Background(), plan, executor.Options{Runner: m, ScriptName: script, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("run: %v (report %+v)", err, report)
	}
	outputs := map[string]string{}
	for _, p := range plan.Steps {
		path, _ := sdk.LocalPath(p.OutputPath)
		outputs[p.Step.Name] = path
	}
	faq := readOutput(t, outputs["documents/faq"])
	for _, want := range []string{
		`"source":"csvpairs:faq.csv","messages":[{"role":"system","content":"You answer FAQs."},{"role":"user","content":"How do I reset my password?"},{"role":"assistant","content":"Click \"Forgot password\" on the login page."}]`,
		`"rows_dropped": {` + "\n" + `    "empty_content": 1`,
		"== default/train/shard_00000.jsonl.gz ==",
	} {
		if !strings.Contains(faq, want) {
			t.Errorf("csvpairs output lacks %s:\n%s", want, faq)
		}
	}
	mine := readOutput(t, outputs["documents/mine"])
	if !strings.Contains(mine, `"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]`) {
		t.Errorf("datasets output:\n%s", mine)
	}
	info, err := executor.ReadInfo(context.Background(), "file://"+outputs["documents/faq"])
	if err != nil || info == nil {
		t.Fatalf("executor info: %v", err)
	}
}
