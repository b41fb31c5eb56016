package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestQuickstartLoRA runs the reduced quickstart's fine-tuning as a LoRA
// adapter (LORA = True: r 8, alpha 16, every linear projection) in the
// reduced run's prefix, so only the fine-tuning and its evaluations run;
// the adapter must lift held-out accuracy as the full fine-tune does. Its
// PEFT export then goes through `marin generate --model ADAPTER_DIR` and,
// independently, through a PyTorch script that merges W + (alpha/r)·B·A
// itself from the base's and the adapter's safetensors files: both must
// produce the same greedy tokens.
func TestQuickstartLoRA(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small model")
	}
	repo, _ := filepath.Abs("../..")
	script, prefix, _ := localQuickstart(t, repo)
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(src), "\nLORA = False\n", "\nLORA = True\n", 1)
	if s == string(src) {
		t.Fatal("experiments/quickstart.star has no line LORA = False")
	}
	lscript := filepath.Join(filepath.Dir(script), "quickstart_lora.star")
	write(t, lscript, s)
	r := marin(t, repo, nil, lscript, "--prefix", prefix)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "step=checkpoints/quickstart_pretrain") {
		t.Error("the LoRA run retrained the pretrained model")
	}
	before := readResults(t, prefix, "quickstart_before_sft")
	full := readResults(t, prefix, "quickstart_after_sft")
	after := readResults(t, prefix, "quickstart_after_sft_lora")
	t.Logf("held-out exact match: %d/%d before fine-tuning, %d/%d after full fine-tuning, %d/%d after LoRA (r 8, all-linear)",
		before.Correct, before.Examples, full.Correct, full.Examples, after.Correct, after.Examples)
	if after.Examples == 0 || after.Accuracy < before.Accuracy+0.25 {
		t.Errorf("LoRA fine-tuning took held-out accuracy from %.2f to %.2f; want a rise of at least 0.25", before.Accuracy, after.Accuracy)
	}
	run := one(t, filepath.Join(prefix, "checkpoints", "quickstart_sft_lora-*"))
	ad := filepath.Join(run, "adapter", "step-400")
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "marin.json"} {
		if _, err := os.Stat(filepath.Join(ad, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(run, "hf")); !os.IsNotExist(err) {
		t.Errorf("a LoRA run without merge_lora exported a merged model: %v", err)
	}

	// A chat turn (the task it was trained on, stopping at <|end|>) and a
	// raw prompt generating 16 tokens.
	var gens []generation
	for _, args := range [][]string{{"--chat", "--prompt", "upper qrs"}, {"--prompt", "upper(abcdefghij)="}} {
		g := marin(t, repo, nil, append([]string{"generate", "--model", ad, "--max-new-tokens", "16", "--json"}, args...)...)
		if g.code != 0 {
			t.Fatalf("generate %v: exit %d: %s", args, g.code, g.stderr)
		}
		var gen generation
		if err := json.Unmarshal([]byte(g.stdout), &gen); err != nil {
			t.Fatalf("generate --json: %v: %q", err, g.stdout)
		}
		t.Logf("marin generate --model %s %v: %q (ids %v, stopped %v)", filepath.Base(ad), args, gen.Text, gen.IDs, gen.Stopped)
		if len(gen.IDs) == 0 || len(gen.PromptIDs) == 0 {
			t.Fatalf("generate --json: %+v", gen)
		}
		if sd := marin(t, repo, nil, append([]string{"generate", "--model", run, "--max-new-tokens", "16", "--json"}, args...)...); sd.stdout != g.stdout {
			t.Errorf("the step's output generates %q, its adapter export %q", sd.stdout, g.stdout)
		}
		gens = append(gens, gen)
	}

	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("SKIPPED the PyTorch check of the exported adapter: PyTorch is not installed for %s (apt-get install python3-torch; .ci/run installs it): %v", py, err)
	}
	// The base as PEFT finds it: adapter_config.json's base_model_name_or_path.
	var ac struct {
		BaseModel string `json:"base_model_name_or_path"`
	}
	raw, err := os.ReadFile(filepath.Join(ad, "adapter_config.json"))
	if err != nil || json.Unmarshal(raw, &ac) != nil || !filepath.IsAbs(ac.BaseModel) {
		t.Fatalf("adapter_config.json names no local base: %s %v", raw, err)
	}
	base := ac.BaseModel
	for i, gen := range gens {
		dir := t.TempDir()
		in, _ := json.Marshal(map[string]any{"prompt_ids": gen.PromptIDs, "max_new_tokens": 16, "stop_ids": gen.StopIDs})
		inPath, outPath := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
		write(t, inPath, string(in))
		cmd := exec.Command(py, filepath.Join(repo, "backends", "model", "lora", "testdata", "torch_peft_generate.py"), base, ad, inPath, outPath)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("PyTorch merge: %v\n%s", err, out)
		}
		var ref struct {
			IDs     []uint32 `json:"ids"`
			Stopped bool     `json:"stopped"`
			Merged  int      `json:"merged"`
		}
		raw, err := os.ReadFile(outPath)
		if err != nil || json.Unmarshal(raw, &ref) != nil {
			t.Fatalf("PyTorch output %s: %v", raw, err)
		}
		if ref.Merged != 2*7 {
			t.Errorf("PyTorch merged %d projections, want 14 (2 layers × 7)", ref.Merged)
		}
		if ref.IDs == nil {
			ref.IDs = []uint32{}
		}
		if !reflect.DeepEqual(ref.IDs, gen.IDs) || ref.Stopped != gen.Stopped {
			t.Errorf("generation %d: greedy tokens: marin %v (stopped %v), PyTorch merging the PEFT files itself %v (stopped %v)", i, gen.IDs, gen.Stopped, ref.IDs, ref.Stopped)
		}
	}
}
